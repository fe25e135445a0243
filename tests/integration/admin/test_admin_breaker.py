"""The mass-deactivation breaker: 30 of 100 learners deactivated in one go.

With the defaults (20% per hour, tenants of 25 learners or more) the first
20 deactivations go through and the 21st trips the breaker: it and every
later one are held, SCIM keeps answering 2xx and the learners stay active,
until an admin approves (they are deactivated) or cancels (they are not).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from shadow import Tenant, keys
from shadow.breaker import HELD_NOTE, breaker_state
from tests.support.api import OP, PATCH_OP, ScimClient
from tests.support.worker_fixtures import (
    BASE,
    KEY,
    ORG,
    SandboxLms,
    put_user,
    record_of,
    run_sync,
    scim_user,
)
from worker.deps import WorkerDeps
from worker.sweep import sweep_tenant


@pytest.fixture
def lms() -> SandboxLms:
    return SandboxLms(rate=0)  # no LMS rate limit: 130 calls in a test


@pytest.fixture
async def tenant(deps: WorkerDeps) -> Tenant:
    return await deps.tenants.create(
        Tenant(slug=ORG, name="Acme", lms_url=BASE, lms_api_key=KEY, lms_rate=1000, lms_burst=1000)
    )


# Every test runs with the sandbox tenant `ORG` (tests.support.worker_fixtures).
# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = [pytest.mark.also_on_cluster, pytest.mark.usefixtures("tenant")]


async def synced_users(deps: WorkerDeps, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for n, uid in enumerate(ids):
        await put_user(deps, uid, scim_user(f"user{n}@example.com", "User", f"N{n}"))
        assert await run_sync(deps, uid) == "synced"
    return ids


async def deactivate(scim: ScimClient, user_id: str) -> None:
    body = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    response = await scim.patch(f"/Users/{user_id}", body)
    assert response.status_code == 200, response.text  # SCIM keeps answering 2xx


def status_of(lms: SandboxLms) -> dict[str, str]:
    return {lr.external_ref or "": lr.status for lr in lms.learners()}


async def trip(deps: WorkerDeps, scim: ScimClient, lms: SandboxLms) -> tuple[list[str], list[str]]:
    """100 learners; 30 deactivated through SCIM; returns (applied, held) user ids."""
    ids = await synced_users(deps, 100)
    doomed = ids[:30]
    for uid in doomed:
        await deactivate(scim, uid)
    outcomes = [await run_sync(deps, uid) for uid in doomed]
    assert outcomes == ["synced"] * 20 + ["held by breaker"] * 10
    states = status_of(lms)
    assert [states[u] for u in doomed[:20]] == ["deactivated"] * 20
    assert [states[u] for u in doomed[20:]] == ["active"] * 10
    return doomed[:20], doomed[20:]


async def test_the_21st_deactivation_trips_and_approve_releases_them(
    http: AsyncTestClient[Any], scim: ScimClient, deps: WorkerDeps, lms: SandboxLms
) -> None:
    _, held = await trip(deps, scim, lms)

    state = await breaker_state(deps.redis, ORG)
    assert (state.tripped, state.held, state.window_count, state.allowed) == (True, 10, 20, 20)
    record = await record_of(deps, held[0])
    assert (record.state, record.error) == ("pending", HELD_NOTE)
    status = (await http.get(f"/admin/v1/tenants/{ORG}/status", headers=OP)).json()
    assert status["breaker"]["tripped"] is True
    assert (status["held"], status["pending"]) == (10, 0)
    # Parked, not looping: the sweep leaves held users alone, and a stray
    # job for one is held again without an LMS call.
    assert await sweep_tenant(deps, ORG) == 0
    lms.calls.clear()
    assert await run_sync(deps, held[0]) == "held by breaker"
    assert lms.calls == []
    # The shadow kept the change: SCIM shows the user inactive.
    assert (await scim.get(f"/Users/{held[0]}")).json()["active"] is False
    view = (await http.get(f"/admin/v1/tenants/{ORG}/breaker", headers=OP)).json()
    assert {u["user_id"] for u in view["held_users"]} == set(held)

    approved = await http.post(f"/admin/v1/tenants/{ORG}/breaker/approve", headers=OP)
    assert approved.status_code == 200, approved.text
    assert (approved.json()["released"], approved.json()["tripped"]) == (10, False)
    assert approved.json()["approved_until"]
    for uid in held:
        assert (await record_of(deps, uid)).state == "pending"
        assert await deps.sync.queued_due(ORG, uid) is not None  # re-enqueued
        assert await run_sync(deps, uid) == "synced"
    states = status_of(lms)
    assert [states[u] for u in held] == ["deactivated"] * 10
    assert sum(s == "deactivated" for s in states.values()) == 30
    assert (await breaker_state(deps.redis, ORG)).held == 0


async def test_cancel_drops_the_held_deactivations(
    http: AsyncTestClient[Any], scim: ScimClient, deps: WorkerDeps, lms: SandboxLms
) -> None:
    _, held = await trip(deps, scim, lms)

    cancelled = await http.post(f"/admin/v1/tenants/{ORG}/breaker/cancel", headers=OP)
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["dropped"], cancelled.json()["tripped"]) == (10, False)
    for uid in held:
        record = await record_of(deps, uid)
        assert (record.state, record.error) == ("failed", "deactivation cancelled by admin")
        assert await run_sync(deps, uid) == "up to date"  # nothing left to send
    assert [status_of(lms)[u] for u in held] == ["active"] * 10
    failed = (await http.get(f"/admin/v1/tenants/{ORG}/users/failed", headers=OP)).json()
    assert failed["total"] == 10

    # The user's next change (Entra re-assigns the group) syncs as usual.
    body = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "active", "value": True}],
    }
    assert (await scim.patch(f"/Users/{held[0]}", body)).status_code == 200
    lms.calls.clear()
    assert await run_sync(deps, held[0]) == "synced"
    assert lms.calls == []  # the learner was never deactivated
    assert (await record_of(deps, held[0])).error == ""


async def test_held_deletes_are_finished_without_a_deactivation_on_cancel(
    scim: ScimClient, deps: WorkerDeps, lms: SandboxLms
) -> None:
    ids = await synced_users(deps, 100)
    doomed = ids[:30]
    for uid in doomed:
        assert (await scim.delete(f"/Users/{uid}")).status_code == 204
    outcomes = [await run_sync(deps, uid) for uid in doomed]
    assert outcomes == ["synced (deleted)"] * 20 + ["held by breaker"] * 10

    from shadow.breaker import cancel

    assert await cancel(deps.redis, ORG) == 10
    states = status_of(lms)
    assert [states[u] for u in doomed[20:]] == ["active"] * 10
    for uid in doomed[20:]:
        # The delete is done on the bridge's side: no tombstone is left for a
        # replay to deactivate a learner a re-created user may adopt.
        assert not await deps.redis.exists(keys.resource(ORG, "u", uid))
        assert await deps.sync.record(ORG, uid) is None
    assert (await breaker_state(deps.redis, ORG)).tripped is False


async def test_thresholds_are_per_tenant_and_small_tenants_are_never_held(
    http: AsyncTestClient[Any], scim: ScimClient, deps: WorkerDeps, lms: SandboxLms
) -> None:
    wrong = await http.put(f"/admin/v1/tenants/{ORG}/breaker", json={"share": 2}, headers=OP)
    assert wrong.status_code == 422
    changed = await http.put(
        f"/admin/v1/tenants/{ORG}/breaker", json={"min_learners": 50, "window_s": 600}, headers=OP
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["config"] == {
        "enabled": True,
        "share": 0.2,
        "min_learners": 50,
        "window_s": 600,
    }
    # 40 learners, under the tenant's minimum of 50: all 30 go through.
    ids = await synced_users(deps, 40)
    for uid in ids[:30]:
        await deactivate(scim, uid)
        assert await run_sync(deps, uid) == "synced"
    state = await breaker_state(deps.redis, ORG)
    assert (state.tripped, state.allowed, state.window_count) == (False, None, 30)
