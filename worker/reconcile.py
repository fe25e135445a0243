"""Drift reconciliation: find where the LMS no longer matches the shadow.

Learners can change behind the bridge's back: an LMS admin edits a name,
deactivates someone by hand, clears an `external_ref`. The worker only acts
on SCIM changes, so such drift stays until the next change of that user.
`reconcile_tenant` pages through the tenant's whole organisation (paced by
the tenant's shared limiter, like every other LMS call), compares each
linked learner with what the shadow maps to (`mappings.map_user` on the
stored document with the tenant's rules, plus the expected status) and:

- *repairs* drift through the one path to the LMS: under the user's lock it
  clears the learner fields from the sync record's `applied` snapshot
  (keeping the observed status, so no needless status call is made), marks
  the user pending and enqueues it; the normal sync job then re-sends every
  mapped field in one PATCH and fixes the status;
- *reports* what it found: `changed` (fields edited by hand),
  `deactivated_by_hand` / `reactivated_by_hand`, `missing` (no learner
  carries the user's `external_ref`), `unknown_ref` (an active learner
  whose `external_ref` names no user of this tenant, or is not an id of the
  bridge at all; deactivated ones are counted as `retired`, the normal end
  of a deleted user), and `active_after_delete` (an active learner of a user
  whose delete the bridge applied: a repair deactivates it again, since the
  IdP withdrew that access).

Everything read from the LMS is untrusted: a row that is not a learner is
counted (`invalid_learners`) and left out, an `external_ref` is used as a
user id only when it is one the bridge hands out, and an error about one
user is counted (`skipped["error"]`) without stopping the rest.

Only users the shadow says are `synced` are compared: pending, failed and
held users are the worker's business and are counted as skipped, as is a
user synced after the scan began (the page read may predate it). Reports
carry ids and field names, never values.

`reconcile_job` is the arq entry point the admin API enqueues (job name
`RECONCILE_JOB`); the CLI calls `reconcile_tenant` directly. A Redis lock
keeps one reconcile per tenant at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from arq.constants import job_key_prefix
from arq.cron import CronJob, cron
from arq.worker import Function, func
from redis.exceptions import RedisError

from core.settings import Settings
from lms_client import Learner, LearnerPage, LmsDeferred, LmsError, LmsTransientError
from mappings import GroupRef, MappingConfigError, RuleSet, map_user
from shadow import TenantError, keys, now_iso
from shadow.keys import is_resource_id
from shadow.reconcile import (
    LOCK_TTL_MS,
    Drift,
    DriftKind,
    ReconcileReport,
    last_report,
    mark_queued,
    release_lock,
    save_report,
    set_progress,
    take_lock,
)
from shadow.sync import SyncInput
from worker.deps import TenantLms, WorkerDeps
from worker.queue import QUEUE_NAME, enqueue_sync

__all__ = [
    "PAGE_SIZE",
    "RECONCILE_JOB",
    "Progress",
    "reconcile_function",
    "reconcile_job",
    "reconcile_job_id",
    "reconcile_tenant",
    "schedule_reconciles",
]

logger = logging.getLogger("worker.reconcile")

RECONCILE_JOB = "reconcile_tenant"
PAGE_SIZE = 200
_PAGE_ATTEMPTS = 5

#: `progress(learners_seen, expected_total)` after every page.
Progress = Callable[[int, int], None]
Sleep = Callable[[float], Awaitable[None]]


async def reconcile_tenant(
    deps: WorkerDeps,
    slug: str,
    *,
    repair: bool = True,
    progress: Progress | None = None,
    sleep: Sleep = asyncio.sleep,
    page_size: int = PAGE_SIZE,
) -> ReconcileReport:
    """Compare a tenant's organisation with the shadow; repair or report."""
    tenant = await deps.tenants.get(slug)
    if tenant is None:
        raise TenantError(f"no tenant {slug!r}")
    token = await take_lock(deps.redis, slug)
    report = ReconcileReport(tenant=slug, repair=repair, started_at=now_iso())
    started = time.monotonic()
    try:
        await set_progress(deps.redis, slug, state="running", seen=0, started_at=report.started_at)
        try:
            await _run(deps, report, deps.lms_for(tenant), progress, sleep, page_size)
        except Exception as exc:
            report.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            report.finished_at = now_iso()
            report.duration_s = round(time.monotonic() - started, 3)
            await save_report(deps.redis, report)
            await set_progress(deps.redis, slug, state="failed" if report.error else "done")
    finally:
        await release_lock(deps.redis, slug, token)
    return report


async def _run(
    deps: WorkerDeps,
    report: ReconcileReport,
    lms: TenantLms,
    progress: Progress | None,
    sleep: Sleep,
    page_size: int,
) -> None:
    slug = report.tenant
    expected = await deps.resources.count(slug, "u")
    learners: dict[int, Learner] = {}
    page: int | None = 1
    while page is not None:
        result = await _page(deps, slug, lms, page, page_size, sleep)
        for learner in result.results:
            learners[learner.id] = learner  # offset paging may repeat one
        report.invalid_learners += result.invalid
        report.pages += 1
        report.learners_seen = len(learners)
        await set_progress(
            deps.redis, slug, seen=len(learners), expected=max(expected, len(learners))
        )
        if progress is not None:
            progress(len(learners), max(expected, len(learners)))
        if result.next is not None and result.next <= page:
            raise RuntimeError(f"LMS page {page} points back to page {result.next}")
        page = result.next
    # Only refs that are ids of the bridge can name a user (and a key): any
    # other value is some other system's, or junk (docs/architecture.md, invariant 10).
    by_ref: dict[str, Learner] = {}
    for learner in learners.values():
        ref = learner.external_ref
        if is_resource_id(ref):
            assert ref is not None
            by_ref[ref] = learner
        elif ref and learner.status == "active":
            report.note(Drift(kind="unknown_ref", user_id=None, learner_id=learner.id))
        elif ref:
            report.retired += 1
    try:
        rules = await deps.rules_for(slug)
    except MappingConfigError as exc:
        report.error = "mapping rules: " + "; ".join(p.message for p in exc.problems)
        return
    known: set[str] = set()
    async for stored in deps.resources.scan(slug, "u"):
        known.add(stored.id)
        if len(known) % 500 == 0:
            await deps.redis.pexpire(keys.reconcile_lock(slug), LOCK_TTL_MS)
        try:
            await _check_user(deps, report, rules, stored.id, stored.doc, by_ref, learners)
        except (LmsDeferred, LmsTransientError, RedisError):
            raise  # the LMS or Redis is away, not one odd user: the run fails, visibly
        except Exception as exc:  # one odd user must not stop the tenant's reconcile
            logger.warning("reconcile %s/%s: %s: %s", slug, stored.id, type(exc).__name__, exc)
            report.skip("error")
    for ref, learner in by_ref.items():
        if ref in known or await _is_tombstone(deps, slug, ref):
            continue
        if learner.status != "active":
            report.retired += 1
        elif await deps.sync.was_deleted(slug, ref):
            await _deactivate_after_delete(deps, report, lms, ref, learner)
        else:
            report.note(Drift(kind="unknown_ref", user_id=ref, learner_id=learner.id))


async def _deactivate_after_delete(
    deps: WorkerDeps, report: ReconcileReport, lms: TenantLms, ref: str, learner: Learner
) -> None:
    """An active learner of a user deleted in SCIM (turned on again by hand
    after the bridge deactivated it): access the IdP withdrew, so a repair
    deactivates it again. Not a mass deactivation: each was applied once."""
    drift = Drift(kind="active_after_delete", user_id=ref, learner_id=learner.id)
    if report.repair:
        try:
            await lms.client.deactivate(learner.id)
        except LmsError as exc:
            logger.warning(
                "reconcile %s: deactivating learner %s: %s", report.tenant, learner.id, exc
            )
        else:
            drift = msgspec.structs.replace(drift, repaired=True)
            report.repaired += 1
    report.note(drift)


async def _page(
    deps: WorkerDeps, slug: str, lms: TenantLms, page: int, size: int, sleep: Sleep
) -> LearnerPage:
    """One page, waiting out pacing and riding out a few LMS faults."""
    faults = 0
    while True:
        await deps.redis.pexpire(keys.reconcile_lock(slug), LOCK_TTL_MS)
        try:
            return await lms.client.list_learners(page, size)
        except LmsDeferred as exc:
            if exc.status is not None:  # the LMS's own Retry-After
                await lms.limiter.pause(exc.retry_after)
            await sleep(min(max(exc.retry_after, 0.05), 60.0))
        except LmsTransientError as exc:
            faults += 1
            if faults >= _PAGE_ATTEMPTS:
                raise
            await sleep(exc.retry_after or min(2.0**faults, 30.0))


async def _check_user(
    deps: WorkerDeps,
    report: ReconcileReport,
    rules: RuleSet,
    user_id: str,
    doc: dict[str, Any],
    by_ref: dict[str, Learner],
    learners: dict[int, Learner],
) -> None:
    slug = report.tenant
    state = await deps.sync.read(slug, user_id)
    reason = _skip_reason(state)
    if reason is None:
        updated = await deps.redis.hget(keys.sync_state(slug, user_id), "updated_at")  # type: ignore[misc]
        if updated is not None and updated.decode() > report.started_at:
            reason = "synced_during_scan"
    if reason is not None:
        report.skip(reason)
        return
    report.users_checked += 1
    learner = by_ref.get(user_id)
    if learner is None:
        linked = learners.get(state.learner_id) if state.learner_id is not None else None
        drift = Drift(kind="missing", user_id=user_id, learner_id=state.learner_id)
        await _settle(deps, report, state, drift, linked)
        return
    mapped = map_user({**doc, "id": user_id}, rules, await _groups(deps, slug, user_id, rules))
    if not mapped.ok:
        report.users_checked -= 1
        report.skip("unmappable")
        return
    expected = {**mapped.lms_fields(), "external_ref": user_id}
    changed = [name for name, value in expected.items() if getattr(learner, name) != value]
    want = "active" if mapped.draft.active else "deactivated"
    kind: DriftKind = "changed"
    if learner.status != want:
        changed.append("status")
        kind = "deactivated_by_hand" if learner.status == "deactivated" else "reactivated_by_hand"
    if not changed:
        report.in_sync += 1
        return
    drift = Drift(kind=kind, user_id=user_id, learner_id=learner.id, fields=tuple(changed))
    await _settle(deps, report, state, drift, learner)


async def _settle(
    deps: WorkerDeps,
    report: ReconcileReport,
    state: SyncInput,
    drift: Drift,
    learner: Learner | None,
) -> None:
    """Note the drift, and repair it when asked: under the user's lock, and
    only if the user is still as it was read (else the worker has it)."""
    if report.repair and await _repair(deps, report.tenant, state, drift, learner):
        drift = msgspec.structs.replace(drift, repaired=True)
        report.repaired += 1
    report.note(drift)


async def _repair(
    deps: WorkerDeps, slug: str, state: SyncInput, drift: Drift, learner: Learner | None
) -> bool:
    user_id = state.user_id
    token = await deps.sync.lock(slug, user_id, deps.settings.job_timeout_s)
    if token is None:
        return False  # a job holds the user right now: it will re-read the shadow
    try:
        now = await deps.sync.read(slug, user_id)
        if (now.version, now.state, now.learner_id) != (
            state.version,
            state.state,
            state.learner_id,
        ):
            return False
        if learner is None:
            await deps.sync.forget_link(slug, user_id)  # create or adopt afresh
        else:
            # Learner fields cleared: the worker re-sends them all in one PATCH.
            # The observed status is kept, so a status call is made only if needed.
            snapshot = {"active": learner.status == "active"}
            await deps.sync.record_link(slug, user_id, learner.id, snapshot)
        tenant = await deps.tenants.get(slug)
        interval = tenant.job_interval_ms if tenant else 1
        due = await deps.resources.requeue(slug, user_id, interval_ms=interval)
        if due is not None:
            await enqueue_sync(deps.queue, slug, user_id, due)
        await deps.sync.log_event(
            slug, user_id, "reconcile_repair", kind=drift.kind, fields=",".join(drift.fields)
        )
        return True
    finally:
        await deps.sync.unlock(slug, user_id, token)


def _skip_reason(state: SyncInput) -> str | None:
    if state.state == "synced" and state.applied_version == state.version:
        return None
    if state.state == "failed":
        return "failed"
    if state.error.startswith("held by breaker"):
        return "held"
    return "pending"


async def _groups(deps: WorkerDeps, slug: str, user_id: str, rules: RuleSet) -> list[GroupRef]:
    if rules.team_from_groups is None:
        return []
    return await deps.resources.group_refs(slug, user_id)


async def _is_tombstone(deps: WorkerDeps, slug: str, user_id: str) -> bool:
    """A user deleted in SCIM whose deactivation is still on its way."""
    return bool(await deps.redis.hexists(keys.resource(slug, "u", user_id), "v"))  # type: ignore[misc]


async def reconcile_job(ctx: dict[str, Any], tenant: str, repair: bool = True) -> str:
    """The arq job: reconcile one tenant; the report is kept in Redis."""
    deps = WorkerDeps.of(ctx)
    report = await reconcile_tenant(deps, tenant, repair=repair)
    return (
        f"reconciled {tenant}: {report.users_checked} checked, {report.in_sync} in sync, "
        f"{sum(report.drift_counts.values())} drifted, {report.repaired} repaired"
    )


def reconcile_job_id(slug: str) -> str:
    """The one arq job id of a tenant's reconcile: arq refuses a second one
    while it is queued or running."""
    return f"reconcile:{slug}"


async def schedule_reconciles(ctx: dict[str, Any]) -> str:
    """Cron (each minute when `WORKER_RECONCILE_EVERY_H` is set): queue a
    reconcile for every enabled tenant whose last one started longer ago than
    that, never-reconciled and longest-waiting first, with at most
    `WORKER_RECONCILE_CONCURRENCY` queued or running at once so that
    reconciles never crowd out sync jobs."""
    deps = WorkerDeps.of(ctx)
    every_s = deps.settings.reconcile_every_h * 3600
    now = datetime.now(UTC)
    busy, due = 0, []
    for slug in await deps.tenants.slugs():
        if await deps.queue.exists(job_key_prefix + reconcile_job_id(slug)):
            busy += 1
            continue
        tenant = await deps.tenants.get(slug)
        if tenant is None or not tenant.enabled:
            continue
        last = await last_report(deps.redis, slug)
        started = last.started_at if last else ""
        if started and (now - datetime.fromisoformat(started)).total_seconds() < every_s:
            continue
        due.append((started, slug))  # "" (never) sorts first
    queued = []
    for _, slug in sorted(due)[: max(0, deps.settings.reconcile_concurrency - busy)]:
        job = await deps.queue.enqueue_job(
            RECONCILE_JOB, slug, True, _job_id=reconcile_job_id(slug), _queue_name=QUEUE_NAME
        )
        if job is not None:
            await mark_queued(deps.redis, slug)
            queued.append(slug)
    return f"queued reconciles of {queued or 'no tenant'}; {len(due) - len(queued)} due and waiting"


def reconcile_schedule_cron(settings: Settings) -> CronJob | None:
    """The schedule as an arq cron job, or None when it is off."""
    if settings.reconcile_every_h <= 0:
        return None
    return cron(
        schedule_reconciles,
        name="reconcile-schedule",
        second=15,
        timeout=60,
        keep_result=0,
        max_tries=1,
        unique=True,
    )


def reconcile_function(timeout_s: float = 3600.0) -> Function:
    """The arq function to list in the worker's `functions` (worker/settings.py)."""
    return func(reconcile_job, name=RECONCILE_JOB, max_tries=1, timeout=timeout_s, keep_result=0)
