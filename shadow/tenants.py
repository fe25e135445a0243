"""Tenants and their SCIM bearer tokens.

A token is `scimb_<token_id>_<secret>`: the id finds the record in one hash
lookup, the 256-bit secret is kept only as a SHA-256 digest and compared in
constant time. A tenant may hold several live tokens so a customer can rotate
without downtime; revoking deletes the record, so it stops working at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from datetime import UTC, datetime

import msgspec
from redis.asyncio import Redis

from shadow import keys

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
TOKEN_PREFIX = "scimb_"
_LAST_USED_EVERY_S = 60.0


class Tenant(msgspec.Struct, kw_only=True):
    """A customer: one LMS organisation. `lms_api_key` is never shown back."""

    slug: str
    name: str
    lms_url: str
    lms_api_key: str
    lms_rate: float = 20.0
    lms_burst: int = 40
    enabled: bool = True
    created_at: str = ""

    @property
    def job_interval_ms(self) -> int:
        """Spacing of the tenant's sync jobs on the queue: one LMS call's worth
        of its rate limit. This is what keeps tenants' backlogs from holding
        each other back (fair share)."""
        return max(1, int(1000 / max(self.lms_rate, 0.001)))


class TokenRecord(msgspec.Struct, kw_only=True):
    digest: str
    created_at: str
    label: str = ""


class TokenInfo(msgspec.Struct, kw_only=True):
    """What may be shown about a token: never its secret or digest."""

    token_id: str
    created_at: str
    label: str
    last_used_at: str | None


class IssuedToken(msgspec.Struct, kw_only=True):
    token_id: str
    token: str


class TenantError(ValueError):
    """A tenant operation that cannot be done (bad slug, exists, missing)."""


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """Split a presented token into (token_id, secret), or None if malformed."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or len(token_id) != 16 or not secret or len(secret) > 128:
        return None
    return token_id, secret


_tenant_decoder = msgspec.json.Decoder(Tenant)
_token_decoder = msgspec.json.Decoder(TokenRecord)


class TenantStore:
    """Tenants and tokens in Redis; one instance per process.

    Nothing is cached: a SCIM request reads its tenant and token record in
    one pipelined round trip (`credentials`), so a revoked token or a
    disabled tenant is refused on the very next request of every process,
    with no message that could arrive late or be missed.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._last_used_written: dict[str, float] = {}

    async def create(self, tenant: Tenant) -> Tenant:
        if not SLUG_RE.match(tenant.slug):
            raise TenantError(
                "slug must be 1-63 lower-case letters, digits or dashes, "
                "starting and ending with a letter or digit"
            )
        tenant.created_at = tenant.created_at or now_iso()
        created = await self._redis.set(
            keys.tenant_config(tenant.slug), msgspec.json.encode(tenant), nx=True
        )
        if not created:
            raise TenantError(f"tenant {tenant.slug!r} already exists")
        await self._redis.sadd(keys.TENANTS, tenant.slug)  # type: ignore[misc]
        return tenant

    async def get(self, slug: str) -> Tenant | None:
        raw = await self._redis.get(keys.tenant_config(slug))
        return _tenant_decoder.decode(raw) if raw else None

    async def save(self, tenant: Tenant) -> None:
        await self._redis.set(keys.tenant_config(tenant.slug), msgspec.json.encode(tenant))

    async def slugs(self) -> list[str]:
        members = await self._redis.smembers(keys.TENANTS)  # type: ignore[misc]
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)

    async def issue_token(self, slug: str, label: str = "") -> IssuedToken:
        if await self.get(slug) is None:
            raise TenantError(f"no tenant {slug!r}")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        record = TokenRecord(digest=_digest(secret), created_at=now_iso(), label=label)
        encoded = msgspec.json.encode(record).decode()
        await self._redis.hset(keys.tokens(slug), token_id, encoded)  # type: ignore[misc]
        return IssuedToken(token_id=token_id, token=f"{TOKEN_PREFIX}{token_id}_{secret}")

    async def list_tokens(self, slug: str) -> list[TokenInfo]:
        records = await self._redis.hgetall(keys.tokens(slug))  # type: ignore[misc]
        used = await self._redis.hgetall(keys.tokens_used(slug))  # type: ignore[misc]
        infos = []
        for raw_id, raw in records.items():
            token_id = raw_id.decode()
            record = _token_decoder.decode(raw)
            last = used.get(raw_id)
            infos.append(
                TokenInfo(
                    token_id=token_id,
                    created_at=record.created_at,
                    label=record.label,
                    last_used_at=last.decode() if last else None,
                )
            )
        return sorted(infos, key=lambda t: t.created_at)

    async def revoke_token(self, slug: str, token_id: str) -> bool:
        removed = await self._redis.hdel(keys.tokens(slug), token_id)  # type: ignore[misc]
        await self._redis.hdel(keys.tokens_used(slug), token_id)  # type: ignore[misc]
        return bool(removed)

    async def credentials(self, slug: str, token: str) -> tuple[Tenant | None, str | None]:
        """The tenant `slug` and, when `token` is one of its live tokens, the
        token's id: one round trip (tenant and tokens share a hash slot).

        The last-used time is written at most once a minute per token and
        process so that it costs nothing on the hot path.
        """
        parsed = parse_token(token)
        token_id, secret = parsed if parsed else ("", "")
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.tenant_config(slug))
            pipe.hget(keys.tokens(slug), token_id or "-")
            raw_tenant, raw_record = await pipe.execute()
        tenant = _tenant_decoder.decode(raw_tenant) if raw_tenant else None
        record = _token_decoder.decode(raw_record) if raw_record and parsed else None
        presented = _digest(secret)
        if record is None:
            hmac.compare_digest(presented, presented)  # same work either way
            return tenant, None
        if not hmac.compare_digest(presented, record.digest):
            return tenant, None
        now = time.monotonic()
        cache_key = f"{slug}/{token_id}"
        if now - self._last_used_written.get(cache_key, -_LAST_USED_EVERY_S) >= _LAST_USED_EVERY_S:
            self._last_used_written[cache_key] = now
            await self._redis.hset(keys.tokens_used(slug), token_id, now_iso())  # type: ignore[misc]
        return tenant, token_id

    async def authenticate(self, slug: str, token: str) -> str | None:
        """The token id when `token` is a live token of `slug`, else None."""
        tenant, token_id = await self.credentials(slug, token)
        return token_id if tenant is not None else None
