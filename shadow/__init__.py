"""The Redis shadow store: tenants, tokens, SCIM resources and sync state."""

from core.clock import now_iso
from shadow.resources import InlineJob, ResourceStore, StoreConflict, Stored, WriteOutcome
from shadow.rules import MappingStore, ResyncPage, ResyncProgress
from shadow.sync import (
    Finish,
    LmsPause,
    StateCounts,
    SyncInput,
    SyncRecord,
    SyncStore,
    key_fingerprint,
)
from shadow.tenants import IssuedToken, Tenant, TenantError, TenantStore, TokenInfo

__all__ = [
    "Finish",
    "InlineJob",
    "IssuedToken",
    "LmsPause",
    "MappingStore",
    "ResourceStore",
    "ResyncPage",
    "ResyncProgress",
    "StateCounts",
    "StoreConflict",
    "Stored",
    "SyncInput",
    "SyncRecord",
    "SyncStore",
    "Tenant",
    "TenantError",
    "TenantStore",
    "TokenInfo",
    "WriteOutcome",
    "key_fingerprint",
    "now_iso",
]
