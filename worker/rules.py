"""Carry a change of a tenant's mapping rules to every learner
(docs/architecture.md, invariant 9; the cursor and its atomic start are in
shadow/rules.py).

`resync_rules` is the arq job the API and the CLI enqueue after a rule
change: it re-queues the tenant's users a page at a time, each with a new
version, through the same fair-share clock as SCIM changes, so a large
tenant's re-sync never jumps ahead of another tenant's work. A re-sync whose
job was lost is started again by the sweep (`resume_lost_resync`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.worker import Function, Retry, func
from redis.asyncio import Redis

from shadow import MappingStore, ResourceStore, Tenant
from worker.deps import WorkerDeps
from worker.queue import QUEUE_NAME, enqueue_many

__all__ = [
    "FOLLOWUP_JOB",
    "RESYNC_JOB",
    "drain_group_followups",
    "enqueue_followups",
    "enqueue_rules_resync",
    "followups_function",
    "resume_lost_resync",
    "resync_function",
    "resync_rules",
]

logger = logging.getLogger("worker.rules")

RESYNC_JOB = "resync_rules"
#: Users re-queued per page: one round trip of scripts and one of jobs.
PAGE_SIZE = 500
#: Work per job run before it hands the worker slot back (it comes again).
_BUDGET_S = 20.0


def resync_job_id(slug: str) -> str:
    """One job per tenant: arq refuses a second while one is queued or
    running, and the running one sees a newer generation by itself."""
    return f"rules-resync:{slug}"


async def enqueue_rules_resync(queue: ArqRedis, slug: str, *, defer_s: float = 0) -> None:
    """Ask a worker to carry the tenant's newest rules to every user."""
    await queue.enqueue_job(
        RESYNC_JOB,
        slug,
        _job_id=resync_job_id(slug),
        _queue_name=QUEUE_NAME,
        _defer_by=defer_s or None,
    )


async def resync_rules(ctx: dict[str, Any], slug: str) -> str:
    """The job: re-queue pages of users until the re-sync is done, or the
    budget is spent (then it runs again shortly)."""
    deps = WorkerDeps.of(ctx)
    store = MappingStore(deps.redis)
    tenant = await deps.tenants.get(slug)
    if tenant is None:
        return "tenant missing"
    deadline = time.monotonic() + min(_BUDGET_S, deps.settings.job_timeout_s / 2)
    requeued = 0
    while True:  # at least one page a run, however small the budget
        page = await store.next_page(slug, PAGE_SIZE)
        if page is None:
            return f"rules re-sync of {slug}: done, {requeued} users re-queued by this run"
        if page.user_ids:
            due_jobs = await deps.resources.requeue_changed_groups(
                slug, page.user_ids, interval_ms=tenant.job_interval_ms
            )
            await enqueue_many(deps.queue, slug, due_jobs)
            requeued += len(page.user_ids)
        if not await store.advance(slug, page):
            logger.info("rules of %s changed again during the re-sync: starting over", slug)
        if time.monotonic() >= deadline:
            raise Retry(defer=1)


async def resume_lost_resync(deps: WorkerDeps, slug: str) -> bool:
    """Enqueue the tenant's re-sync job when a re-sync runs and no job
    drives it (the API died before enqueueing it, or it was lost)."""
    progress = await MappingStore(deps.redis).progress(slug)
    if progress.state != "running":
        return False
    if await deps.queue.exists(job_key_prefix + resync_job_id(slug)):
        return False
    await enqueue_rules_resync(deps.queue, slug)
    return True


FOLLOWUP_JOB = "drain_group_followups"


def followup_job_id(slug: str) -> str:
    return f"group-followups:{slug}"


async def drain_group_followups(
    redis: Redis, queue: ArqRedis, tenant: Tenant, *, pages: int | None = None
) -> bool:
    """Re-sync the users a group change may have moved between teams.

    The group change wrote them (or, for a rename, the group) to the
    tenant's follow-up sets in its own atomic step (shadow/scripts.py), so
    a crash here only delays: each entry is dropped only after its users
    were marked pending. `pages` bounds the work (the API drains a little
    inline and leaves the rest to a worker); True when nothing is left.
    """
    resources = ResourceStore(redis)
    slug = tenant.slug
    teams = await MappingStore(redis).uses_groups(slug)
    done = 0
    while pages is None or done < pages:
        read = await resources.followups(slug, PAGE_SIZE)
        if read.groups:  # a renamed group: its members, a page at a time
            gid = read.groups[0]
            after: str | None = None
            while teams and (ids := await resources.member_ids_after(slug, gid, after, PAGE_SIZE)):
                await resources.add_followup_users(slug, ids)
                after = ids[-1]
        elif not read.users:
            return True
        elif teams:
            due_jobs = await resources.requeue_changed_groups(
                slug, read.users, interval_ms=tenant.job_interval_ms
            )
            await enqueue_many(queue, slug, due_jobs)
        group = read.groups[0] if read.groups else None
        users = () if group else read.users
        if not await resources.drop_followups(slug, read, users=users, group=group):
            return False  # a group changed meanwhile: the next drain takes it all again
        done += 0 if group else 1  # a group's expansion is not a page of re-syncs
    return False


async def followups_job(ctx: dict[str, Any], slug: str) -> str:
    """The arq job: drain a tenant's group follow-ups (see above)."""
    deps = WorkerDeps.of(ctx)
    tenant = await deps.tenants.get(slug)
    if tenant is None:
        return "tenant missing"
    if not await drain_group_followups(deps.redis, deps.queue, tenant):
        raise Retry(defer=1)  # groups changed meanwhile: drain again shortly
    return f"group follow-ups of {slug} drained"


async def enqueue_followups(queue: ArqRedis, slug: str) -> None:
    await queue.enqueue_job(
        FOLLOWUP_JOB, slug, _job_id=followup_job_id(slug), _queue_name=QUEUE_NAME
    )


def followups_function(timeout_s: float) -> Function:
    return func(followups_job, name=FOLLOWUP_JOB, max_tries=5, timeout=timeout_s, keep_result=0)


def resync_function(timeout_s: float) -> Function:
    """The arq function to list in the worker's `functions` (worker/settings.py)."""
    return func(
        resync_rules,
        name=RESYNC_JOB,
        max_tries=1000,  # each budget's end is a `Retry`; the cursor keeps the progress
        timeout=timeout_s,
        keep_result=0,
    )
