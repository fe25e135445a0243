"""The sweep: re-enqueue users whose change is pending but whose job is gone.

The shadow's pending mark is the source of truth and the arq job only a
wake-up call (design.md flow step 3), so a job lost to a failed enqueue, a
crashed worker, an expired or exhausted job only delays its user until the
next sweep (invariant 2). A fresh job takes a new slot on the tenant's
fair-share clock, so a sweep of one tenant's backlog cannot jump ahead of
another tenant's changes (invariant 7).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.cron import CronJob, cron

from api.settings import Settings
from shadow.retention import trim_gone
from shadow.sync import GONE_KEPT_MS
from worker.deps import WorkerDeps
from worker.queue import enqueue_sync, job_exists, sync_job_id
from worker.rules import drain_group_followups, resume_lost_resync

__all__ = ["SWEEP_BATCH", "sweep", "sweep_cron", "sweep_tenant"]

logger = logging.getLogger("worker.sweep")

#: Users looked at per tenant and run, oldest pending first: bounded work.
SWEEP_BATCH = 1000


async def sweep(ctx: dict[str, Any]) -> int:
    """The cron job: sweep every enabled tenant; the number re-enqueued."""
    deps = WorkerDeps.of(ctx)
    total = 0
    for slug in await deps.tenants.slugs():
        try:
            total += await sweep_tenant(deps, slug)
        except Exception:  # one tenant's trouble must not stop the others' sweep
            logger.exception("sweep of tenant %s failed", slug)
    return total


async def sweep_tenant(
    deps: WorkerDeps, slug: str, *, now_ms: int | None = None, limit: int = SWEEP_BATCH
) -> int:
    """Re-enqueue the tenant's users pending longer than the grace period
    whose job no longer exists; returns how many."""
    tenant = await deps.tenants.get(slug)
    if tenant is None or not tenant.enabled:
        return 0
    if await resume_lost_resync(deps, slug):
        logger.info("sweep restarted the rules re-sync of tenant %s", slug)
    # Group changes whose re-sync a crash interrupted (normally drained at once).
    await drain_group_followups(deps.redis, deps.queue, tenant)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    await trim_gone(deps.redis, slug, now_ms - GONE_KEPT_MS)
    older_than = now_ms - int(deps.settings.sweep_grace_s * 1000)
    interval_ms = tenant.job_interval_ms
    requeued = 0
    for user_id in await deps.sync.users_in(slug, "pending", older_than_ms=older_than, limit=limit):
        due = await deps.sync.queued_due(slug, user_id)
        if due is not None:
            if await job_exists(deps.queue, slug, user_id, due) and not await _claim_lost(
                deps, slug, user_id, due
            ):
                continue
        elif await deps.sync.is_locked(slug, user_id):
            continue  # a job is running it right now
        new_due = await deps.resources.requeue(slug, user_id, interval_ms=interval_ms, force=True)
        if new_due is None:
            continue  # the user is gone
        await enqueue_sync(deps.queue, slug, user_id, new_due)
        await deps.sync.log_event(slug, user_id, "requeued", reason="sweep")
        requeued += 1
    if requeued:
        logger.info("sweep re-enqueued %d users of tenant %s", requeued, slug)
    return requeued


async def _claim_lost(deps: WorkerDeps, slug: str, user_id: str, due: int) -> bool:
    """True when a worker claimed the user's job (arq's in-progress key) but
    the job is not running: the worker died between claiming and starting it
    (a job clears its queue mark and takes the user's lock first thing).
    arq keeps such a claim for its longest function timeout + 10 s (over an
    hour with the reconcile job), so the user gets a new job now; the old one,
    when its claim expires, finds the user up to date."""
    claim = in_progress_key_prefix + sync_job_id(slug, user_id, due)
    return bool(await deps.queue.exists(claim)) and not await deps.sync.is_locked(slug, user_id)


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
