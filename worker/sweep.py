"""The sweep: re-enqueue users whose change is pending but whose job is gone.

The shadow's pending mark is the source of truth and the arq job only a
wake-up call (docs/architecture.md, flow step 3), so a job lost to a failed enqueue, a
crashed worker, an expired or exhausted job only delays its user until the
next sweep (invariant 2). A fresh job takes a new slot on the tenant's
fair-share clock, so a sweep of one tenant's backlog cannot jump ahead of
another tenant's changes (invariant 7).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.cron import CronJob, cron

from core.settings import Settings
from shadow import Tenant, keys
from shadow.sync import GONE_KEPT_MS
from worker.deps import WorkerDeps
from worker.queue import enqueue_jobs, sync_job_id
from worker.rules import drain_group_followups, resume_lost_resync

__all__ = [
    "SWEEP_BATCH",
    "SWEEP_CURSOR",
    "TENANT_BATCH",
    "sweep",
    "sweep_cron",
    "sweep_round",
    "sweep_tenant",
    "sweep_tenants",
]

logger = logging.getLogger("worker.sweep")

#: Users looked at per tenant and run, oldest pending first: bounded work.
SWEEP_BATCH = 1000
#: Tenants whose state is read in one round trip (and users checked in one).
TENANT_BATCH = 250
#: Where in the sorted tenants the next run starts (in the queue's Redis,
#: beside arq's keys): a run that spends its time budget leaves the rest to
#: the next, and no tenant is always last.
SWEEP_CURSOR = "scim-bridge:sweep:next"
_decode_tenant = msgspec.json.Decoder(Tenant).decode


def sweep_budget_s(settings: Settings) -> float:
    """How long one run may take: most of an interval, well inside its timeout."""
    return max(1.0, min(0.8 * settings.sweep_interval_s, settings.job_timeout_s / 2))


async def sweep(ctx: dict[str, Any]) -> int:
    """The cron job: `sweep_round` within its time budget."""
    deps = WorkerDeps.of(ctx)
    return await sweep_round(deps, budget_s=sweep_budget_s(deps.settings))


async def sweep_round(deps: WorkerDeps, *, budget_s: float, batch_size: int = TENANT_BATCH) -> int:
    """Sweep the enabled tenants, a batch at a time, from where the last
    run stopped, until done or `budget_s` is spent (one batch at least);
    the number re-enqueued."""
    slugs = await deps.tenants.slugs()
    if not slugs:
        return 0
    first = int(await deps.queue.get(SWEEP_CURSOR) or 0) % len(slugs)
    order = slugs[first:] + slugs[:first]
    deadline = time.monotonic() + budget_s
    total = swept = 0
    while swept < len(order) and (not swept or time.monotonic() < deadline):
        batch = order[swept : swept + batch_size]
        try:
            total += await sweep_tenants(deps, batch)
        except Exception:  # one batch's trouble must not stop the others' sweep
            logger.exception("sweep of tenants %s to %s failed", batch[0], batch[-1])
        swept += len(batch)
    # Start the next run where this one stopped (or one further on): a
    # position, not a slug, so that a tenant deleted leaves no trace here.
    await deps.queue.set(SWEEP_CURSOR, (first + (swept if swept < len(order) else 1)) % len(order))
    if swept < len(order):
        logger.warning(
            "sweep used its time budget after %d of %d tenants; the next run goes on",
            swept,
            len(order),
        )
    if total:
        logger.info("sweep re-enqueued %d users", total)
    return total


async def sweep_tenant(
    deps: WorkerDeps, slug: str, *, now_ms: int | None = None, limit: int = SWEEP_BATCH
) -> int:
    """Re-enqueue the tenant's users pending longer than the grace period
    whose job no longer exists; returns how many."""
    return await sweep_tenants(deps, [slug], now_ms=now_ms, limit=limit)


async def sweep_tenants(
    deps: WorkerDeps, slugs: list[str], *, now_ms: int | None = None, limit: int = SWEEP_BATCH
) -> int:
    """`sweep_tenant` for many tenants, their state read in a few round trips."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    older_than = now_ms - int(deps.settings.sweep_grace_s * 1000)
    async with deps.redis.pipeline(transaction=False) as pipe:
        for slug in slugs:
            pipe.get(keys.tenant_config(slug))
            pipe.hget(keys.rules_resync(slug), "state")
            pipe.exists(keys.followup_users(slug), keys.followup_groups(slug))
            # Deleted users' ids whose 90 days are up (shadow.retention.trim_gone).
            pipe.zremrangebyscore(keys.gone_users(slug), "-inf", f"({now_ms - GONE_KEPT_MS}")
            pipe.zrangebyscore(
                keys.state_set(slug, "pending"), "-inf", older_than, start=0, num=limit
            )
        rows = await pipe.execute()
    candidates: list[tuple[Tenant, str]] = []
    for i, slug in enumerate(slugs):
        raw, resync, followups, _, pending = rows[5 * i : 5 * i + 5]
        tenant = _decode_tenant(raw) if raw else None
        if tenant is None or not tenant.enabled:
            continue
        if _text(resync) == "running" and await resume_lost_resync(deps, slug):
            logger.info("sweep restarted the rules re-sync of tenant %s", slug)
        if followups:  # group changes whose re-sync a crash interrupted
            await drain_group_followups(deps.redis, deps.queue, tenant)
        candidates += [(tenant, _text(uid)) for uid in pending]
    lost = await _lost(deps, candidates) if candidates else []
    if not lost:
        return 0
    dues = await deps.resources.requeue_many(
        [(tenant.slug, uid, tenant.job_interval_ms) for tenant, uid in lost], force=True
    )
    requeued = [(t.slug, uid, due) for (t, uid), due in zip(lost, dues, strict=True) if due]
    await enqueue_jobs(deps.queue, requeued)
    for start in range(0, len(requeued), 100):  # a hundred at a time, not one by one
        chunk = requeued[start : start + 100]
        await asyncio.gather(
            *(deps.sync.log_event(slug, uid, "requeued", reason="sweep") for slug, uid, _ in chunk)
        )
    return len(requeued)


async def _lost(deps: WorkerDeps, candidates: list[tuple[Tenant, str]]) -> list[tuple[Tenant, str]]:
    """The overdue pending users no job will sync: no queue mark and no lock
    (a job started, then died), a marked job that no longer exists, or one
    that a worker claimed (arq's in-progress key) but is not running (no
    lock: the worker died between claiming and starting it; arq keeps such a
    claim for an hour, and worker/liveness.py frees it only while its worker
    is registered). The old job, if it ever runs, finds the user up to date."""
    async with deps.redis.pipeline(transaction=False) as pipe:
        for tenant, uid in candidates:
            pipe.zscore(keys.queued(tenant.slug), uid)
            pipe.exists(keys.user_lock(tenant.slug, uid))
        marks = await pipe.execute()
    dues = [None if d is None else int(d) for d in marks[0::2]]
    async with deps.queue.pipeline(transaction=False) as pipe:
        for (tenant, uid), due in zip(candidates, dues, strict=True):
            job_id = sync_job_id(tenant.slug, uid, due or 0)
            pipe.exists(job_key_prefix + job_id)
            pipe.exists(in_progress_key_prefix + job_id)
        jobs = await pipe.execute()
    lost = []
    for i, (due, locked) in enumerate(zip(dues, marks[1::2], strict=True)):
        exists, claimed = jobs[2 * i], jobs[2 * i + 1]
        if due is not None:
            if exists and not (claimed and not locked):
                continue
        elif locked:
            continue  # a job is running it right now
        lost.append(candidates[i])
    return lost


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def sweep_cron(settings: Settings) -> CronJob:
    """The sweep as an arq cron job, every `sweep_interval_s` (rounded to
    what a cron schedule can say: a divisor of a minute, or whole minutes)."""
    every = max(1, settings.sweep_interval_s)
    if every < 60:
        schedule: dict[str, Any] = {"second": set(range(0, 60, every))}
    else:
        schedule = {"minute": set(range(0, 60, max(1, every // 60))), "second": 0}
    return cron(
        sweep,
        name="sweep",
        timeout=settings.job_timeout_s,
        keep_result=0,
        max_tries=1,
        unique=True,
        **schedule,
    )
