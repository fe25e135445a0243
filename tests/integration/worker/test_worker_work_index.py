"""The index of tenants with work (shadow/work.py) stays right across what
changes a tenant's work: SCIM writes, syncs that succeed or fail, deletes,
replays, mapping changes, purges; and the sweep reads only the tenants in it."""

from __future__ import annotations

import importlib

import msgspec
import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis

from shadow import MappingStore, Tenant, keys
from shadow.lifecycle import begin_purge, purge_keys
from shadow.work import WorkIndex, read_figures
from tests.support.worker_fixtures import ORG, put_user, run_sync, scim_user
from worker.deps import WorkerDeps
from worker.sweep import sweep_round

sweep_module = importlib.import_module("worker.sweep")


async def indexed(redis: Redis) -> list[str]:
    return await WorkIndex(redis).tenants()


async def settle(deps: WorkerDeps, *slugs: str) -> None:
    await WorkIndex(deps.redis).settle(list(slugs) or [ORG])


async def test_a_tenant_is_in_the_index_while_it_has_pending_or_failed_users(
    deps: WorkerDeps, tenant: Tenant
) -> None:
    assert await indexed(deps.redis) == []
    await put_user(deps, "u1", scim_user("a@example.com"))
    assert await indexed(deps.redis) == [ORG]  # the write's own step
    await settle(deps)
    assert await indexed(deps.redis) == [ORG]  # pending: stays
    assert await run_sync(deps, "u1")
    await settle(deps)
    assert await indexed(deps.redis) == []  # synced, nothing queued: idle

    await put_user(deps, "u2", {"schemas": scim_user("x@y")["schemas"], "userName": "no-mail"})
    assert await indexed(deps.redis) == [ORG]
    await run_sync(deps, "u2")
    assert (await deps.sync.record(ORG, "u2")).state == "failed"  # type: ignore[union-attr]
    await settle(deps)
    assert await indexed(deps.redis) == [ORG]  # failed: ops must see it

    await deps.resources.requeue(ORG, "u2", interval_ms=1)  # a replay
    await put_user(deps, "u2", None, mode="delete")
    await run_sync(deps, "u2")
    await settle(deps)
    assert await indexed(deps.redis) == []


async def test_a_tenant_whose_index_entry_was_lost_is_found_by_the_sweeps_walk(
    deps: WorkerDeps, tenant: Tenant, queue: ArqRedis
) -> None:
    await put_user(deps, "u1", scim_user("a@example.com"))
    await deps.redis.delete(keys.TENANTS_WORK)  # e.g. a Cluster node's gap
    await sweep_round(deps, budget_s=1)
    assert await indexed(deps.redis) == [ORG]


async def test_a_tenant_touched_after_its_figures_were_read_stays(
    deps: WorkerDeps, tenant: Tenant
) -> None:
    """settle reads the touch count first: a change between that read and
    the removal moves it, and the tenant is not taken out."""
    index = WorkIndex(deps.redis)
    await index.mark(ORG)
    stale = await deps.redis.zscore(keys.TENANTS_WORK, ORG)
    await put_user(deps, "u1", scim_user("a@example.com"))  # touches it again
    assert stale is not None
    await index._forget_idle(keys=[keys.TENANTS_WORK], args=[ORG, str(int(stale))])
    assert await indexed(deps.redis) == [ORG]
    fresh = await deps.redis.zscore(keys.TENANTS_WORK, ORG)
    assert fresh is not None
    await index._forget_idle(keys=[keys.TENANTS_WORK], args=[ORG, str(int(fresh))])
    assert await indexed(deps.redis) == []  # the same count: removed


async def test_a_mapping_change_gives_the_tenant_work_until_its_resync_ends(
    deps: WorkerDeps, tenant: Tenant
) -> None:
    await MappingStore(deps.redis).replace(ORG, None)
    (figures,) = await read_figures(deps.redis, [ORG])
    assert figures.resync_running
    await settle(deps)
    assert await indexed(deps.redis) == [ORG]


async def test_a_purged_tenant_leaves_the_index(deps: WorkerDeps, tenant: Tenant) -> None:
    await put_user(deps, "u1", scim_user("a@example.com"))
    await begin_purge(deps.redis, ORG)
    await purge_keys(deps.redis, ORG)
    assert await indexed(deps.redis) == []


async def test_the_sweep_reads_only_tenants_with_work(
    deps: WorkerDeps, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    idle = [f"idle-{n:03d}" for n in range(300)]
    for slug in idle:
        await deps.tenants.create(msgspec.structs.replace(tenant, slug=slug))
    await put_user(deps, "lost", scim_user("a@example.com"))  # its job was never enqueued
    seen: list[str] = []
    real = sweep_module.sweep_tenants

    async def spy(d: WorkerDeps, slugs: list[str]) -> int:
        seen.extend(slugs)
        total: int = await real(d, slugs)
        return total

    monkeypatch.setattr(sweep_module, "sweep_tenants", spy)
    assert await sweep_round(deps, budget_s=5) == 1
    assert seen == [ORG]
