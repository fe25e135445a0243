"""Provisioning logs keep ids, versions, outcomes and status codes, capped by
count and age; no address or value the LMS echoes back is written."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from core.settings import ConfigError, Retention, load_settings
from lms_client import LmsValidationError
from lms_client.errors import error_for_response
from shadow import SyncStore, keys
from shadow.retention import scrub
from tests.support.worker_fixtures import SandboxLms, put_user, run_sync, scim_user
from worker.deps import WorkerDeps
from worker.sweep import sweep_tenant

DAY_MS = 86_400_000


def test_an_address_in_a_message_is_scrubbed() -> None:
    assert scrub("unexpected error: KeyError: 'ada@example.com' (x)") == (
        "unexpected error: KeyError: '<address>' (x)"
    )
    assert scrub("LMS 422: email: not a valid address") == "LMS 422: email: not a valid address"


def test_the_values_sent_never_come_back_in_the_lms_reasons() -> None:
    sent = b'{"email": "Ada.L@example.com", "first_name": "Ada", "last_name": "Lovelace"}'
    body = (
        b'{"error": "validation_failed", "fields": {"email": ["ada.l@EXAMPLE.com is taken"],'
        b' "last_name": ["Lovelace: at most 3 characters"]}}'
    )
    exc = error_for_response("POST", "/api/v1/learners", 422, body, None, sent=sent)
    assert isinstance(exc, LmsValidationError)
    assert exc.fields == {
        "email": ["<value> is taken"],
        "last_name": ["<value>: at most 3 characters"],
    }
    assert "Lovelace" not in str(exc)
    assert "example.com" not in str(exc).lower()


def test_the_caps_come_from_the_environment() -> None:
    settings = load_settings({"BRIDGE_EVENTS_KEPT": "50", "BRIDGE_EVENTS_MAX_AGE_DAYS": "7"})
    assert settings.retention == Retention(events_kept=50, events_max_age_s=7 * 86_400.0)
    with pytest.raises(ConfigError, match="BRIDGE_EVENTS_KEPT='500': expected 1 to 200"):
        load_settings({"BRIDGE_EVENTS_KEPT": "500"})
    with pytest.raises(ConfigError, match="BRIDGE_EVENTS_MAX_AGE_DAYS"):
        load_settings({"BRIDGE_EVENTS_MAX_AGE_DAYS": "0"})


async def test_a_log_is_capped_by_count_and_age_and_expires(redis: Redis) -> None:
    sync = SyncStore(redis, retention=Retention(events_kept=5, events_max_age_s=86_400))
    key = keys.events("acme", "u1")
    old = int(time.time() * 1000) - 2 * DAY_MS
    await redis.xadd(key, {"event": "scim_create"}, id=f"{old}-0")
    await sync.log_event("acme", "u1", "failed", error="unexpected: bob@example.org")
    rows = await sync.events("acme", "u1")
    assert [r["event"] for r in rows] == ["failed"]  # the two-day-old entry is gone
    assert rows[0]["error"] == "unexpected: <address>"
    assert 86_000_000 < await redis.pttl(key) <= DAY_MS
    for n in range(300):
        await sync.log_event("acme", "u1", "lms", status=200, n=n)
    assert await redis.xlen(key) < 120  # ~5, trimmed a macro node at a time


async def test_a_synced_users_log_holds_no_name_email_or_record(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    doc = scim_user("quentin.oddly@example.org", "Quentin", "Oddly", title="Archivist")
    await put_user(deps, "u1", doc)
    assert await run_sync(deps, "u1") == "synced"
    await put_user(deps, "u1", {**doc, "emails": [{"value": "not-an-address"}]}, "update")
    await run_sync(deps, "u1")
    logged = str(await deps.sync.events("acme", "u1"))
    for value in ("quentin", "oddly", "archivist", "not-an-address", "example.org"):
        assert value not in logged.lower()
    assert "version" in logged


async def test_the_sweep_forgets_deleted_users_ids_when_their_time_is_up(
    deps: WorkerDeps, tenant: object
) -> None:
    now = int(time.time() * 1000)
    await deps.redis.zadd(keys.gone_users("acme"), {"old": now - 91 * DAY_MS, "new": now})
    await sweep_tenant(deps, "acme", now_ms=now)
    assert await deps.redis.zrange(keys.gone_users("acme"), 0, -1) == [b"new"]
