"""The sync job: make the LMS match the newest shadow version of one user.

A job only says *sync user U of tenant T* (docs/architecture.md, "Conventions"): it may run
twice, late, or after a newer change; it always reads the newest shadow,
maps it, and records only the version it applied, so a stale job never
overwrites a newer state and a burst of changes collapses into a few calls
(docs/architecture.md, invariants 2 and 3). Linking by `external_ref` and adopting on
409 keep one learner per person (invariant 4); the rules are docs/architecture.md's
"Sync rules".

Faults are not outcomes: a transient LMS error or a pacing wait re-runs the
job later (arq `Retry`) and the user stays pending. Answers are outcomes:
a 422, a conflict with a live user, a 401 make the user `failed` with the
LMS's reason until the next change or a replay.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

import msgspec
from arq.worker import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.sealing import SealError
from lms_client import (
    Learner,
    LearnerWrite,
    LmsClient,
    LmsConflict,
    LmsDeferred,
    LmsError,
    LmsNoAnswer,
    LmsNotFound,
    LmsRejected,
    LmsTransientError,
    LmsUnauthorized,
    LmsValidationError,
)
from mappings import GroupRef, MappingConfigError, MappingResult, map_user
from mappings.paths import scim_bool
from shadow import SyncInput, Tenant, key_fingerprint
from shadow.breaker import BreakerHeld, admit
from shadow.keys import is_resource_id
from worker.activity import note_finished
from worker.deps import TenantLms, WorkerDeps
from worker.fairness import BUSY_DEFER_S, NO_ANSWER_PAUSE_S
from worker.queue import enqueue_many, sync_job_id
from worker.webhooks import notify

__all__ = ["MAX_PASSES", "Outcome", "lms_reason", "sync_user"]

logger = logging.getLogger("worker.sync")

#: Passes one job makes while newer versions keep arriving, before it lets
#: other work run and comes back.
MAX_PASSES = 20
#: The per-user lock outlives the job timeout by this much, so a job that
#: arq cancelled on timeout cannot leave a lock that outlives it for long.
LOCK_MARGIN_S = 5.0
#: Deferrals are short so a tenant's backlog stays in its fair-share order;
#: a long outage is waited out by several short ones.
MAX_DEFER_S = 300.0
#: Passes in a row that may end in an unexpected error (a bug, odd data)
#: before the user is `failed` with it, rather than pending for ever.
MAX_FAULTS = 5
#: While the LMS refuses a tenant's key, one job a this often tries it again;
#: the others wait this long (jittered) without calling the LMS.
PROBE_EVERY_MS = 10_000
PAUSED_DEFER_S = 15.0
#: A synced user that is inactive in SCIM and has no learner says so.
NO_LEARNER_NOTE = "no learner: the user is inactive in SCIM; one is made when it becomes active"
_T = TypeVar("_T")

Snapshot = dict[str, Any]
"""What the bridge last applied: learner fields plus `active`, in the
sync state's `applied` (JSON). Updates are computed against it."""


class Outcome(msgspec.Struct, frozen=True):
    """The result of one pass, recorded by `SyncStore.finish`; `waits_on`
    names the user whose next sync may cure this one's conflict."""

    state: Literal["synced", "failed"]
    learner_id: int | None = None
    applied: Snapshot | None = None
    error: str = ""
    waits_on: str = ""


class _KeyRejected(Exception):  # control flow: not an error
    """The LMS refused the tenant's key: a fault of the tenant, not the user."""


class _Defer(Exception):  # control flow: not an error
    """Leave the user pending and run this job again in `seconds`."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = seconds
        self.reason = reason


async def sync_user(ctx: dict[str, Any], tenant: str, user_id: str) -> str:
    """Sync one user; returns what happened (for arq's log, never personal data).

    Raises arq `Retry` when the tenant holds its share of this worker's job
    slots (worker/fairness.py), the user is locked by another worker, the
    LMS is in a fault, or the tenant's pace says wait: the job runs again later.
    """
    deps = WorkerDeps.of(ctx)
    if not deps.slots.take(tenant):
        # Before anything is read or marked: the job is still queued, as it was.
        raise Retry(defer=_jittered(BUSY_DEFER_S))
    try:
        return await _sync_admitted(ctx, deps, tenant, user_id)
    finally:
        deps.slots.give_back(tenant)


async def _sync_admitted(ctx: dict[str, Any], deps: WorkerDeps, tenant: str, user_id: str) -> str:
    job_due = _job_due(ctx.get("job_id"), tenant, user_id)
    # From here on a change needs a new job: this one may already have read.
    await deps.sync.clear_queued(tenant, user_id)
    token = await deps.sync.lock(tenant, user_id, deps.settings.job_timeout_s + LOCK_MARGIN_S)
    if token is None:
        await _keep_queued(deps, tenant, user_id, job_due)
        await deps.sync.log_event(tenant, user_id, "deferred", reason="locked by another worker")
        raise Retry(defer=1)
    job_try = int(ctx.get("job_try") or 1)
    try:
        return await _sync_locked(deps, tenant, user_id, job_try)
    except _Defer as defer:
        await _keep_queued(deps, tenant, user_id, job_due)
        seconds = round(defer.seconds, 3)
        await deps.sync.log_event(tenant, user_id, "deferred", seconds=str(seconds))
        logger.info("sync %s/%s deferred %.1fs: %s", tenant, user_id, seconds, defer.reason)
        raise Retry(defer=seconds) from None
    except (Retry, asyncio.CancelledError, RedisConnectionError, RedisTimeoutError):
        raise  # a wait, a shutdown or a Redis outage: the job runs again
    except Exception as exc:
        return await _fail_after_faults(deps, tenant, user_id, exc, job_due)
    finally:
        await deps.sync.unlock(tenant, user_id, token)


UNSEALABLE = "the tenant's LMS key cannot be unsealed (check BRIDGE_SECRET_KEY)"
KEY_REJECTED = "LMS 401: the LMS refuses the tenant's API key; deliveries wait until it is changed"


async def _check_pause(deps: WorkerDeps, tenant: Tenant) -> bool:
    """While the LMS refuses the tenant's key, its users wait (pending) and
    only one job every `PROBE_EVERY_MS` tries the LMS; a changed key ends
    the pause at once (docs/operations.md, "LMS key rejected"). True when
    this job is that probe."""
    pause = await deps.sync.lms_pause(tenant.slug)
    if pause is None:
        return False
    if pause.key != key_fingerprint(deps.lms_key(tenant)):
        await _resume(deps, tenant, "the tenant's LMS key was changed")
        return False
    if await deps.sync.take_probe(tenant.slug, PROBE_EVERY_MS):
        return True
    raise _Defer(PAUSED_DEFER_S, pause.reason)


async def _resume(deps: WorkerDeps, tenant: Tenant, why: str) -> None:
    """End a tenant's pause, and replay users an older bridge failed for it."""
    if not await deps.sync.resume_lms(tenant.slug):
        return
    logger.info("tenant %s resumed: %s", tenant.slug, why)
    failed = await deps.sync.users_in(tenant.slug, "failed", limit=100_000)
    stale = []
    for uid in failed:
        record = await deps.sync.record(tenant.slug, uid)
        if record is not None and record.error.startswith("LMS 401"):
            stale.append(uid)
    for uid in stale:
        due = await deps.resources.requeue(
            tenant.slug, uid, interval_ms=tenant.job_interval_ms, force=True
        )
        if due is not None:
            await enqueue_many(deps.queue, tenant.slug, [(uid, due)])
            await deps.sync.log_event(tenant.slug, uid, "replayed", reason=why)


async def _requeue_released(deps: WorkerDeps, tenant: Tenant, user_ids: tuple[str, ...]) -> None:
    """Enqueue users that waited on a conflict this sync may have cured. They
    are already pending (the finish step marked them): a crash here leaves
    them to the sweep."""
    due_jobs = await deps.resources.requeue_changed_groups(
        tenant.slug, list(user_ids), interval_ms=tenant.job_interval_ms
    )
    await enqueue_many(deps.queue, tenant.slug, due_jobs)
    for uid in user_ids:
        await deps.sync.log_event(tenant.slug, uid, "requeued", reason="conflict may be cured")


async def _fail_after_faults(
    deps: WorkerDeps, tenant: str, user_id: str, exc: Exception, job_due: int | None
) -> str:
    """An unexpected error (not an LMS answer or fault): try again a few
    times, then make the user `failed` with the reason, never pending for
    ever (docs/architecture.md, invariant 10). Raises `Retry` while tries remain."""
    faults = await deps.sync.note_fault(tenant, user_id)
    reason = f"unexpected error: {type(exc).__name__}: {_first_line(exc)}"
    if faults < MAX_FAULTS:
        await _keep_queued(deps, tenant, user_id, job_due)
        logger.warning(
            "sync %s/%s: %s (fault %d of %d)", tenant, user_id, reason, faults, MAX_FAULTS
        )
        raise Retry(defer=_jittered(min(60.0, 2.0**faults))) from None
    logger.error("sync %s/%s failed after %d faults: %s", tenant, user_id, faults, reason)
    state = await deps.sync.read(tenant, user_id)
    if state.exists:
        await deps.sync.finish(tenant, user_id, state.version, "failed", error=reason)
        await deps.sync.log_event(tenant, user_id, "failed", version=state.version, error=reason)
        await note_finished(deps, tenant, user_id, "failed", reason, None)
    return "failed: " + reason


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no detail"


def _job_due(job_id: object, tenant: str, user_id: str) -> int | None:
    """The due time in this job's id (`worker.queue.sync_job_id`), if it is one."""
    if not isinstance(job_id, str):
        return None
    due = job_id.rsplit(":", 1)[-1]
    if due.isdigit() and sync_job_id(tenant, user_id, int(due)) == job_id:
        return int(due)
    return None


async def _keep_queued(deps: WorkerDeps, tenant: str, user_id: str, due: int | None) -> None:
    """Put back the queue mark of a job that will run again, so that the
    sweep sees it still exists and the API does not enqueue a second one.
    NX: a mark a newer change set meanwhile names a job that exists too."""
    if due is not None:
        await deps.sync.keep_queued(tenant, user_id, due)


async def _sync_locked(deps: WorkerDeps, slug: str, user_id: str, job_try: int) -> str:
    tenant = await deps.tenants.get(slug)
    if tenant is None or not tenant.enabled:
        # Left pending: the sweep re-enqueues once the tenant is enabled again.
        logger.info("sync %s/%s skipped: tenant missing or disabled", slug, user_id)
        return "tenant missing or disabled"
    try:
        lms = deps.lms_for(tenant)
    except SealError as exc:  # a fault of the deployment's keys, not of the user
        await deps.sync.pause_lms(slug, f"{UNSEALABLE}: {exc}", "", PROBE_EVERY_MS)
        raise _Defer(PAUSED_DEFER_S, UNSEALABLE) from None
    probing = await _check_pause(deps, tenant)
    await deps.sync.log_event(slug, user_id, "job_started", job_try=job_try)
    deadline = time.monotonic() + deps.settings.job_timeout_s / 2
    for _ in range(MAX_PASSES):
        state = await deps.sync.read(slug, user_id)
        if not state.exists:
            return "absent"
        if state.applied_version == state.version and state.state in ("synced", "failed"):
            await deps.sync.log_event(slug, user_id, "up_to_date", version=state.version)
            return "up to date"
        began_ms = int(time.time() * 1000)
        try:
            outcome = await _Pass(deps, lms, tenant, state, job_try).run()
        except BreakerHeld as held:  # parked by shadow/breaker.py: no finish, no retry
            if held.decision == "newer":
                continue
            await deps.sync.log_event(slug, user_id, "held", version=state.version)
            await notify(deps, slug, "breaker.tripped", {"held_user_id": user_id})
            return "held by breaker"
        except _KeyRejected:
            fingerprint = key_fingerprint(deps.lms_key(tenant))
            if await deps.sync.pause_lms(slug, KEY_REJECTED, fingerprint, PROBE_EVERY_MS):
                logger.warning("tenant %s paused: %s", slug, KEY_REJECTED)
                await notify(deps, slug, "lms.key_rejected", {"reason": KEY_REJECTED})
            raise _Defer(PAUSED_DEFER_S, KEY_REJECTED) from None
        if probing:  # the LMS took the key again: every user may go on
            await _resume(deps, tenant, "the LMS accepts the key again")
            probing = False
        finish = await deps.sync.finish(
            slug,
            user_id,
            state.version,
            outcome.state,
            learner_id=outcome.learner_id,
            applied=outcome.applied,
            error=outcome.error,
            waits_on=outcome.waits_on,
            gone=state.deleted and outcome.state == "synced",
            began_ms=began_ms,
        )
        if finish.released:
            await _requeue_released(deps, tenant, finish.released)
        if finish.done:
            lag: float | None = None
            if finish.pending_since_ms is not None:
                lag = max(0.0, time.time() - finish.pending_since_ms / 1000)
                deps.metrics.sync_lag(slug, lag)
            await note_finished(deps, slug, user_id, outcome.state, outcome.error, lag)
            fields: dict[str, str | int] = {"version": state.version}
            if outcome.learner_id is not None:
                fields["learner_id"] = outcome.learner_id
            if outcome.error:
                fields["error"] = outcome.error
            await deps.sync.log_event(slug, user_id, outcome.state, **fields)
            if state.deleted:
                return f"{outcome.state} (deleted)"
            return outcome.state
        await deps.sync.log_event(slug, user_id, "newer_version", applied=state.version)
        if time.monotonic() > deadline:
            break
    raise _Defer(1.0, "newer versions keep arriving; letting other work run")


class _Pass:
    """One reconciliation of one shadow version against the LMS.

    Access follows the IdP (invariant 8, docs/architecture.md
    "Withdrawal of access"): a withdrawal is applied before any field
    update and whatever becomes of it, and a user whose SCIM state is
    inactive never gets a learner created for it.
    """

    def __init__(
        self, deps: WorkerDeps, lms: TenantLms, tenant: Tenant, state: SyncInput, job_try: int
    ) -> None:
        self.deps = deps
        self.lms: LmsClient = lms.client
        self.limiter = lms.limiter
        self.tenant = tenant.slug
        self.user_id = state.user_id
        self.state = state
        self.job_try = job_try
        self.began_ms = int(time.time() * 1000)
        self.linked_afresh = False
        self.desired: dict[str, str | None] = {}
        self.active = True
        self.learner_id = state.learner_id
        self.applied: Snapshot = dict(state.applied or {})
        #: Said in the user's status when the pass ends: what was applied
        #: even though something else failed.
        self.withdrawn = ""

    async def run(self) -> Outcome:
        mapped: MappingResult | None = None
        bad_rules = ""
        try:
            mapped = await self._map()
        except MappingConfigError as exc:
            bad_rules = "mapping rules: " + "; ".join(p.message for p in exc.problems)
        try:
            if self.state.deleted:
                # A delete needs only the newest email, so broken rules do not
                # stop it: the last applied email stands in.
                return await self._delete(mapped.draft.email if mapped else None)
            self.active = mapped.draft.active if mapped else _scim_active(self.state.doc)
            if not self.active:
                await self._withdraw()
            if mapped is None:
                return self._failed(bad_rules)
            if not mapped.ok:
                return self._failed("; ".join(p.message for p in mapped.problems if p.fatal))
            outcome = await self._apply(mapped)
        except LmsDeferred as exc:
            if exc.status is not None:  # the LMS's own Retry-After, not our pacing
                await self.limiter.pause(exc.retry_after)
            raise _Defer(_jittered(exc.retry_after), str(exc)) from None
        except LmsTransientError as exc:
            pause = exc.retry_after
            if isinstance(exc, LmsNoAnswer) and self.deps.no_answers.no_answer(self.tenant):
                # An LMS that keeps giving no answer is paused as a Retry-After
                # would pause it: the tenant's other jobs wait without calling.
                pause = NO_ANSWER_PAUSE_S
                logger.warning(
                    "tenant %s paused %.0fs: its LMS gave no answer %d times in a row",
                    self.tenant,
                    pause,
                    self.deps.no_answers.threshold,
                )
            if pause:
                await self.limiter.pause(pause)
            wait = pause or min(60.0, 2.0 ** min(self.job_try, 6))
            raise _Defer(_jittered(wait), str(exc)) from None
        except LmsRejected as exc:
            self.deps.no_answers.answered(self.tenant)
            if exc.status in (401, 403):  # about the tenant's key, not this user
                raise _KeyRejected() from None
            return self._failed(lms_reason(exc))
        self.deps.no_answers.answered(self.tenant)
        if outcome.state == "failed":
            return outcome
        notes = "; ".join(p.message for p in mapped.problems)
        return msgspec.structs.replace(outcome, error=notes) if notes else outcome

    def _failed(self, reason: str, *, waits_on: str = "") -> Outcome:
        """The user is `failed`; its status also says what was applied anyway."""
        if self.withdrawn:
            reason = f"{self.withdrawn}; not synced: {reason}"
        return Outcome(
            "failed",
            learner_id=self.learner_id,
            applied=self.applied if self.learner_id is not None else None,
            error=reason,
            waits_on=waits_on,
        )

    async def _map(self) -> MappingResult:
        """Map the newest doc. The doc is stored without `id`; the bridge's
        id is put back so rules (and `external_ref`) can read it."""
        rules = await self.deps.rules_for(self.tenant)
        groups: list[GroupRef] = []
        if rules.team_from_groups is not None:
            groups = await self.deps.resources.group_refs(self.tenant, self.user_id)
        doc = {**(self.state.doc or {}), "id": self.user_id}
        return map_user(doc, rules, groups)

    # -- withdrawal ---------------------------------------------------------

    async def _withdraw(self) -> None:
        """Deactivate the linked learner first, before any field update can
        fail; the snapshot is saved at once so a later failure keeps it."""
        if self.learner_id is None or self.applied.get("active") is False:
            return
        await self._admit_deactivation()  # the learner had access: the breaker applies
        try:
            await self._call(
                "POST /learners/{id}/deactivate", self.lms.deactivate(self.learner_id), 200
            )
        except LmsNotFound:
            # The learner is gone: linking afresh finds (and deactivates) any
            # other learner of this user, and creates none for an inactive one.
            await self.deps.sync.forget_link(self.tenant, self.user_id)
            self.learner_id, self.applied = None, {}
            return
        self.applied["active"] = False
        await self.deps.sync.record_link(self.tenant, self.user_id, self.learner_id, self.applied)
        self.withdrawn = f"learner {self.learner_id} deactivated"

    # -- live users --------------------------------------------------------

    async def _apply(self, mapped: MappingResult) -> Outcome:
        # external_ref is the link itself (docs/architecture.md, "Linking"): always the
        # SCIM id, whatever a tenant's rules say about it.
        self.desired = {**mapped.lms_fields(), "external_ref": self.user_id}
        if self.learner_id is None:
            return await self._link()
        learner_id, applied = self.learner_id, self.applied
        changes = {k: v for k, v in self.desired.items() if k not in applied or applied[k] != v}
        if changes:
            try:
                await self._call(
                    "PATCH /learners/{id}", self.lms.update(learner_id, _write(changes)), 200
                )
            except LmsNotFound:
                self.learner_id = None
                return await self._link()  # the learner is gone: link afresh
            except LmsConflict as conflict:
                return await self._patch_conflict(conflict, changes)
            applied.update(changes)
        return await self._set_status(learner_id, applied, checkpoint=bool(changes))

    async def _link(self) -> Outcome:
        """Find this user's learner, or create it (one POST carrying
        external_ref; a 409 means the learner may exist). An inactive user
        gets no new learner (docs/architecture.md "Withdrawal of access"):
        an existing one is adopted and deactivated, else nothing is made."""
        self.linked_afresh = True
        if not self.active:
            return await self._link_inactive()
        body = {k: v for k, v in self.desired.items() if v is not None}
        try:
            learner = await self._call("POST /learners", self.lms.create(_write(body)), 201)
        except LmsConflict as conflict:
            # Expected: the learner may exist (adoption), so not an LMS error.
            return await self._adopt(conflict.learner_id, conflict.error)
        applied: Snapshot = {**self.desired, "active": True}
        self.learner_id, self.applied = learner.id, applied
        await self.deps.sync.record_link(self.tenant, self.user_id, learner.id, applied)
        return await self._set_status(learner.id, applied, checkpoint=False)

    async def _link_inactive(self) -> Outcome:
        found = await self._call(
            "GET /learners?external_ref", self.lms.find_by_external_ref(self.user_id), 200
        )
        email = self.desired.get("email")
        if found is None and email:
            found = await self._call("GET /learners?email", self.lms.find_by_email(email), 200)
        if found is None:
            await self.deps.sync.log_event(self.tenant, self.user_id, "no_learner")
            return Outcome("synced", error=NO_LEARNER_NOTE)
        return await self._adopt(found.id, "inactive user", learner=found)

    async def _adopt(
        self, learner_id: int, reason: str, *, learner: Learner | None = None
    ) -> Outcome:
        """Take over a learner that has this user's email or id, unless a live
        user of this tenant holds it (Entra re-creates users under new ids; a
        lost answer to our own POST names our own learner)."""
        if learner is None:
            learner = await self._call("GET /learners/{id}", self.lms.get(learner_id), 200)
        ref = learner.external_ref
        if not ref or ref == self.user_id or not is_resource_id(ref):
            # Empty, ours, or not an id the bridge hands out (so no user of
            # this tenant, and never a key name): the learner is free to take.
            return await self._take_over(learner, reason, None)
        if await self.deps.resources.get(self.tenant, "u", ref) is not None:
            return self._failed(
                f"LMS 409 {reason}: learner {learner.id} is linked to user {ref} of this "
                f"tenant, so user {self.user_id} cannot take it over; tried again when "
                f"user {ref} changes or goes",
                waits_on=ref,
            )
        # The learner belongs to a deleted user whose delete may still run:
        # hold that user's lock while the learner changes hands, so its job
        # cannot deactivate the learner after we took it (it then finds no link).
        ttl_s = self.deps.settings.job_timeout_s + LOCK_MARGIN_S
        token = await self.deps.sync.lock(self.tenant, ref, ttl_s)
        if token is None:
            raise _Defer(1.0, "the learner's previous user is being synced")
        try:
            return await self._take_over(learner, reason, ref)
        finally:
            await self.deps.sync.unlock(self.tenant, ref, token)

    async def _take_over(self, learner: Learner, reason: str, previous: str | None) -> Outcome:
        """Link `learner` to this user (its previous user's link forgotten)."""
        changes = {k: v for k, v in self.desired.items() if getattr(learner, k) != v}
        if changes:
            await self._call(
                "PATCH /learners/{id}", self.lms.update(learner.id, _write(changes)), 200
            )
        applied: Snapshot = {**self.desired, "active": learner.status == "active"}
        self.learner_id, self.applied = learner.id, applied
        await self.deps.sync.record_link(self.tenant, self.user_id, learner.id, applied)
        if previous:
            # The deleted user it came from must not deactivate it later: its
            # delete, if still to run, then looks the learner up and finds none.
            await self.deps.sync.forget_link(self.tenant, previous)
        await self.deps.sync.log_event(
            self.tenant, self.user_id, "adopted", learner_id=learner.id, reason=reason
        )
        return await self._set_status(learner.id, applied, checkpoint=False)

    async def _patch_conflict(self, conflict: LmsConflict, changes: Snapshot) -> Outcome:
        """Our learner's update needs an email (or id) another learner holds.

        Held by a live user of this tenant: wait for it (re-queued when its
        next sync ends); when that user waits for us too, the two emails are
        being swapped, and we let go of ours first so both converge. Held by
        the deactivated learner of a deleted user: take the address from it.
        Otherwise ops must act in the LMS, and the reason says so.
        """
        holder = await self._call("GET /learners/{id}", self.lms.get(conflict.learner_id), 200)
        ref = holder.external_ref
        learner_id = self.learner_id
        assert learner_id is not None
        if conflict.error == "email_taken" and is_resource_id(ref) and ref != self.user_id:
            assert ref is not None
            if await self.deps.resources.exists(self.tenant, "u", ref):
                if await self.deps.sync.waits_for(self.tenant, ref, self.user_id):
                    await self._release_email(learner_id)
                return self._failed(
                    f"LMS 409 email_taken: the address is held by learner {holder.id} of user "
                    f"{ref}; tried again when user {ref} changes or goes",
                    waits_on=ref,
                )
            if holder.status == "deactivated" and await self.deps.sync.was_deleted(
                self.tenant, ref
            ):
                await self._release_email(holder.id)
                await self._call(
                    "PATCH /learners/{id}", self.lms.update(learner_id, _write(changes)), 200
                )
                self.applied.update(changes)
                return await self._set_status(learner_id, self.applied, checkpoint=True)
        return self._failed(
            f"LMS 409 {conflict.error}: held by learner {holder.id}, which no live user of "
            "this tenant is linked to; change that learner in the LMS, then replay"
        )

    async def _release_email(self, learner_id: int) -> None:
        """Give a learner an address that can never be anyone's (RFC 2606's
        `.invalid`), so that another learner can take its old one."""
        placeholder = f"released-{learner_id}@scim-bridge.invalid"
        await self._call(
            "PATCH /learners/{id}",
            self.lms.update(learner_id, _write({"email": placeholder})),
            200,
        )
        if learner_id == self.learner_id:
            self.applied["email"] = placeholder
            await self.deps.sync.record_link(self.tenant, self.user_id, learner_id, self.applied)
        await self.deps.sync.log_event(
            self.tenant, self.user_id, "email_released", learner_id=learner_id
        )

    async def _set_status(self, learner_id: int, applied: Snapshot, *, checkpoint: bool) -> Outcome:
        """Deactivate or reactivate, only when the snapshot differs."""
        if applied.get("active") is self.active:
            return Outcome("synced", learner_id=learner_id, applied=applied)
        if checkpoint:  # keep the PATCH's progress should the action defer
            await self.deps.sync.record_link(self.tenant, self.user_id, learner_id, applied)
        if not self.active:
            await self._admit_deactivation()
        action = self.lms.reactivate if self.active else self.lms.deactivate
        label = "POST /learners/{id}/" + ("reactivate" if self.active else "deactivate")
        try:
            await self._call(label, action(learner_id), 200)
        except LmsNotFound:
            if self.linked_afresh:
                raise
            self.learner_id = None
            return await self._link()
        return Outcome("synced", learner_id=learner_id, applied={**applied, "active": self.active})

    # -- deleted users -----------------------------------------------------

    async def _delete(self, newest_email: str | None) -> Outcome:
        """End with no active learner: the linked one, or an unlinked one
        with the newest email, is deactivated; nothing is ever created.

        The snapshot is not trusted for this (an LMS admin may have turned
        the learner on by hand since): the linked learner is deactivated
        again, which the LMS takes as a no-op when it already is. Only a
        learner the bridge believes active counts towards the breaker.
        """
        applied: Snapshot = dict(self.state.applied or {})
        learner_id = self.state.learner_id
        if learner_id is not None:
            if applied.get("active") is not False:
                await self._admit_deactivation()
            try:
                await self._call(
                    "POST /learners/{id}/deactivate", self.lms.deactivate(learner_id), 200
                )
                return Outcome("synced", learner_id=learner_id)
            except LmsNotFound:
                pass  # the link was stale: look the learner up instead
        found = await self._call(
            "GET /learners?external_ref", self.lms.find_by_external_ref(self.user_id), 200
        )
        email = newest_email or _text_or_none(applied.get("email"))
        if found is None and email:
            candidate = await self._call("GET /learners?email", self.lms.find_by_email(email), 200)
            if candidate is not None and not candidate.external_ref:
                found = candidate
        if found is None:
            await self.deps.sync.log_event(self.tenant, self.user_id, "no_learner")
            return Outcome("synced")
        if found.status == "active":
            await self._admit_deactivation()
            await self._call("POST /learners/{id}/deactivate", self.lms.deactivate(found.id), 200)
        return Outcome("synced", learner_id=found.id)

    # -- plumbing ----------------------------------------------------------

    async def _admit_deactivation(self) -> None:
        """Ask the mass-deactivation breaker before any deactivation call;
        raises `BreakerHeld` when the user is parked (or a newer version came)."""
        decision = await admit(self.deps.redis, self.tenant, self.user_id, self.state.version)
        if decision != "allow":
            raise BreakerHeld(decision)

    async def _call(self, label: str, call: Awaitable[_T], ok_status: int) -> _T:
        """Await one LMS call and note it in the user's provisioning log.

        A 409 is logged as `expected`: it is how the LMS says a learner
        exists (adoption) or an address is held (a conflict the user's
        status explains), not a fault of the LMS.
        """
        try:
            result = await call
        except LmsError as exc:
            status = str(exc.status) if exc.status is not None else "no answer"
            if isinstance(exc, LmsDeferred):
                status = "deferred"
            extra: dict[str, str | int] = {"expected": 1} if isinstance(exc, LmsConflict) else {}
            await self.deps.sync.log_event(
                self.tenant, self.user_id, "lms", call=label, status=status, **extra
            )
            raise
        fields: dict[str, str | int] = {"call": label, "status": ok_status}
        if isinstance(result, Learner):
            fields["learner_id"] = result.id
        await self.deps.sync.log_event(self.tenant, self.user_id, "lms", **fields)
        return result


def _scim_active(doc: dict[str, Any] | None) -> bool:
    """`active` straight from the SCIM document, for when the tenant's rules
    do not build: a withdrawal must not wait for a rules fix."""
    value = scim_bool((doc or {}).get("active"))
    return True if value is None else value


def _write(fields: dict[str, Any]) -> LearnerWrite:
    return msgspec.convert(fields, LearnerWrite)


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _jittered(seconds: float) -> float:
    """A deferral, spread a little so deferred jobs do not return as a herd."""
    base = min(max(seconds, 1.0), MAX_DEFER_S)
    return base + random.uniform(0, min(base * 0.1, 5.0))


def lms_reason(exc: LmsRejected) -> str:
    """The LMS's answer as ops should read it in a user's status; it names
    fields and codes, never values (the client's messages carry no bodies)."""
    if isinstance(exc, LmsValidationError):
        detail = "; ".join(
            f"{name}: {', '.join(reasons)}" for name, reasons in sorted(exc.fields.items())
        )
        return f"LMS 422: {detail or 'validation_failed'}"
    if isinstance(exc, LmsConflict):
        return f"LMS 409 {exc.error}: held by learner {exc.learner_id}"
    if isinstance(exc, LmsUnauthorized):
        return "LMS 401: unauthorized (check the tenant's LMS API key)"
    return f"LMS {exc.status}: {exc}"
