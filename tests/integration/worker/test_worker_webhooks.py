"""Notifications: a tenant's webhook set through the admin API, deliveries
made by the worker and sent to a real HTTP server on a loopback port that
checks each signature; a failing receiver is retried with back-off."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis as sync_redis
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.worker import Retry
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from cli.main import main
from core.settings import Settings
from shadow import Tenant
from shadow.admin_keys import AdminKeyStore
from shadow.breaker import BreakerConfig, set_config
from shadow.webhooks import WebhookStore
from tests.support.worker_fixtures import FAST, KEY, ORG, put_user, run_sync, scim_user
from worker.deps import WorkerDeps
from worker.webhooks import BACKOFF_S, MAX_ATTEMPTS, deliver_webhook

OPERATOR = "operator-secret-0123456789-abcdefghij"
OP = {"Authorization": f"Bearer {OPERATOR}"}


class Receiver:
    """A webhook receiver as a customer would write one: it checks the
    signature over `<t>.<body>` and the timestamp's age before trusting."""

    def __init__(self) -> None:
        self.secret = ""
        self.answers: list[int] = []  # statuses to give, then 204
        self.received: list[dict[str, Any]] = []
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                header = self.headers.get("X-Scim-Bridge-Signature", "")
                parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
                expected = hmac.new(
                    receiver.secret.encode(), f"{parts.get('t')}.".encode() + body, hashlib.sha256
                ).hexdigest()
                fresh = abs(time.time() - int(parts.get("t", "0"))) < 300
                if not (fresh and hmac.compare_digest(expected, parts.get("v1", ""))):
                    receiver.bad_signatures += 1
                    status = 401
                else:
                    receiver.received.append(
                        {"headers": dict(self.headers), "payload": json.loads(body)}
                    )
                    status = receiver.answers.pop(0) if receiver.answers else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/scim?source=bridge"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    thread = threading.Thread(
        target=found.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield found
    finally:
        found.server.shutdown()
        found.server.server_close()


@pytest.fixture
async def real_deps(worker_settings: Settings, queue: ArqRedis) -> AsyncIterator[WorkerDeps]:
    """Worker deps with a real HTTP client (the webhook is a real server)."""
    built = WorkerDeps.open(worker_settings, queue, retry=FAST)
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
async def admin(redis_url: str, tenant: object) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = Settings(redis_url=redis_url, public_url="https://bridge.test", admin_token=OPERATOR)
    async with AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as client:
        yield client


async def queued_delivery(queue: ArqRedis, delivery_id: str) -> bool:
    return bool(await queue.exists(f"{job_key_prefix}webhook:{ORG}:{delivery_id}"))


async def test_a_failed_user_is_notified_signed_and_visible_to_ops(
    admin: AsyncTestClient[Any],
    real_deps: WorkerDeps,
    queue: ArqRedis,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The operator sets the webhook; the secret is in this answer only.
    answer = await admin.put(
        f"/admin/v1/tenants/{ORG}/webhook", json={"url": receiver.url}, headers=OP
    )
    assert answer.status_code == 200, answer.text
    receiver.secret = answer.json()["secret"]
    assert receiver.secret.startswith("whsec_")
    shown = await admin.get(f"/admin/v1/tenants/{ORG}/webhook", headers=OP)
    assert shown.json()["url"] == receiver.url
    assert receiver.secret not in shown.text

    # Two users fail at once: one delivery, the second folded into the next.
    await put_user(real_deps, "u-1", scim_user("bad@@example.com"))
    await put_user(real_deps, "u-2", scim_user("worse@@example.com"))
    assert await run_sync(real_deps, "u-1") == "failed"
    assert await run_sync(real_deps, "u-2") == "failed"
    (listed,) = await WebhookStore(real_deps.redis).recent(ORG)
    assert (listed.event, listed.status, listed.attempts) == ("user.failed", "pending", 0)
    assert await queued_delivery(queue, listed.delivery_id)

    assert await deliver_webhook({"deps": real_deps}, ORG, listed.delivery_id) == "delivered"
    (got,) = receiver.received
    assert receiver.bad_signatures == 0
    assert got["headers"]["X-Scim-Bridge-Event"] == "user.failed"
    assert got["headers"]["X-Scim-Bridge-Delivery"] == listed.delivery_id
    payload = got["payload"]
    assert (payload["event"], payload["tenant"], payload["data"]["user_id"]) == (
        "user.failed",
        ORG,
        "u-1",
    )
    assert "email" in payload["data"]["reason"]
    assert payload["data"]["folded_before"] == 0

    view = (await admin.get(f"/admin/v1/tenants/{ORG}/webhook", headers=OP)).json()
    (delivery,) = view["deliveries"]
    assert (delivery["status"], delivery["attempts"], delivery["last_status"]) == (
        "delivered",
        1,
        204,
    )
    # The secret is never logged, nor the URL's query.
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert receiver.secret not in logged
    assert "source=bridge" not in logged


async def test_a_failing_receiver_is_retried_with_back_off_then_given_up(
    admin: AsyncTestClient[Any], real_deps: WorkerDeps, receiver: Receiver
) -> None:
    answer = await admin.put(
        f"/admin/v1/tenants/{ORG}/webhook", json={"url": receiver.url}, headers=OP
    )
    receiver.secret = answer.json()["secret"]
    queued = await admin.post(f"/admin/v1/tenants/{ORG}/webhook/test", headers=OP)
    assert queued.status_code == 202
    delivery_id = queued.json()["delivery_id"]

    receiver.answers = [500, 503]
    for attempt, status in enumerate((500, 503), start=1):
        with pytest.raises(Retry) as retry:
            await deliver_webhook({"deps": real_deps}, ORG, delivery_id)
        assert retry.value.defer_score == BACKOFF_S[attempt - 1] * 1000
        one = await WebhookStore(real_deps.redis).delivery(ORG, delivery_id)
        assert one is not None
        assert (one.status, one.attempts, one.last_error) == ("pending", attempt, f"HTTP {status}")
    assert await deliver_webhook({"deps": real_deps}, ORG, delivery_id) == "delivered"
    assert [r["payload"]["event"] for r in receiver.received] == ["webhook.test"] * 3

    # A receiver that never answers 2xx: the delivery ends `failed`.
    receiver.answers = [500] * MAX_ATTEMPTS
    delivery_id = (await admin.post(f"/admin/v1/tenants/{ORG}/webhook/test", headers=OP)).json()[
        "delivery_id"
    ]
    for _ in range(MAX_ATTEMPTS - 1):
        with pytest.raises(Retry):
            await deliver_webhook({"deps": real_deps}, ORG, delivery_id)
    assert await deliver_webhook({"deps": real_deps}, ORG, delivery_id) == "failed"
    view = (await admin.get(f"/admin/v1/tenants/{ORG}/webhook", headers=OP)).json()
    assert view["deliveries"][0]["status"] == "failed"
    assert view["deliveries"][0]["attempts"] == MAX_ATTEMPTS
    assert receiver.bad_signatures == 0


async def test_only_the_operator_sets_the_webhook(
    admin: AsyncTestClient[Any], real_deps: WorkerDeps, receiver: Receiver
) -> None:
    key = (await AdminKeyStore(real_deps.redis).issue(ORG, label="acme")).key
    as_key = {"Authorization": f"Bearer {key}"}
    path = f"/admin/v1/tenants/{ORG}/webhook"
    assert (await admin.put(path, json={"url": receiver.url}, headers=as_key)).status_code == 403
    assert (await admin.delete(path, headers=as_key)).status_code == 403
    assert (await admin.get(path, headers=as_key)).json()["url"] is None
    bad = await admin.put(path, json={"url": "ftp://x.test/"}, headers=OP)
    assert bad.status_code == 400  # not the documented http(s) pattern
    assert (await admin.post(path + "/test", headers=as_key)).status_code == 404


async def test_a_refused_lms_key_and_a_tripped_breaker_are_notified_once_each(
    deps: WorkerDeps, redis: Redis, tenant: Tenant
) -> None:
    await WebhookStore(redis).set(ORG, "http://127.0.0.1:9/hook", "s" * 32)
    tenant.lms_api_key = "wrong"
    await deps.tenants.save(tenant)
    await put_user(deps, "u-1", scim_user())
    await put_user(deps, "u-2", scim_user("bob@example.com"))
    for user_id in ("u-1", "u-2"):
        with pytest.raises(Retry):
            await run_sync(deps, user_id)  # the tenant pauses; its users wait

    tenant.lms_api_key = KEY
    await deps.tenants.save(tenant)
    assert await run_sync(deps, "u-1") == "synced"
    await set_config(redis, ORG, BreakerConfig(share=0.01, min_learners=0))
    await put_user(deps, "u-1", scim_user(active=False), "update")
    assert await run_sync(deps, "u-1") == "held by breaker"

    events = [d.event for d in await WebhookStore(redis).recent(ORG)]
    assert events == ["breaker.tripped", "lms.key_rejected"]


def test_the_cli_sets_the_webhook_and_shows_the_secret_once(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sync_redis.Redis.from_url(redis_url).flushall()
    monkeypatch.setenv("REDIS_URL", redis_url)

    def cli(*argv: str, code: int = 0) -> Any:
        capsys.readouterr()
        assert main([*argv, "--json"]) == code
        return json.loads(capsys.readouterr().out)

    cli("tenant", "create", "acme", "--lms-url", "https://lms.test/org/acme", "--lms-api-key", "k")
    hook = "https://hooks.example.com/scim"
    updated = cli("tenant", "update", "acme", "--webhook-url", hook)
    assert updated["webhook"]["url"] == hook
    assert updated["webhook"]["secret"].startswith("whsec_")
    assert "secret" not in json.dumps(cli("tenant", "show", "acme"))
    own = cli("tenant", "update", "acme", "--webhook-url", hook, "--webhook-secret", "x" * 20)
    assert own["webhook"]["secret"] == "x" * 20
    assert "error" in cli("tenant", "update", "acme", "--webhook-url", "not-a-url", code=2)
    assert "error" in cli("tenant", "update", "acme", "--webhook-secret", "y" * 20, code=2)
    assert cli("tenant", "update", "acme", "--webhook-url", "")["webhook"] == {"url": None}
