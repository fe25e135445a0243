"""Answers of the admin API, as msgspec Structs, so the generated OpenAPI
document (`/admin/v1/schema`) describes every field a client reads.

The read models (ops/views.py) build plain dicts shared with the CLI's
`--json` and the admin page; a handler converts one into its answer here,
which also checks that the two agree.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "AdminKeyInfo",
    "AdminKeyList",
    "BreakerAnswer",
    "BreakerApproved",
    "BreakerCancelled",
    "BreakerConfigAnswer",
    "BreakerStateAnswer",
    "FailedPage",
    "FailedUser",
    "HeldUser",
    "IssuedAdminKeyAnswer",
    "IssuedTokenAnswer",
    "LastError",
    "LmsErrorRate",
    "LmsPaused",
    "MappingAnswer",
    "MappingSetAnswer",
    "Reconcile",
    "ReconcileQueued",
    "Replayed",
    "Revoked",
    "ShadowVersion",
    "Status",
    "TenantAnswer",
    "TenantList",
    "TenantWithHealth",
    "Timeline",
    "TokenInfoAnswer",
    "TokenList",
]


class TenantAnswer(msgspec.Struct, kw_only=True):
    """A tenant as it may be shown: never the LMS API key (write-only)."""

    tenant: str
    name: str
    scim_url: str
    lms_url: str
    lms_rate: float
    lms_burst: int
    enabled: bool
    created_at: str
    scim_rate: float
    scim_burst: int


class TenantWithHealth(TenantAnswer, kw_only=True):
    """A tenant with its counts and the breaker's true state."""

    pending: int
    synced: int
    failed: int
    held: int
    oldest_pending_seconds: float
    breaker_tripped: bool
    breaker_state: Literal["on", "tripped", "approved", "off"]
    breaker_approved_until: str | None


class TenantList(msgspec.Struct, kw_only=True):
    tenants: list[TenantWithHealth]


class TokenInfoAnswer(msgspec.Struct, kw_only=True):
    token_id: str
    created_at: str
    label: str
    last_used_at: str | None
    expires_at: str | None


class TokenList(msgspec.Struct, kw_only=True):
    tenant: str
    tokens: list[TokenInfoAnswer]


class IssuedTokenAnswer(msgspec.Struct, kw_only=True):
    """A new SCIM token, shown this once, with the SCIM URL to copy."""

    tenant: str
    token_id: str
    token: str
    scim_url: str
    expires_at: str | None


class Revoked(msgspec.Struct, kw_only=True, omit_defaults=True):
    tenant: str
    revoked: bool
    token_id: str | None = None
    key_id: str | None = None


class AdminKeyInfo(msgspec.Struct, kw_only=True):
    key_id: str
    created_at: str
    label: str
    last_used_at: str | None
    expires_at: str | None


class AdminKeyList(msgspec.Struct, kw_only=True):
    tenant: str
    keys: list[AdminKeyInfo]


class IssuedAdminKeyAnswer(msgspec.Struct, kw_only=True):
    """A new admin key, shown this once."""

    tenant: str
    key_id: str
    key: str
    expires_at: str | None


class MappingAnswer(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The overrides (null: the defaults) and the merged rules; `problems`
    when the stored overrides no longer pass today's rules."""

    tenant: str
    overrides: dict[str, Any] | None
    rules: list[dict[str, Any]] | None
    problems: list[str] | None = None


class MappingSetAnswer(msgspec.Struct, kw_only=True):
    """The overrides now in force, and the re-sync of every user they start."""

    tenant: str
    overrides: dict[str, Any] | None
    resync: dict[str, Any]


class Replayed(msgspec.Struct, kw_only=True):
    tenant: str
    replayed: int


class ReconcileQueued(msgspec.Struct, kw_only=True):
    tenant: str
    job_id: str
    repair: bool
    queued: bool


class Reconcile(msgspec.Struct, kw_only=True):
    """Progress of the current or last reconcile, and the last report."""

    tenant: str
    progress: dict[str, Any] | None
    last: dict[str, Any] | None


class BreakerConfigAnswer(msgspec.Struct, kw_only=True):
    enabled: bool
    share: float
    min_learners: int
    window_s: int


class BreakerStateAnswer(msgspec.Struct, kw_only=True):
    """The breaker as `shadow.breaker.BreakerState` reads it; `mode` is its
    true state in one word."""

    tenant: str
    config: BreakerConfigAnswer
    tripped: bool
    tripped_at: str | None
    held: int
    window_count: int
    learners: int
    allowed: int | None
    approved_until: str | None
    mode: Literal["on", "tripped", "approved", "off"]


class HeldUser(msgspec.Struct, kw_only=True):
    user_id: str
    held_since: str


class BreakerAnswer(BreakerStateAnswer, kw_only=True):
    """The breaker and the first held users."""

    held_users: list[HeldUser]


class BreakerApproved(BreakerAnswer, kw_only=True):
    released: int


class BreakerCancelled(BreakerAnswer, kw_only=True):
    dropped: int


class FailedUser(msgspec.Struct, kw_only=True):
    user_id: str
    error: str
    learner_id: int | None
    failed_at: str | None


class FailedPage(msgspec.Struct, kw_only=True):
    """Failed users with their reasons, oldest failure first."""

    tenant: str
    total: int
    offset: int
    limit: int
    next_offset: int | None
    users: list[FailedUser]


class ShadowVersion(msgspec.Struct, kw_only=True):
    version: int
    deleted: bool
    created: str
    last_scim_change: str


class Timeline(msgspec.Struct, kw_only=True):
    """One user's story: shadow, sync record, breaker hold, provisioning log."""

    tenant: str
    user_id: str
    exists: bool
    shadow: ShadowVersion | None
    state: str | None
    applied_version: int | None
    learner_id: int | None
    error: str | None
    updated_at: str | None
    held_by_breaker: bool
    held_since: str | None
    events: list[dict[str, Any]]


class LastError(msgspec.Struct, kw_only=True):
    user_id: str
    error: str
    at: str


class LmsErrorRate(msgspec.Struct, kw_only=True):
    """LMS answers over the window, from the most recently active users' logs."""

    window_s: int
    sampled_users: int
    calls: int
    errors: int
    deferred: int
    expected: int
    error_rate: float
    by_status: dict[str, int]


class LmsPaused(msgspec.Struct, kw_only=True):
    reason: str
    since: str


class Status(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The figures ops look at first. `arq_queue_depth` (the whole shared
    queue, every tenant's jobs) is the operator's only."""

    tenant: str
    queue_depth: int
    queued: int
    pending: int
    synced: int
    failed: int
    held: int
    oldest_pending_seconds: float
    last_errors: list[LastError]
    lms: LmsErrorRate
    breaker: BreakerStateAnswer
    rules_resync: dict[str, Any]
    lms_paused: LmsPaused | None
    arq_queue_depth: int | None = None
