"""The sweep: a lost job or a crashed worker only delays (docs/architecture.md, invariant 2)."""

from __future__ import annotations

import msgspec
import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix

from shadow import Tenant
from tests.support.worker_fixtures import (
    ORG,
    put_user,
    scim_user,
)
from worker.deps import WorkerDeps
from worker.queue import enqueue_sync, job_exists, sync_job_id
from worker.sweep import sweep, sweep_round, sweep_tenant

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster


async def test_requeues_a_pending_user_whose_job_vanished(
    deps: WorkerDeps, queue: ArqRedis, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())  # queue mark set, job never enqueued
    lost_due = await deps.sync.queued_due(ORG, "u-1")
    assert lost_due is not None

    assert await sweep({"deps": deps}) == 1

    new_due = await deps.sync.queued_due(ORG, "u-1")
    assert new_due is not None
    assert new_due != lost_due
    assert await job_exists(queue, ORG, "u-1", new_due)
    # The job now exists: the next sweep leaves the user alone.
    assert await sweep({"deps": deps}) == 0
    events = [e["event"] for e in await deps.sync.events(ORG, "u-1")]
    assert events == ["requeued", "scim_create"]  # newest first


async def test_requeues_a_pending_user_no_job_is_running(
    deps: WorkerDeps, queue: ArqRedis, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())
    await deps.sync.clear_queued(ORG, "u-1")  # a job started, then its worker died

    assert await sweep_tenant(deps, ORG) == 1
    due = await deps.sync.queued_due(ORG, "u-1")
    assert due is not None
    assert await job_exists(queue, ORG, "u-1", due)


async def test_leaves_users_with_a_job_or_a_lock_or_within_grace(
    deps: WorkerDeps, queue: ArqRedis, tenant: object
) -> None:
    await put_user(deps, "queued", scim_user("a@example.com"))
    due = await deps.sync.queued_due(ORG, "queued")
    assert due is not None
    await enqueue_sync(queue, ORG, "queued", due)
    await put_user(deps, "running", scim_user("b@example.com"))
    await deps.sync.clear_queued(ORG, "running")
    assert await deps.sync.lock(ORG, "running", 30) is not None
    await put_user(deps, "synced", scim_user("c@example.com"))
    await deps.sync.finish(ORG, "synced", 1, "synced")

    assert await sweep_tenant(deps, ORG) == 0
    # Within the grace period nothing is touched, lost job or not.
    await put_user(deps, "fresh", scim_user("d@example.com"))
    assert await sweep_tenant(deps, ORG, now_ms=0) == 0


async def test_bounded_per_run_and_skips_disabled_tenants(
    deps: WorkerDeps, queue: ArqRedis, tenant: Tenant
) -> None:
    for n in range(5):
        await put_user(deps, f"u-{n}", scim_user(f"u{n}@example.com"))

    assert await sweep_tenant(deps, ORG, limit=2) == 2
    tenant.enabled = False
    await deps.tenants.save(tenant)
    assert await sweep({"deps": deps}) == 0
    tenant.enabled = True
    await deps.tenants.save(tenant)
    assert await sweep({"deps": deps}) == 3


async def due_of(deps: WorkerDeps, slug: str) -> int:
    due = await deps.sync.queued_due(slug, "lost")
    assert due is not None
    return due


async def test_each_run_starts_where_the_last_one_stopped(
    deps: WorkerDeps, queue: ArqRedis, tenant: Tenant
) -> None:
    """A run out of time leaves the rest to the next, which goes on from
    there: with thousands of tenants, none is always last."""
    slugs = [ORG, "beta", "gamma"]
    for slug in slugs[1:]:
        await deps.tenants.create(msgspec.structs.replace(tenant, slug=slug))
    for slug in slugs:
        await deps.resources.write(slug, "u", "lost", "create", scim_user(), interval_ms=1)

    swept: list[str] = []
    for _ in slugs:
        assert await sweep_round(deps, budget_s=0, batch_size=1) == 1
        enqueued = [s for s in slugs if await job_exists(queue, s, "lost", await due_of(deps, s))]
        swept += [s for s in enqueued if s not in swept]
    assert swept == sorted(slugs)  # one tenant a run, each from where the last stopped
    assert await sweep_round(deps, budget_s=0, batch_size=1) == 0


async def test_a_job_claimed_but_not_running_is_replaced(
    deps: WorkerDeps, queue: ArqRedis, tenant: Tenant
) -> None:
    await put_user(deps, "u-1", scim_user())
    due = await deps.sync.queued_due(ORG, "u-1")
    assert due is not None
    await enqueue_sync(queue, ORG, "u-1", due)
    await queue.set(in_progress_key_prefix + sync_job_id(ORG, "u-1", due), b"1", px=60_000)

    assert await sweep_tenant(deps, ORG) == 1
    assert await deps.sync.queued_due(ORG, "u-1") != due
