"""What the worker notes as syncs end: the admin page's charts
(shadow/charts.py) and failure notifications (worker/webhooks.py).

A finished sync adds to its minute's bucket in one Lua step; a cron job
samples every tenant's queue depth once a minute. Neither may break a
sync: a failed write is logged and dropped (the charts are a picture, the
sync state is the truth).
"""

from __future__ import annotations

import logging
from typing import Any

from arq.cron import CronJob, cron

from shadow.work import WorkIndex
from worker.deps import WorkerDeps
from worker.webhooks import notify

__all__ = ["note_finished", "sample_queues", "sample_queues_cron"]

logger = logging.getLogger("worker.activity")


async def note_finished(
    deps: WorkerDeps, tenant: str, user_id: str, state: str, error: str, lag_s: float | None
) -> None:
    """A sync ended `synced` or `failed` (with its lag, if known): counted
    for the charts; a failure is also a notification (worker/webhooks.py)."""
    try:
        await deps.charts.record_sync(tenant, state, lag_s)
    except Exception as exc:  # a chart never fails a sync
        logger.warning("chart write of tenant %s failed: %s", tenant, type(exc).__name__)
    if state == "failed":
        await notify(deps, tenant, "user.failed", {"user_id": user_id, "reason": error})


async def sample_queues(ctx: dict[str, Any]) -> int:
    """The cron job: note the queue depth of each tenant with work
    (shadow/work.py) in this minute's bucket; an idle tenant's queue is
    empty, which a minute without a sample already says."""
    deps = WorkerDeps.of(ctx)
    slugs = await WorkIndex(deps.redis).tenants()
    for slug in slugs:
        try:
            await deps.charts.sample_queue(slug)
        except Exception as exc:  # one tenant's trouble must not stop the others
            logger.warning("queue sample of tenant %s failed: %s", slug, type(exc).__name__)
    return len(slugs)


def sample_queues_cron() -> CronJob:
    return cron(
        sample_queues,
        name="sample_queues",
        second=50,  # once a minute
        timeout=50,
        keep_result=0,
        max_tries=1,
        unique=True,
    )
