"""Newest wins, per user (docs/architecture.md, invariant 3): bursts collapse, stale jobs
change nothing, and two workers never sync one user at once."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from arq.worker import Retry

from tests.support.worker_fixtures import (
    ORG,
    SandboxLms,
    put_user,
    record_of,
    run_sync,
    scim_user,
)
from worker.deps import WorkerDeps
from worker.queue import sync_job_id

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster


async def test_a_burst_of_changes_is_one_call(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())
    await put_user(deps, "u-1", scim_user(title="Engineer"), "update")
    await put_user(deps, "u-1", scim_user(title="Lead"), "update")

    assert await run_sync(deps, "u-1") == "synced"
    # The jobs of the two later changes find the newest version applied.
    assert await run_sync(deps, "u-1") == "up to date"

    assert lms.routes() == ["POST /api/v1/learners"]
    [learner] = lms.learners()
    assert learner.job_role == "Lead"
    record = await record_of(deps, "u-1")
    assert record.applied_version == 3


async def test_a_newer_version_written_mid_sync_is_applied_by_the_same_job(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user(title="Engineer"))

    async def entra_writes_again(request: httpx.Request) -> None:
        if request.method == "POST" and not lms.learners():
            await put_user(deps, "u-1", scim_user(title="Lead", active=False), "update")

    lms.on_request.append(entra_writes_again)
    assert await run_sync(deps, "u-1") == "synced"

    [learner] = lms.learners()
    assert (learner.job_role, learner.status) == ("Lead", "deactivated")
    # The withdrawal goes first, before any field update that could fail.
    assert lms.routes() == [
        "POST /api/v1/learners",
        f"POST /api/v1/learners/{learner.id}/deactivate",
        f"PATCH /api/v1/learners/{learner.id}",
    ]
    assert lms.calls[2].body == {"job_role": "Lead"}
    record = await record_of(deps, "u-1")
    assert (record.state, record.applied_version) == ("synced", 2)
    events = [e["event"] for e in await deps.sync.events(ORG, "u-1")]
    assert "newer_version" in events


async def test_two_jobs_for_one_user_one_syncs_the_other_retries(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    lms.sandbox.knobs.latency_ms = 50  # the first job is still inside the LMS call
    await put_user(deps, "u-1", scim_user())

    results = await asyncio.gather(
        run_sync(deps, "u-1"), run_sync(deps, "u-1"), return_exceptions=True
    )

    assert sorted(map(type, results), key=lambda t: t.__name__) == [Retry, str]
    [retry] = [r for r in results if isinstance(r, Retry)]
    assert retry.defer_score == 1000
    assert len(lms.learners()) == 1
    assert not await deps.sync.is_locked(ORG, "u-1")


async def test_a_locked_user_defers_and_keeps_its_queue_mark(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())
    due = await deps.sync.queued_due(ORG, "u-1")
    assert due is not None
    token = await deps.sync.lock(ORG, "u-1", 30)
    assert token is not None

    with pytest.raises(Retry):
        await run_sync(deps, "u-1", job_id=sync_job_id(ORG, "u-1", due))

    assert lms.calls == []
    assert await deps.sync.queued_due(ORG, "u-1") == due
    assert await deps.sync.is_locked(ORG, "u-1")  # the holder's lock is untouched
    await deps.sync.unlock(ORG, "u-1", token)
    assert await run_sync(deps, "u-1") == "synced"
    assert await deps.sync.queued_due(ORG, "u-1") is None  # a job clears its mark
