"""Offboarding and erasure, beyond the shadow's keys: the tenant's (or the
person's) jobs in the shared arq queue and its series in the workers'
metrics hash. The CLI and the admin API both call these."""

from __future__ import annotations

import time

import msgspec
from arq.connections import ArqRedis
from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from redis.asyncio import Redis

from shadow import ResourceStore, StoreConflict, SyncStore, TenantError, TenantStore, keys
from shadow.lifecycle import (
    Erasure,
    Progress,
    PurgeProgress,
    begin_purge,
    cut_credentials,
    erase_user,
    mark_deleting,
    purge_keys,
    scan_keys,
)
from shadow.metrics import METRICS_KEY, decode_field
from worker.liveness import forget_claims
from worker.queue import QUEUE_NAME, enqueue_many, sync_job_id
from worker.reconcile import reconcile_job_id
from worker.rules import resync_job_id

__all__ = [
    "Deactivation",
    "deactivate_learners",
    "erase_person",
    "offboard_tenant",
    "purge_queue",
    "withdraw_first",
]

_BATCH = 100
#: arq's key prefixes of a job id.
_ARQ_PREFIXES = (job_key_prefix, retry_key_prefix, result_key_prefix, in_progress_key_prefix)


async def purge_queue(
    queue: ArqRedis, slug: str, user_id: str | None = None, *, thorough: bool = True
) -> int:
    """Drop the tenant's jobs (or one user's) from the shared queue with the
    arq keys that name them (job, retry, result, in-progress); the number of
    keys and queue entries removed. `thorough` also scans the queue's Redis
    for such keys of jobs no longer in the queue (finished or running)."""
    stem = sync_job_id(slug, user_id, 0)[:-1] if user_id else f"sync:{slug}:"
    ids: list[str] = []
    async for job_id, _ in queue.zscan_iter(QUEUE_NAME, match=stem + "*", count=_BATCH):
        ids.append(job_id.decode() if isinstance(job_id, bytes) else str(job_id))
    if user_id is None:
        ids += [resync_job_id(slug), reconcile_job_id(slug)]
    removed = 0
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        removed += int(await queue.zrem(QUEUE_NAME, *chunk))
        arq_keys = [prefix + job_id for job_id in chunk for prefix in _ARQ_PREFIXES]
        for at in range(0, len(arq_keys), _BATCH):
            removed += int(await queue.unlink(*arq_keys[at : at + _BATCH]))
    if thorough:
        batch: list[bytes] = []
        async for key in scan_keys(queue, f"arq:*:{stem}*"):
            batch.append(key)
            if len(batch) >= _BATCH:
                removed += int(await queue.unlink(*batch))
                batch = []
        if batch:
            removed += int(await queue.unlink(*batch))
    return removed + await forget_claims(queue, stem)


async def purge_metrics(redis: Redis, slug: str) -> int:
    """Drop the tenant's series from the workers' metrics hash."""
    fields = []
    async for field, _ in redis.hscan_iter(METRICS_KEY, count=_BATCH):
        key = decode_field(field)
        if key is not None and len(key) > 1 and key[1] == slug:
            fields.append(field)
    for start in range(0, len(fields), _BATCH):
        await redis.hdel(METRICS_KEY, *fields[start : start + _BATCH])  # type: ignore[misc]
    return len(fields)


async def offboard_tenant(
    redis: Redis,
    queue: ArqRedis,
    slug: str,
    *,
    progress: Progress | None = None,
    time_budget_s: float | None = None,
    lock_wait_s: float = 150.0,
) -> PurgeProgress:
    """Delete every trace of a tenant (shadow/lifecycle.py's steps), its
    queued jobs and metric series. Resumable: call again until `state` is
    "deleted". `time_budget_s` bounds one call (the admin API's)."""
    deadline = None if time_budget_s is None else time.monotonic() + time_budget_s
    first = await begin_purge(redis, slug)
    # Pending work goes before the keys: no job is started for the tenant after.
    await purge_queue(queue, slug, thorough=False)
    await purge_metrics(redis, slug)
    result = await purge_keys(
        redis, slug, progress=progress, deadline=deadline, lock_wait_s=lock_wait_s
    )
    result.removed += first
    if result.state == "deleted":
        await purge_queue(queue, slug)  # a job a running one re-queued meanwhile
    return result


class Deactivation(msgspec.Struct, kw_only=True):
    """Where `--deactivate-learners` stands: `done` once no user is left to
    deactivate (then the purge may go on)."""

    tenant: str
    queued: int
    pending: int
    held: int
    failed: int
    done: bool


async def deactivate_learners(redis: Redis, queue: ArqRedis, slug: str) -> Deactivation:
    """Before a purge, deactivate the tenant's learners the way the IdP would:
    every live user is deleted in the shadow and its job queued, so each
    deactivation goes through the worker and the mass-deactivation breaker,
    which holds them until an admin approves (`breaker approve`). The
    tenant's credentials go at once; its record stays for the workers."""
    tenant = await TenantStore(redis).get(slug)
    if tenant is None:
        if await redis.hexists(keys.TENANTS_DELETING, slug):  # type: ignore[misc]
            return Deactivation(tenant=slug, queued=0, pending=0, held=0, failed=0, done=True)
        raise TenantError(f"no tenant {slug!r}")
    if not tenant.enabled:
        raise TenantError(
            f"tenant {slug!r} is disabled, so no worker would deactivate its learners; "
            "enable it first, or delete it without --deactivate-learners"
        )
    await mark_deleting(redis, slug, learners=True)
    await cut_credentials(redis, slug, with_config=False)
    resources, queued, skipped = ResourceStore(redis), 0, 0
    while ids := await redis.zrange(keys.resource_ids(slug, "u"), skipped, skipped + _BATCH - 1):
        jobs = []
        for raw in ids:
            rid = raw.decode()
            try:
                outcome = await resources.write(
                    slug, "u", rid, "delete", None, interval_ms=tenant.job_interval_ms
                )
            except StoreConflict:
                skipped += 1  # not live after all: never ask again
                continue
            if outcome.enqueue_due_ms is not None:
                jobs.append((rid, outcome.enqueue_due_ms))
        await enqueue_many(queue, slug, jobs)
        queued += len(ids)
    counts = await SyncStore(redis).counts(slug)
    held = int(await redis.zcard(keys.breaker_held(slug)))
    return Deactivation(
        tenant=slug,
        queued=queued,
        pending=counts.pending,
        held=held,
        failed=counts.failed,
        done=counts.pending == 0 and counts.failed == 0 and held == 0,
    )


async def withdraw_first(redis: Redis, queue: ArqRedis, slug: str, user_id: str) -> str | None:
    """Before an erasure that asks for the learner's deactivation: delete the
    user in the shadow and queue it, so the worker deactivates its learner
    (through the breaker) as for an IdP's delete. None once that is done
    (the record is gone), else the user's sync state."""
    tenant = await TenantStore(redis).get(slug)
    if tenant is None:
        raise TenantError(f"no tenant {slug!r}")
    doc = await redis.hget(keys.resource(slug, "u", user_id), "del")  # type: ignore[misc]
    if doc is None:
        return None
    if doc != b"1":
        outcome = await ResourceStore(redis).write(
            slug, "u", user_id, "delete", None, interval_ms=tenant.job_interval_ms
        )
        if outcome.enqueue_due_ms is not None:
            await enqueue_many(queue, slug, [(user_id, outcome.enqueue_due_ms)])
    if await redis.zscore(keys.breaker_held(slug), user_id) is not None:
        return "held"
    state = await redis.hget(keys.sync_state(slug, user_id), "state")  # type: ignore[misc]
    return state.decode() if state else "pending"


async def erase_person(redis: Redis, queue: ArqRedis, slug: str, user_id: str) -> Erasure:
    """Erase one user (shadow/lifecycle.py `erase_user`) and its queued jobs;
    users that waited on it for a conflict are queued again."""
    tenant = await TenantStore(redis).get(slug)
    if tenant is None:
        raise TenantError(f"no tenant {slug!r}")
    await purge_queue(queue, slug, user_id, thorough=False)
    erased = await erase_user(redis, slug, user_id)
    await purge_queue(queue, slug, user_id)
    if erased.released:
        due_jobs = await ResourceStore(redis).requeue_changed_groups(
            slug, list(erased.released), interval_ms=tenant.job_interval_ms
        )
        await enqueue_many(queue, slug, due_jobs)
    return erased
