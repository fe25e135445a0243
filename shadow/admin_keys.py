"""Tenant-scoped admin keys: what a customer's admin (or the LMS's own
settings page) presents to the admin API for one tenant.

They are kept apart from SCIM tokens on purpose: their own hash per tenant,
their own prefix, so a SCIM token never opens the admin API and an admin key
never opens SCIM. A key is `scimba_<tenant>.<key_id>_<secret>`: the tenant
and id find the record in one hash lookup without trusting the URL, the
256-bit secret is kept only as a SHA-256 digest and compared in constant
time. Revoking deletes the record, so the key stops working at once (the
admin API reads Redis on every request; it is not on the hot path).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import msgspec
from redis.asyncio import Redis

from core.clock import iso_after, now_iso
from shadow import keys
from shadow.tenants import SLUG_RE, TenantError, TenantStore, TokenInfo, check_label

__all__ = [
    "ADMIN_KEY_PREFIX",
    "AdminKeyStore",
    "IssuedAdminKey",
    "parse_admin_key",
]

ADMIN_KEY_PREFIX = "scimba_"
_KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")


class _KeyRecord(msgspec.Struct, kw_only=True):
    digest: str
    created_at: str
    label: str = ""
    #: `now_iso()` form (fixed width, so it compares as text); "" never expires.
    expires_at: str = ""


class IssuedAdminKey(msgspec.Struct, kw_only=True):
    tenant: str
    key_id: str
    key: str
    expires_at: str | None = None


_record_decoder = msgspec.json.Decoder(_KeyRecord)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_admin_key(key: str) -> tuple[str, str, str] | None:
    """Split a presented key into (tenant, key_id, secret), or None if malformed."""
    if not key.startswith(ADMIN_KEY_PREFIX):
        return None
    head, sep, secret = key[len(ADMIN_KEY_PREFIX) :].partition("_")
    tenant, dot, key_id = head.rpartition(".")
    if not sep or not dot or not secret or len(secret) > 128:
        return None
    if not SLUG_RE.match(tenant) or not _KEY_ID_RE.match(key_id):
        return None
    return tenant, key_id, secret


class AdminKeyStore:
    """Issue, list, revoke and check tenant admin keys; stateless but for Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def issue(
        self, tenant: str, label: str = "", *, expires_in_s: float | None = None
    ) -> IssuedAdminKey:
        """A new key (shown this once); with `expires_in_s` it stops working
        that long from now, as a SCIM token does."""
        check_label(label)
        if await TenantStore(self._redis).get(tenant) is None:
            raise TenantError(f"no tenant {tenant!r}")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        expires_at = "" if expires_in_s is None else iso_after(expires_in_s)
        record = _KeyRecord(
            digest=_digest(secret), created_at=now_iso(), label=label, expires_at=expires_at
        )
        await self._redis.hset(  # type: ignore[misc]
            keys.admin_keys(tenant), key_id, msgspec.json.encode(record).decode()
        )
        return IssuedAdminKey(
            tenant=tenant,
            key_id=key_id,
            key=f"{ADMIN_KEY_PREFIX}{tenant}.{key_id}_{secret}",
            expires_at=expires_at or None,
        )

    async def list_keys(self, tenant: str) -> list[TokenInfo]:
        """What may be shown about each key: never its secret or digest."""
        records = await self._redis.hgetall(keys.admin_keys(tenant))  # type: ignore[misc]
        used = await self._redis.hgetall(keys.admin_keys_used(tenant))  # type: ignore[misc]
        infos = []
        for raw_id, raw in records.items():
            record = _record_decoder.decode(raw)
            last = used.get(raw_id)
            infos.append(
                TokenInfo(
                    token_id=raw_id.decode(),
                    created_at=record.created_at,
                    label=record.label,
                    last_used_at=last.decode() if last else None,
                    expires_at=record.expires_at or None,
                )
            )
        return sorted(infos, key=lambda k: k.created_at)

    async def revoke(self, tenant: str, key_id: str) -> bool:
        removed = await self._redis.hdel(keys.admin_keys(tenant), key_id)  # type: ignore[misc]
        await self._redis.hdel(keys.admin_keys_used(tenant), key_id)  # type: ignore[misc]
        return bool(removed)

    async def authenticate(self, key: str) -> tuple[str, str] | None:
        """(tenant, key_id) when `key` is a live admin key, else None.

        The same digest work is done whether or not the record exists, so
        timing does not tell a known key id from an unknown one.
        """
        parsed = parse_admin_key(key)
        if parsed is None:
            return None
        tenant, key_id, secret = parsed
        raw = await self._redis.hget(keys.admin_keys(tenant), key_id)  # type: ignore[misc]
        presented = _digest(secret)
        if raw is None:
            hmac.compare_digest(presented, presented)
            return None
        record = _record_decoder.decode(raw)
        if not hmac.compare_digest(presented, record.digest):
            return None
        if record.expires_at and record.expires_at <= now_iso():
            return None  # expired: refused from that instant
        await self._redis.hset(keys.admin_keys_used(tenant), key_id, now_iso())  # type: ignore[misc]
        return tenant, key_id
