"""Answers of the admin API, as msgspec Structs, so the generated OpenAPI
document (`/admin/v1/schema`) describes every field a client reads.

The read models (api/admin/views.py) build plain dicts shared with the CLI's
`--json` and the admin page; a handler converts one into its answer here,
which also checks that the two agree.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "AdminKeyInfo",
    "AdminKeyList",
    "IssuedAdminKeyAnswer",
    "IssuedTokenAnswer",
    "MappingAnswer",
    "MappingSetAnswer",
    "Reconcile",
    "ReconcileQueued",
    "Replayed",
    "Revoked",
    "TenantAnswer",
    "TenantList",
    "TenantWithHealth",
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
