"""The charts' minute buckets in Redis (shadow/charts.py): written by the
sync job as it finishes, sampled for queue depth, bounded to 1,440 fields."""

from __future__ import annotations

import pytest
from arq.worker import Retry
from redis.asyncio import Redis

from shadow import Tenant, keys
from shadow.charts import MINUTES, ChartStore, now_minute
from tests.support.worker_fixtures import ORG, break_every_pass, put_user, run_sync, scim_user
from worker import sync as sync_module
from worker.activity import sample_queues
from worker.deps import WorkerDeps


async def test_a_finished_sync_is_counted_in_its_minute_with_its_lag(
    deps: WorkerDeps, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())
    await put_user(deps, "u-2", scim_user("bad@@example.com"))
    assert await run_sync(deps, "u-1") == "synced"
    assert await run_sync(deps, "u-2") == "failed"

    (series,) = await deps.charts.read([ORG])
    last = series.buckets[-1]
    assert last.minute == now_minute()
    assert (last.applied, last.failed, last.queue) == (1, 1, -1)
    assert sum(last.lags) == 2  # both waited since their write: each has a lag


async def test_the_queue_is_sampled_per_tenant(
    deps: WorkerDeps, redis: Redis, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())  # each write queues its user
    await put_user(deps, "u-2", scim_user("b@example.com"))
    idle = await deps.tenants.create(
        Tenant(slug="idle", name="Idle", lms_url="https://lms.test", lms_api_key="k")
    )
    # Tenants with work only: an idle tenant's queue is empty (shadow/work.py).
    assert await sample_queues({"deps": deps}) == 1
    assert (await deps.charts.read([idle.slug]))[0].buckets[-1].queue == -1  # no sample
    (series,) = await deps.charts.read([ORG])
    assert series.buckets[-1].queue == 2


async def test_the_ring_keeps_one_day_whatever_the_time_written(redis: Redis) -> None:
    charts = ChartStore(redis)
    start = now_minute() - 3 * MINUTES
    for minute in range(start, start + 3 * MINUTES, 7):
        await charts.record_sync(ORG, "synced", 0.2, minute=minute)
    assert await redis.hlen(keys.charts(ORG)) <= MINUTES
    # Yesterday's buckets are dropped when read; a reused slot starts afresh.
    await charts.record_sync(ORG, "failed", None, minute=start + 3 * MINUTES)
    (series,) = await charts.read([ORG], minute=start + 3 * MINUTES)
    now = start + 3 * MINUTES
    written = [m for m in range(start, now, 7) if m > now - MINUTES]
    assert sum(b.applied for b in series.buckets) == len(written)
    assert (series.buckets[-1].failed, series.buckets[-1].applied) == (1, 0)


async def test_a_user_failed_by_repeated_faults_is_counted_too(
    deps: WorkerDeps, tenant: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put_user(deps, "u-1", scim_user())
    break_every_pass(monkeypatch)
    for _ in range(sync_module.MAX_FAULTS - 1):
        with pytest.raises(Retry):
            await run_sync(deps, "u-1")
    assert (await run_sync(deps, "u-1")).startswith("failed: unexpected error")
    (series,) = await deps.charts.read([ORG])
    assert (series.buckets[-1].applied, series.buckets[-1].failed) == (0, 1)
