"""End to end through a real arq worker: its figures reach the API's scrape
through Redis, its log lines name the job, tenant and user, and no token,
API key or personal record appears in any log line or metric."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from api.app import create_app
from cli.main import main
from core.logs import ContextFilter, JsonFormatter, configure_logging
from tests.support.api import PATCH_OP, SCRAPE, ScimClient, api_settings
from tests.support.worker_fixtures import BASE, FAST, KEY, ORG, SandboxLms, lms
from worker.settings import create_worker

__all__ = ["lms"]

# arq 0.28 closes its pool with redis-py 5's deprecated `close()`.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning:arq")

WRONG_KEY = "sk-wrong-globex-9876543210"
EMAIL = "ada.lovelace@example.com"
FAMILY = "Lovelace-Byron"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.addFilter(ContextFilter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def parsed(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def logged() -> Iterator[Lines]:
    """Production logging (`configure_logging`) at DEBUG, every line kept."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    configure_logging("DEBUG")
    handler = Lines()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)


def cli(*argv: str) -> dict[str, Any]:
    """Run `scim-bridge ... --json` as ops would; its output as JSON."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*argv, "--json"]) == 0
    data: dict[str, Any] = json.loads(out.getvalue())
    return data


@pytest.fixture
async def http(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AsyncTestClient[Any]]:
    monkeypatch.setenv("REDIS_URL", redis_url)
    async with AsyncTestClient(
        app=create_app(api_settings(redis_url)), base_url="https://bridge.test"
    ) as client:
        yield client


async def test_worker_figures_reach_the_scrape_and_no_secret_reaches_a_log_or_label(
    http: AsyncTestClient[Any], redis_url: str, lms: SandboxLms, logged: Lines
) -> None:
    # Tenants and tokens made through the CLI, as ops would.
    await asyncio.to_thread(cli, "tenant", "create", ORG, "--lms-url", BASE, "--lms-api-key", KEY)
    globex_url = BASE  # the sandbox's one organisation, with a key it refuses
    await asyncio.to_thread(
        cli, "tenant", "create", "globex", "--lms-url", globex_url, "--lms-api-key", WRONG_KEY
    )
    issued = await asyncio.to_thread(cli, "token", "issue", ORG)
    revoked = await asyncio.to_thread(cli, "token", "issue", ORG)
    globex = await asyncio.to_thread(cli, "token", "issue", "globex")
    await asyncio.to_thread(cli, "token", "revoke", ORG, revoked["token_id"])
    acme = ScimClient(http, ORG, issued["token"])
    other = ScimClient(http, "globex", globex["token"])

    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": EMAIL,
        "name": {"givenName": "Ada", "familyName": FAMILY},
        "emails": [{"type": "work", "primary": True, "value": EMAIL}],
        "active": True,
    }
    created = await acme.post("/Users", body)
    assert created.status_code == 201
    user_id = created.json()["id"]
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "title", "value": "X"}],
    }
    assert (await acme.patch(f"/Users/{user_id}", patch)).status_code == 200
    listed = await acme.get("/Users", params={"filter": f'userName eq "{EMAIL}"'})
    assert listed.status_code == 200
    assert (await other.post("/Users", body)).status_code == 201  # its LMS key is wrong
    stale = ScimClient(http, ORG, revoked["token"])
    assert (await stale.get("/Users")).status_code == 401
    wrong_tenant = ScimClient(http, ORG, globex["token"])
    assert (await wrong_tenant.get("/Users")).status_code == 401
    wrong_token = issued["token"][:-1] + ("A" if issued["token"][-1] != "A" else "B")
    assert (await ScimClient(http, ORG, wrong_token).get("/Users")).status_code == 401

    # A real arq worker runs the jobs the API enqueued, then stops (flushing).
    settings = api_settings(redis_url)
    # globex's job meets the refused key: the tenant pauses and the job
    # comes back later, so the burst stops after the two runs.
    worker = create_worker(
        settings,
        burst=True,
        max_burst_jobs=2,
        http=lms.http,
        retry=FAST,
        handle_signals=False,
        poll_delay=0.02,
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()
        await lms.http.aclose()
    assert (worker.jobs_complete, worker.jobs_retried) == (1, 1)

    text = (await http.get("/metrics", headers=SCRAPE)).text
    found = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert found[("scim_bridge_users", frozenset({"tenant": ORG, "state": "synced"}.items()))] == 1
    waiting = frozenset({"tenant": "globex", "state": "pending"}.items())
    assert found[("scim_bridge_users", waiting)] == 1
    assert found[("scim_bridge_sync_lag_seconds_count", frozenset({"tenant": ORG}.items()))] == 1
    calls = frozenset({"tenant": "globex", "endpoint": "POST /learners", "outcome": "401"}.items())
    assert found[("scim_bridge_lms_calls_total", calls)] == 1

    # The job's lines name it, its tenant and user.
    lines = logged.parsed()
    lms_lines = [line for line in lines if line["logger"] == "lms_client"]
    assert lms_lines
    acme_line = next(line for line in lms_lines if line.get("tenant") == ORG)
    assert acme_line["user_id"] == user_id
    assert acme_line["job_id"].startswith(f"sync:{ORG}:{user_id}:")
    access = [line for line in lines if line["logger"] == "scim_bridge.access"]
    assert len(access) >= 8
    assert all(line["request_id"] for line in access)

    # No secret, no personal data, anywhere.
    secrets = {
        "token": issued["token"],
        "token secret": issued["token"].split("_", 2)[2],  # the secret may hold "_"
        "revoked token": revoked["token"],
        "other tenant's token": globex["token"],
        "wrong token": wrong_token,
        "LMS key": KEY,
        "wrong LMS key": WRONG_KEY,
        "email": EMAIL,
        "url-encoded email": EMAIL.replace("@", "%40"),
        "family name": FAMILY,
    }
    everything = "\n".join(logged.lines)
    for what, secret in secrets.items():
        assert secret not in everything, f"{what} in a log line"
        assert secret not in text, f"{what} in /metrics"
