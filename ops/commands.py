"""What operators do: retry failed users, decide on a tripped breaker,
change its thresholds, ask for a reconcile.

One implementation behind the CLI, the admin API and the admin page, so the
three cannot drift; each shell checks who may act and writes its own audit
line. The state these commands change lives in `shadow/` (breaker,
reconcile, sync records); the worker does the LMS work they queue.
"""

from __future__ import annotations

from typing import Any

import msgspec
from arq.connections import ArqRedis
from redis.asyncio import Redis

from shadow import ResourceStore, SyncStore, TenantError, TenantStore
from shadow.breaker import BreakerConfig, cancel, get_config, set_config
from shadow.breaker import approve as release_held
from shadow.reconcile import last_report, mark_queued, progress_of
from worker.queue import QUEUE_NAME, enqueue_sync
from worker.reconcile import RECONCILE_JOB, reconcile_job_id

__all__ = [
    "approve",
    "cancel",
    "configure_breaker",
    "reconcile_state",
    "replay",
    "request_reconcile",
]


async def replay(redis: Redis, queue: ArqRedis, slug: str, user_id: str | None) -> int:
    """Mark failed users (or one user) pending again and enqueue them."""
    tenant = await TenantStore(redis).get(slug)
    if tenant is None:
        raise TenantError(f"no tenant {slug!r}")
    resources, sync = ResourceStore(redis), SyncStore(redis)
    ids = [user_id] if user_id else await sync.users_in(slug, "failed", limit=1_000_000)
    count = 0
    for uid in ids:
        due = await resources.requeue(slug, uid, interval_ms=tenant.job_interval_ms, force=True)
        if due is not None:
            await enqueue_sync(queue, slug, uid, due)
            await sync.log_event(slug, uid, "replayed")
            count += 1
    return count


async def approve(redis: Redis, queue: ArqRedis, tenant: str, *, interval_ms: int) -> int:
    """Release a tripped breaker's held users (re-marked pending and enqueued)
    and let deactivations through for one window; how many were released."""

    async def enqueue(user_id: str, due_ms: int) -> None:
        await enqueue_sync(queue, tenant, user_id, due_ms)

    return await release_held(redis, tenant, interval_ms=interval_ms, enqueue=enqueue)


async def configure_breaker(redis: Redis, slug: str, changes: dict[str, Any]) -> BreakerConfig:
    """Change some of the breaker's thresholds; ValueError names every bad value."""
    config = msgspec.structs.replace(await get_config(redis, slug), **changes)
    await set_config(redis, slug, config)
    return config


async def request_reconcile(redis: Redis, queue: ArqRedis, slug: str, repair: bool) -> str | None:
    """Queue a reconcile of the tenant for a worker; its job id, or None when
    one is already queued or running (arq refuses a second job of that id)."""
    job_id = reconcile_job_id(slug)
    job = await queue.enqueue_job(
        RECONCILE_JOB, slug, repair, _job_id=job_id, _queue_name=QUEUE_NAME
    )
    if job is None:
        return None
    await mark_queued(redis, slug)
    return job_id


async def reconcile_state(redis: Redis, slug: str) -> dict[str, Any]:
    """Progress of the current or last reconcile, and the last report."""
    report = await last_report(redis, slug)
    return {
        "tenant": slug,
        "progress": await progress_of(redis, slug) or None,
        "last": msgspec.to_builtins(report) if report else None,
    }
