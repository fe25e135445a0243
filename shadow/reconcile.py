"""Reconcile state in Redis: the per-tenant lock, progress and last report.

The worker's `reconcile_tenant` (worker/reconcile.py) writes it, the admin
API, the web page and the CLI read it (through `ops/`), so it lives with
the other stores. Reports carry ids and field names, never values.
"""

from __future__ import annotations

import secrets
from typing import Literal

import msgspec
from redis.asyncio import Redis

from shadow import keys, now_iso

__all__ = [
    "LOCK_TTL_MS",
    "MAX_DETAILS",
    "Drift",
    "DriftKind",
    "ReconcileBusy",
    "ReconcileReport",
    "last_report",
    "mark_queued",
    "progress_of",
    "release_lock",
    "save_report",
    "set_progress",
    "take_lock",
]

#: Drift entries kept in a report; the counts always cover everything.
MAX_DETAILS = 1000
#: The lock outlives a killed CLI by at most this; it is refreshed as work goes on.
LOCK_TTL_MS = 600_000

DriftKind = Literal[
    "changed",
    "deactivated_by_hand",
    "reactivated_by_hand",
    "missing",
    "unknown_ref",
    "active_after_delete",
]


class Drift(msgspec.Struct, frozen=True, kw_only=True):
    kind: DriftKind
    user_id: str | None
    learner_id: int | None
    #: Names of the learner fields (and `status`) that differ.
    fields: tuple[str, ...] = ()
    repaired: bool = False


class ReconcileReport(msgspec.Struct, kw_only=True):
    tenant: str
    repair: bool
    started_at: str
    finished_at: str = ""
    duration_s: float = 0.0
    pages: int = 0
    learners_seen: int = 0
    #: Rows of the LMS's pages that were not learners as docs/lms-contract.md has
    #: them (left out of the comparison).
    invalid_learners: int = 0
    users_checked: int = 0
    in_sync: int = 0
    drift_counts: dict[str, int] = msgspec.field(default_factory=dict)
    retired: int = 0
    repaired: int = 0
    skipped: dict[str, int] = msgspec.field(default_factory=dict)
    drift: list[Drift] = msgspec.field(default_factory=list)
    truncated: bool = False
    error: str = ""

    def note(self, drift: Drift) -> None:
        self.drift_counts[drift.kind] = self.drift_counts.get(drift.kind, 0) + 1
        if len(self.drift) < MAX_DETAILS:
            self.drift.append(drift)
        else:
            self.truncated = True

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


class ReconcileBusy(Exception):
    """Another reconcile of this tenant is running."""


_report_decoder = msgspec.json.Decoder(ReconcileReport)


async def take_lock(redis: Redis, slug: str) -> str:
    """Hold the tenant's reconcile lock; its token, or ReconcileBusy."""
    token = secrets.token_hex(8)
    if not await redis.set(keys.reconcile_lock(slug), token, nx=True, px=LOCK_TTL_MS):
        raise ReconcileBusy(f"a reconcile of tenant {slug!r} is already running")
    return token


async def release_lock(redis: Redis, slug: str, token: str) -> None:
    """Let the lock go, unless it expired and another reconcile holds it now."""
    current = await redis.get(keys.reconcile_lock(slug))
    if current is not None and current.decode() == token:
        await redis.delete(keys.reconcile_lock(slug))


async def save_report(redis: Redis, report: ReconcileReport) -> None:
    await redis.set(keys.reconcile_last(report.tenant), msgspec.json.encode(report))


async def set_progress(redis: Redis, slug: str, **fields: str | int) -> None:
    await redis.hset(  # type: ignore[misc]
        keys.reconcile_progress(slug), mapping={**fields, "updated_at": now_iso()}
    )


async def mark_queued(redis: Redis, slug: str) -> None:
    """Note that a reconcile was asked for (the admin API, before enqueueing)."""
    await redis.hset(  # type: ignore[misc]
        keys.reconcile_progress(slug), mapping={"state": "queued", "updated_at": now_iso()}
    )


async def progress_of(redis: Redis, slug: str) -> dict[str, str]:
    raw = await redis.hgetall(keys.reconcile_progress(slug))  # type: ignore[misc]
    return {k.decode(): v.decode() for k, v in raw.items()}


async def last_report(redis: Redis, slug: str) -> ReconcileReport | None:
    raw = await redis.get(keys.reconcile_last(slug))
    return _report_decoder.decode(raw) if raw else None
