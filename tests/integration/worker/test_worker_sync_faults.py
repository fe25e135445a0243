"""Answers fail the user with the LMS's reason; faults defer the job and the
user stays pending (docs/architecture.md, invariant 2 and "Conventions")."""

from __future__ import annotations

import httpx
import pytest
from arq.worker import Retry

from lms_sandbox import KnobsUpdate
from shadow import Tenant, key_fingerprint
from tests.support.worker_fixtures import (
    FAST,
    ORG,
    MockedLms,
    SandboxLms,
    mock_learner,
    put_user,
    record_of,
    run_sync,
    scim_user,
)
from worker.deps import WorkerDeps
from worker.queue import sync_job_id

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster


async def pending(deps: WorkerDeps, user_id: str) -> bool:
    return user_id in await deps.sync.users_in(ORG, "pending")


async def test_422_fails_with_the_lms_reason_then_the_next_change_syncs(
    mocked: MockedLms,
) -> None:
    deps, _, router = mocked
    post = router.post("/api/v1/learners")
    post.side_effect = [
        httpx.Response(
            422,
            json={"error": "validation_failed", "fields": {"email": ["not a valid address"]}},
        ),
        httpx.Response(201, json=mock_learner(7)),
    ]
    await put_user(deps, "u-1", scim_user())

    assert await run_sync(deps, "u-1") == "failed"
    record = await record_of(deps, "u-1")
    assert (record.state, record.error) == ("failed", "LMS 422: email: not a valid address")
    assert not await pending(deps, "u-1")

    await put_user(deps, "u-1", scim_user(title="Engineer"), "update")
    assert await run_sync(deps, "u-1") == "synced"
    record = await record_of(deps, "u-1")
    assert (record.state, record.learner_id, record.error) == (
        "synced",
        7,
        "",
    )
    assert post.call_count == 2


async def test_exhausted_503_defers_and_the_user_stays_pending(
    mocked: MockedLms,
) -> None:
    deps, _, router = mocked
    post = router.post("/api/v1/learners").mock(return_value=httpx.Response(503))
    await put_user(deps, "u-1", scim_user())
    due = await deps.sync.queued_due(ORG, "u-1")
    assert due is not None

    with pytest.raises(Retry) as raised:
        await run_sync(deps, "u-1", job_id=sync_job_id(ORG, "u-1", due), job_try=1)

    assert post.call_count == FAST.max_attempts  # the client's own retries, then the job's
    assert raised.value.defer_score is not None
    assert 2000 <= raised.value.defer_score <= 2300
    assert await pending(deps, "u-1")
    record = await record_of(deps, "u-1")
    assert record.state == "pending"
    # The job will run again, so the queue mark stays and the sweep leaves it be.
    assert await deps.sync.queued_due(ORG, "u-1") == due
    assert not await deps.sync.is_locked(ORG, "u-1")


async def test_conflict_on_update_fails_with_the_reason(
    mocked: MockedLms,
) -> None:
    deps, _, router = mocked
    router.post("/api/v1/learners").mock(return_value=httpx.Response(201, json=mock_learner(7)))
    router.patch("/api/v1/learners/7").mock(
        return_value=httpx.Response(409, json={"error": "email_taken", "learner_id": 9})
    )
    # The learner holding the address was made by hand: no user of ours.
    router.get("/api/v1/learners/9").mock(
        return_value=httpx.Response(200, json=mock_learner(9, external_ref=None))
    )
    await put_user(deps, "u-1", scim_user())
    await run_sync(deps, "u-1")

    await put_user(deps, "u-1", scim_user("bob@example.com"), "update")
    assert await run_sync(deps, "u-1") == "failed"

    record = await record_of(deps, "u-1")
    assert record.error == (
        "LMS 409 email_taken: held by learner 9, which no live user of this tenant is "
        "linked to; change that learner in the LMS, then replay"
    )
    assert record.learner_id == 7  # the link survives a failed update


async def test_lms_outage_defers_and_pauses_the_tenant(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())
    await put_user(deps, "u-2", scim_user("bob@example.com"))
    lms.sandbox.update_knobs(KnobsUpdate(outage_seconds=30))  # 503, Retry-After: 30

    with pytest.raises(Retry) as first:
        await run_sync(deps, "u-1")
    # The outage's Retry-After paused the tenant: the next job defers
    # without calling the LMS at all.
    with pytest.raises(Retry) as second:
        await run_sync(deps, "u-2")

    assert len(lms.calls) == 1
    for raised in (first, second):
        assert raised.value.defer_score is not None
        assert 29_000 <= raised.value.defer_score <= 36_000
    assert await pending(deps, "u-1")
    assert await pending(deps, "u-2")
    assert lms.learners() == []


async def test_a_rejected_lms_key_pauses_the_tenant_and_a_new_key_resumes_it(
    deps: WorkerDeps, lms: SandboxLms, tenant: Tenant
) -> None:
    right_key = tenant.lms_api_key
    tenant.lms_api_key = "wrong"
    await deps.tenants.save(tenant)
    await put_user(deps, "u-1", scim_user())
    await put_user(deps, "u-2", scim_user("bob@example.com"))

    # A fault of the tenant, not of the user: it stays pending, and waits.
    with pytest.raises(Retry):
        await run_sync(deps, "u-1")
    assert await pending(deps, "u-1")
    pause = await deps.sync.lms_pause(ORG)
    assert pause is not None
    assert pause.reason.startswith("LMS 401")
    assert "wrong" not in str(await deps.sync.events(ORG, "u-1")) + str(pause)
    # Other users of the tenant wait without knocking on the LMS each time:
    # one job every PROBE_EVERY_MS tries it.
    calls = len(lms.calls)
    with pytest.raises(Retry):
        await run_sync(deps, "u-2")
    assert len(lms.calls) == calls
    assert await pending(deps, "u-2")

    # The admin pastes the right key: the next job resumes every user.
    tenant.lms_api_key = right_key
    await deps.tenants.save(tenant)
    assert await run_sync(deps, "u-2") == "synced"
    assert await deps.sync.lms_pause(ORG) is None
    assert await run_sync(deps, "u-1") == "synced"
    assert len(lms.learners()) == 2


async def test_a_paused_tenant_resumes_when_the_lms_takes_the_same_key_again(
    deps: WorkerDeps, lms: SandboxLms, tenant: Tenant
) -> None:
    """The LMS side fixed the key (it was revoked by mistake and restored)."""
    await put_user(deps, "u-1", scim_user())
    await deps.sync.pause_lms(ORG, "LMS 401: refused", key_fingerprint(tenant.lms_api_key))
    # A user an older bridge failed for the same reason is replayed on resume.
    await put_user(deps, "u-2", scim_user("bob@example.com"))
    await deps.sync.finish(ORG, "u-2", 1, "failed", error="LMS 401: unauthorized")

    assert await run_sync(deps, "u-1") == "synced"  # the probe, and it worked

    assert await deps.sync.lms_pause(ORG) is None
    assert await pending(deps, "u-2")
    assert await deps.sync.queued_due(ORG, "u-2") is not None
    assert await run_sync(deps, "u-2") == "synced"


async def test_patch_meeting_404_links_afresh(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())
    await deps.sync.record_link(ORG, "u-1", 999, {"email": "old@example.com", "active": True})

    assert await run_sync(deps, "u-1") == "synced"

    [learner] = lms.learners()
    assert lms.routes() == ["PATCH /api/v1/learners/999", "POST /api/v1/learners"]
    record = await record_of(deps, "u-1")
    assert record.learner_id == learner.id


async def test_disabled_tenant_leaves_users_pending(
    deps: WorkerDeps, lms: SandboxLms, tenant: Tenant
) -> None:
    tenant.enabled = False
    await deps.tenants.save(tenant)
    await put_user(deps, "u-1", scim_user())

    assert await run_sync(deps, "u-1") == "tenant missing or disabled"

    assert lms.calls == []
    assert await pending(deps, "u-1")
