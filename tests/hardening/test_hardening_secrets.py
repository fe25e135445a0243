"""No token, API key or personal record in any log line, error body or metric.

A realistic flow (tests/integration/observability/test_obs_worker_secrets.py
does tenants and tokens through the CLI; here through the admin API): the
operator creates a tenant with its LMS key and rotates it, issues a SCIM
token and a tenant admin key; Entra-like SCIM calls carry a person's email,
names, phone and address, and make the usual mistakes; the worker syncs
the user into the sandbox LMS; the tenant admin reads status, the user's
timeline and the failed list, and makes mistakes too.

Captured: every log record of every logger (a spy on `Logger.callHandlers`,
so a logger that does not propagate is heard too) under the production
logging set-up at DEBUG (`core.logs.configure_logging`, which keeps httpx and
httpcore at WARNING: they log full LMS URLs), every error body, the admin
read models (documented to carry ids only) and the /metrics text. None may
contain a credential, the LMS key, the person's email or full name. A
second test does the same against a real API process and reads its output.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from core.logs import JsonFormatter, configure_logging
from tests.hardening.test_hardening_support import (
    ADMIN_TOKEN,
    api_process,
    hardening_url,
    seed_world,
)
from tests.support.api import PATCH_OP, ScimClient, api_settings
from tests.support.redis_server import RedisServer
from tests.support.worker_fixtures import (
    BASE,
    KEY,
    ORG,
    SandboxLms,
    deps,
    lms,
    queue,
    record_of,
    run_sync,
    worker_settings,
)
from worker.deps import WorkerDeps

__all__ = ["deps", "lms", "queue", "worker_settings"]

EMAIL = "ada.king@example.org"
GIVEN, FAMILY = "Augusta", "King-Noel"
FULL_NAME = f"{GIVEN} {FAMILY}"
PHONE = "+44 20 7946 0958"
STREET = "12 Ockham Park Lane"
NEW_KEY = "sk-rotated-acme-5566778899"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"
# Loggers production sets quieter on purpose (core.logs.configure_logging).
QUIETED = ("httpx", "httpcore")


class Captured:
    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        self.bodies: list[tuple[str, str]] = []  # (what, text) that must be clean
        self.formatter = JsonFormatter()

    def log_text(self) -> str:
        lines = []
        for record in self.records:
            lines.append(self.formatter.format(record))
            lines.append(repr(record.args))
        return "\n".join(lines)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[Captured]:
    found = Captured()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    configure_logging("DEBUG")
    for name in levels:
        if not name.startswith(QUIETED):
            logging.getLogger(name).setLevel(logging.NOTSET)
    real = logging.Logger.callHandlers

    def spy(self: logging.Logger, record: logging.LogRecord) -> None:
        found.records.append(record)
        real(self, record)

    monkeypatch.setattr(logging.Logger, "callHandlers", spy)
    try:
        yield found
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@pytest.fixture
async def http(
    redis_url: str, deps: WorkerDeps, captured: Captured
) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = api_settings(redis_url, admin_token=ADMIN_TOKEN)
    async with AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as client:

        async def keep_errors(response: httpx.Response) -> None:
            await response.aread()
            if response.status_code >= 400:
                where = f"{response.request.method} {response.request.url.path}"
                captured.bodies.append((f"error body of {where}", response.text))

        client.event_hooks = {"request": [], "response": [keep_errors]}
        yield client


def person() -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": EMAIL,
        "externalId": "a1b2c3",
        "active": True,
        "displayName": FULL_NAME,
        "name": {"givenName": GIVEN, "familyName": FAMILY, "formatted": FULL_NAME},
        "emails": [{"value": EMAIL, "type": "work", "primary": True}],
        "phoneNumbers": [{"value": PHONE, "type": "work"}],
        "addresses": [{"streetAddress": STREET, "type": "work"}],
        "title": "Analyst",
        ENTERPRISE: {"department": "Engines", "employeeNumber": "1815"},
    }


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _altered(credential: str) -> str:
    """The credential with its last character changed: never the same one."""
    return credential[:-1] + ("A" if credential[-1] != "A" else "B")


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


async def test_a_realistic_flow_leaks_no_secret_and_no_personal_record(
    http: AsyncTestClient[Any], deps: WorkerDeps, lms: SandboxLms, captured: Captured
) -> None:
    operator = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    created = await http.post(
        "/admin/v1/tenants",
        json={"slug": ORG, "name": "Acme", "lms_url": BASE, "lms_api_key": KEY},
        headers=operator,
    )
    assert created.status_code == 201, created.text
    issued = (await http.post(f"/admin/v1/tenants/{ORG}/tokens", json={}, headers=operator)).json()
    spare = (await http.post(f"/admin/v1/tenants/{ORG}/tokens", json={}, headers=operator)).json()
    admin_key = (await http.post(f"/admin/v1/tenants/{ORG}/admin-keys", headers=operator)).json()
    tenant_admin = {"Authorization": f"Bearer {admin_key['key']}"}
    scim = ScimClient(http, ORG, issued["token"])

    # Entra's calls, and its usual mistakes.
    response = await scim.post("/Users", person())
    assert response.status_code == 201, response.text
    uid = response.json()["id"]
    stale = response.json()["meta"]["version"]
    found = await scim.get("/Users", params={"filter": f'userName eq "{EMAIL}"'})
    assert found.json()["totalResults"] == 1
    renamed = ops(
        {"op": "Replace", "path": "name.familyName", "value": FAMILY},
        {"op": "Replace", "path": "title", "value": "Lead"},
    )
    assert (await scim.patch(f"/Users/{uid}", renamed)).status_code == 200
    for status, sent in (
        (412, scim.put(f"/Users/{uid}", person(), headers={"If-Match": stale})),
        (400, scim.get("/Users", params={"filter": f'userName eq "{EMAIL}" and'})),
        (400, scim.get("/Users", params={"filter": f'userName eq "{EMAIL}'})),
        (400, scim.patch(f"/Users/{uid}", ops({"op": "add", "path": "nope", "value": EMAIL}))),
        (400, scim.patch(f"/Users/{uid}", ops({"op": "add", "path": "active", "value": "no"}))),
        (404, scim.get(f"/Users/{NO_SUCH_ID}")),
        (401, ScimClient(http, ORG, _altered(issued["token"])).get("/Users")),
        (401, ScimClient(http, ORG, "not-even-a-token").get("/Users")),
    ):
        assert (await sent).status_code == status
    revoke = await http.delete(
        f"/admin/v1/tenants/{ORG}/tokens/{spare['token_id']}", headers=tenant_admin
    )
    assert revoke.status_code == 200
    assert (await ScimClient(http, ORG, spare["token"]).get("/Users")).status_code == 401

    # The worker makes the LMS match, then a deactivation, and a failure.
    assert (await run_sync(deps, uid)).startswith(("created", "adopted", "synced", "updated"))
    assert (await record_of(deps, uid)).state == "synced"
    off = await scim.patch(
        f"/Users/{uid}", ops({"op": "replace", "path": "active", "value": False})
    )
    assert off.status_code == 200
    await run_sync(deps, uid)
    nameless = {"schemas": person()["schemas"], "userName": "x9@example.org", "active": True}
    failing = (await scim.post("/Users", nameless)).json()["id"]  # no names: the LMS refuses
    await run_sync(deps, failing)
    assert (await record_of(deps, failing)).state == "failed"

    # The operator rotates the LMS key; the tenant admin reads and errs.
    rotated = await http.patch(
        f"/admin/v1/tenants/{ORG}", json={"lms_api_key": NEW_KEY}, headers=operator
    )
    assert rotated.status_code == 200
    reads = [
        f"/admin/v1/tenants/{ORG}",
        f"/admin/v1/tenants/{ORG}/status",
        f"/admin/v1/tenants/{ORG}/users/{uid}",
        f"/admin/v1/tenants/{ORG}/users/failed",
        f"/admin/v1/tenants/{ORG}/tokens",
        f"/admin/v1/tenants/{ORG}/breaker",
        f"/admin/v1/tenants/{ORG}/reconcile",
    ]  # fmt: skip
    for path in reads:
        read = await http.get(path, headers=tenant_admin)
        assert read.status_code == 200, (path, read.text)
        captured.bodies.append((f"admin read model {path}", read.text))
    tenants = await http.get("/admin/v1/tenants", headers=operator)
    captured.bodies.append(("admin tenant list", tenants.text))
    mine = f"/admin/v1/tenants/{ORG}"
    bad_mapping = {"fields": {"email": {"sources": ["emails[type eq"]}}}
    cut_preview = b'{"userName": "' + EMAIL.encode()
    again = {"slug": ORG, "lms_url": BASE, "lms_api_key": KEY}
    for status, sent in (
        (404, http.get(f"{mine}/users/{NO_SUCH_ID}", headers=tenant_admin)),
        (422, http.put(f"{mine}/mapping", json=bad_mapping, headers=tenant_admin)),
        (400, http.post(f"{mine}/mapping/preview", content=cut_preview, headers=tenant_admin)),
        (422, http.patch(mine, json={"lms_api_key": " "}, headers=operator)),
        (400, http.patch(mine, json={"lms_url": "ftp://x"}, headers=operator)),
        (409, http.post("/admin/v1/tenants", json=again, headers=operator)),
        (401, http.get(mine, headers=bearer(_altered(admin_key["key"])))),
        (401, http.get(mine, headers=bearer(issued["token"]))),
        (403, http.get("/admin/v1/tenants", headers=tenant_admin)),
    ):
        assert (await sent).status_code == status
    metrics = (await http.get("/metrics", headers=operator)).text
    assert "scim_bridge_users" in metrics

    secrets = {
        "SCIM token": issued["token"],
        "SCIM token secret": issued["token"].split("_", 2)[2],  # the secret may hold "_"
        "revoked SCIM token": spare["token"],
        "operator token": ADMIN_TOKEN,
        "tenant admin key": admin_key["key"],
        "tenant admin key secret": admin_key["key"].split("_", 2)[2],
        "LMS API key": KEY,
        "rotated LMS API key": NEW_KEY,
        "email": EMAIL,
        "url-encoded email": quote(EMAIL),
        "full name": FULL_NAME,
        "family name": FAMILY,
        "phone": PHONE,
        "street": STREET,
    }
    logs = captured.log_text()
    assert len(captured.records) > 30  # the flow was heard
    assert {r.name for r in captured.records} >= {"scim_bridge.access", "lms_client"}
    places = [("a log record", logs), ("/metrics", metrics), *captured.bodies]
    leaked = [
        f"{what} in {where}"
        for what, secret in secrets.items()
        for where, text in places
        if secret in text
    ]
    assert not leaked, "\n".join(leaked)


async def test_a_uniqueness_conflict_does_not_echo_the_user_name(
    http: AsyncTestClient[Any], deps: WorkerDeps
) -> None:
    created = await http.post(
        "/admin/v1/tenants",
        json={"slug": ORG, "lms_url": BASE, "lms_api_key": KEY},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert created.status_code == 201
    token = await deps.tenants.issue_token(ORG)
    scim = ScimClient(http, ORG, token.token)
    assert (await scim.post("/Users", person())).status_code == 201
    again = await scim.post("/Users", person())  # Entra re-sends a create it lost the answer of
    assert again.status_code == 409
    assert EMAIL not in again.text


@pytest.mark.processes
def test_a_real_api_process_logs_no_secret(redis_server: RedisServer, tmp_path: Path) -> None:
    """The process as deployed (uvicorn, JSON logging at DEBUG): its whole output."""
    url = hardening_url(redis_server.url)
    world = seed_world(url, "acme")
    token = world.tokens["acme"]
    with api_process(url, tmp_path, log_level="DEBUG") as api, httpx.Client(base_url=api.url) as c:
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        created = c.post("/scim/acme/v2/Users", content=json.dumps(person()), headers=auth)
        assert created.status_code == 201
        uid = created.json()["id"]
        c.get("/scim/acme/v2/Users", params={"filter": f'userName eq "{EMAIL}"'}, headers=auth)
        c.get(f"/scim/acme/v2/Users?filter=userName+eq+{EMAIL}", headers=auth)
        c.get(f"/scim/acme/v2/Users/{EMAIL}", headers=auth)  # an id mistaken for a userName
        c.patch(f"/scim/acme/v2/Users/{uid}", content=b'{"Operations": [', headers=auth)
        c.get("/scim/acme/v2/Users", headers={"Authorization": f"Bearer {_altered(token)}"})
        c.get("/admin/v1/tenants", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        c.get("/admin/v1/tenants", headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"})
        c.get(
            f"/admin/v1/tenants/acme/users/{uid}",
            headers={"Authorization": f"Bearer {world.admin_keys['acme']}"},
        )
        metrics = c.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text
        output = api.log_text()
    assert "scim_bridge.access" in output  # DEBUG output was written
    for what, secret in {
        "SCIM token": token,
        "operator token": ADMIN_TOKEN,
        "admin key": world.admin_keys["acme"],
        "LMS key": "lms-key-acme-0123456789",
        "email": EMAIL,
        "url-encoded email": quote(EMAIL),
        "full name": FULL_NAME,
        "family name": FAMILY,
    }.items():
        assert secret not in output, f"{what} in the API process's output"
        assert secret not in metrics, f"{what} in /metrics"
