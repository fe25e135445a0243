"""Tenants and their SCIM bearer tokens.

A token is `scimb_<token_id>_<secret>`: the id finds the record in one hash
lookup, the 256-bit secret is kept only as a SHA-256 digest and compared in
constant time. A tenant may hold several live tokens so a customer can rotate
without downtime; revoking deletes the record, so it stops working at once.

API processes cache tenants and token records (`cache_ttl_s`) so a SCIM
request costs no round trip for its credentials. A change (tenant saved,
token revoked) is published on `keys.credential_changes`, and the change
returns only once every subscribed process has evicted it and said so: when
`token revoke` returns, no API process accepts the token any more. A process
caches only while its subscription is up, and a read that raced an eviction
is not cached. On a Redis Cluster (where PUBLISH counts only one node's
subscribers) nothing is cached. Each cache is an LRU with a cap, misses
(unknown slugs and token ids) in one of their own, and a slug or token of
the wrong shape is refused before any lookup: a stranger's guesses cost
nothing that lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable

import msgspec
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from core.clock import iso_of_ms, now_iso
from core.lru import LruCache
from core.sealing import Sealer
from shadow import keys

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
TOKEN_PREFIX = "scimb_"
#: What `issue_token` makes: a 16-hex id and a URL-safe secret (43 characters
#: today). Anything else is refused before any lookup or cache entry.
_TOKEN_RE = re.compile(r"scimb_([0-9a-f]{16})_([A-Za-z0-9_-]{32,128})")
#: Credentials cached per process: live tenants and tokens, and apart from
#: them the misses, fewer, so that a flood of unknown slugs or token ids
#: neither grows the process nor pushes live credentials out.
CACHE_ENTRIES = 20_000
MISS_ENTRIES = 2_000
_LAST_USED_EVERY_S = 60.0
#: How long a change waits for every API process to confirm its eviction.
ACK_WAIT_S = 5.0

logger = logging.getLogger("scim_bridge")


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
    #: SCIM requests a second the API takes from this tenant, and its burst
    #: (shadow/limits.py): four times Entra's 25 a second by default.
    scim_rate: float = 100.0
    scim_burst: int = 200

    def __repr__(self) -> str:
        """Never the LMS API key, sealed or not."""
        return f"Tenant(slug={self.slug!r}, name={self.name!r}, lms_url={self.lms_url!r}, ...)"

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
    #: `now_iso()` form (fixed width, so it compares as text); "" never expires.
    expires_at: str = ""


class TokenInfo(msgspec.Struct, kw_only=True):
    """What may be shown about a token: never its secret or digest."""

    token_id: str
    created_at: str
    label: str
    last_used_at: str | None
    expires_at: str | None = None


class IssuedToken(msgspec.Struct, kw_only=True):
    token_id: str
    token: str
    expires_at: str | None = None


class TenantError(ValueError):
    """A tenant operation that cannot be done (bad slug, exists, missing)."""


#: Longest label of a SCIM token or an admin key (docs/operations.md, "Lengths").
MAX_LABEL_LENGTH = 100


def check_label(label: str) -> None:
    if len(label) > MAX_LABEL_LENGTH:
        raise TenantError(f"label must be at most {MAX_LABEL_LENGTH} characters")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """Split a presented token into (token_id, secret), or None if malformed."""
    found = _TOKEN_RE.fullmatch(token)
    return (found[1], found[2]) if found else None


def is_slug(text: str) -> bool:
    """Whether `text` could name a tenant (`SLUG_RE`, no trailing newline)."""
    return SLUG_RE.fullmatch(text) is not None


_tenant_decoder = msgspec.json.Decoder(Tenant)
_token_decoder = msgspec.json.Decoder(TokenRecord)


class TenantStore:
    """Tenants and tokens in Redis; one instance per process (module docstring
    for the credential cache)."""

    def __init__(
        self,
        redis: Redis,
        *,
        cache_ttl_s: float = 0.0,
        ack_wait_s: float = ACK_WAIT_S,
        sealer: Sealer | None = None,
        cache_entries: int = CACHE_ENTRIES,
        miss_entries: int = MISS_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        #: Wall-clock seconds that token expiry is measured on (a test's own).
        self._clock = clock
        #: Seals LMS API keys before they are stored (core/sealing.py).
        self._sealer = sealer
        self._last_used_written: LruCache[str, float] = LruCache(cache_entries)
        self._cluster = isinstance(redis, RedisCluster)
        self._ttl = 0.0 if self._cluster else cache_ttl_s
        self._ack_wait_s = ack_wait_s
        pool = getattr(redis, "connection_pool", None)  # a cluster has none (and database 0)
        db = pool.connection_kwargs.get("db") if pool is not None else 0
        self.changes_channel = keys.credential_changes(int(db or 0))
        self._listening = False
        self.listening = asyncio.Event()
        #: Bumped by every eviction: a read that started before one is not cached.
        self._generation = 0
        self._tenants: LruCache[str, tuple[float, Tenant]] = LruCache(cache_entries)
        self._tokens: LruCache[tuple[str, str], tuple[float, TokenRecord]] = LruCache(cache_entries)
        #: (slug, "") for no such tenant, (slug, token id) for no such token.
        self._misses: LruCache[tuple[str, str], float] = LruCache(miss_entries)

    def cache_sizes(self) -> dict[str, int]:
        """Entries held by each in-process cache (each is capped)."""
        return {
            "tenants": len(self._tenants),
            "tokens": len(self._tokens),
            "misses": len(self._misses),
            "last_used": len(self._last_used_written),
        }

    @property
    def caches(self) -> bool:
        """Whether this store keeps credentials in memory (while subscribed)."""
        return self._ttl > 0

    def _caching(self) -> bool:
        return self.caches and self._listening

    def _evict_all(self) -> None:
        self._generation += 1
        self._tenants.clear()
        self._tokens.clear()
        self._misses.clear()

    async def watch_changes(self, listener: Redis | None = None) -> None:
        """Keep the cache honest: evict what other processes change and confirm
        each eviction. Runs until cancelled; after a Redis outage it starts
        again with an empty cache, which is bypassed while unsubscribed.

        `listener` subscribes: a client without a read timeout
        (`core.connect.connect_listener`), else a quiet hour would drop the
        subscription, and the cache with it, at every read timeout."""
        if not self.caches:
            return
        while True:
            pubsub = (listener or self._redis).pubsub()
            try:
                await pubsub.subscribe(self.changes_channel)
                self._evict_all()
                self._listening = True
                self.listening.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self._apply_change(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(1.0)
            finally:
                self._listening = False
                self.listening.clear()
                self._evict_all()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _apply_change(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        nonce, _, change = text.partition(" ")
        self._evict(change)
        ack = keys.change_acks(nonce)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(ack, 1)
            pipe.expire(ack, 60)
            await pipe.execute()

    def _evict(self, change: str) -> None:
        self._generation += 1
        kind, _, rest = change.partition(" ")
        if kind == "tenant":
            self._tenants.pop(rest)
            self._misses.pop((rest, ""))
        elif kind == "token":
            slug, _, token_id = rest.partition(" ")
            self._tokens.pop((slug, token_id))
            self._misses.pop((slug, token_id))
        else:
            self._evict_all()

    async def _publish(self, change: str) -> None:
        """Tell every API process, and wait until each has evicted `change`."""
        self._evict(change)
        if self._cluster:
            return  # no process caches on a cluster
        nonce = secrets.token_hex(8)
        receivers = int(await self._redis.publish(self.changes_channel, f"{nonce} {change}"))
        ack = keys.change_acks(nonce)
        deadline = time.monotonic() + self._ack_wait_s
        confirmed = 0
        while confirmed < receivers and (left := deadline - time.monotonic()) > 0:
            # Each acknowledgement is awaited by a blocking pop, in slices of at
            # most a second so it stays below any sensible socket timeout
            # (and never 0, which would block for good). Redis takes a
            # fractional timeout; redis-py's annotation says int.
            wait = max(0.01, min(left, 1.0))
            if await self._redis.blpop([ack], timeout=wait):  # type: ignore[arg-type, misc]
                confirmed += 1
        if confirmed < receivers:
            logger.warning(
                "%d of %d API processes did not confirm a credential change within %.0f s; "
                "they drop their cached copy within its lifetime at the latest",
                receivers - confirmed,
                receivers,
                self._ack_wait_s,
            )
        await self._redis.delete(ack)

    async def create(self, tenant: Tenant) -> Tenant:
        if not is_slug(tenant.slug):
            raise TenantError(
                "slug must be 1-63 lower-case letters, digits or dashes, "
                "starting and ending with a letter or digit"
            )
        if await self._redis.hexists(keys.TENANTS_DELETING, tenant.slug):  # type: ignore[misc]
            raise TenantError(f"tenant {tenant.slug!r} is being deleted; finish that first")
        tenant.created_at = tenant.created_at or now_iso()
        self._seal(tenant)
        created = await self._redis.set(
            keys.tenant_config(tenant.slug), msgspec.json.encode(tenant), nx=True
        )
        if not created:
            raise TenantError(f"tenant {tenant.slug!r} already exists")
        await self._redis.sadd(keys.TENANTS, tenant.slug)  # type: ignore[misc]
        await self._publish(f"tenant {tenant.slug}")  # a cached "no such tenant"
        return tenant

    async def get(self, slug: str) -> Tenant | None:
        raw = await self._redis.get(keys.tenant_config(slug))
        return _tenant_decoder.decode(raw) if raw else None

    def _seal(self, tenant: Tenant) -> None:
        """The key as stored (and as this process keeps it): sealed."""
        if self._sealer is not None:
            tenant.lms_api_key = self._sealer.seal(tenant.lms_api_key)

    async def save(self, tenant: Tenant) -> None:
        self._seal(tenant)
        await self._redis.set(keys.tenant_config(tenant.slug), msgspec.json.encode(tenant))
        await self._publish(f"tenant {tenant.slug}")

    async def reseal_all(self) -> int:
        """Seal every tenant's LMS key under the newest BRIDGE_SECRET_KEY (after
        a new key was put first); the number of tenants re-sealed. Raises
        `SealError` when a key opens under none of the configured keys."""
        if self._sealer is None:
            raise TenantError("BRIDGE_SECRET_KEY is not set: nothing to seal with")
        count = 0
        for slug in await self.slugs():
            tenant = await self.get(slug)
            if tenant is None:
                continue
            tenant.lms_api_key = self._sealer.reseal(tenant.lms_api_key)
            await self._redis.set(keys.tenant_config(slug), msgspec.json.encode(tenant))
            count += 1
        return count

    async def slugs(self) -> list[str]:
        members = await self._redis.smembers(keys.TENANTS)  # type: ignore[misc]
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)

    async def issue_token(
        self, slug: str, label: str = "", *, expires_in_s: float | None = None
    ) -> IssuedToken:
        """A new token (shown this once); with `expires_in_s` it stops working
        that long from now, as if revoked then."""
        check_label(label)
        if await self.get(slug) is None:
            raise TenantError(f"no tenant {slug!r}")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        expires_at = (
            "" if expires_in_s is None else iso_of_ms(int((self._clock() + expires_in_s) * 1000))
        )
        record = TokenRecord(
            digest=_digest(secret), created_at=now_iso(), label=label, expires_at=expires_at
        )
        encoded = msgspec.json.encode(record).decode()
        await self._redis.hset(keys.tokens(slug), token_id, encoded)  # type: ignore[misc]
        token = f"{TOKEN_PREFIX}{token_id}_{secret}"
        return IssuedToken(token_id=token_id, token=token, expires_at=expires_at or None)

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
                    expires_at=record.expires_at or None,
                )
            )
        return sorted(infos, key=lambda t: t.created_at)

    async def revoke_token(self, slug: str, token_id: str) -> bool:
        removed = await self._redis.hdel(keys.tokens(slug), token_id)  # type: ignore[misc]
        await self._redis.hdel(keys.tokens_used(slug), token_id)  # type: ignore[misc]
        await self._publish(f"token {slug} {token_id}")
        return bool(removed)

    async def credentials(self, slug: str, token: str) -> tuple[Tenant | None, str | None]:
        """The tenant `slug` and, when `token` is one of its live tokens, the
        token's id: one round trip (tenant and tokens share a hash slot).

        The last-used time is written at most once a minute per token and
        process so that it costs nothing on the hot path.
        """
        parsed = parse_token(token)
        if parsed is None or not is_slug(slug):
            return None, None  # nothing looked up, nothing cached
        token_id, secret = parsed
        tenant, record = await self._cached_credentials(slug, token_id)
        presented = _digest(secret)
        if record is None:
            hmac.compare_digest(presented, presented)  # same work either way
            return tenant, None
        if not hmac.compare_digest(presented, record.digest):
            return tenant, None
        if record.expires_at and record.expires_at <= iso_of_ms(int(self._clock() * 1000)):
            return tenant, None  # expired: refused from that instant, cached or not
        now = time.monotonic()
        cache_key = f"{slug}/{token_id}"
        last = self._last_used_written.get(cache_key)
        if last is None or now - last >= _LAST_USED_EVERY_S:
            self._last_used_written.put(cache_key, now)
            await self._redis.hset(keys.tokens_used(slug), token_id, now_iso())  # type: ignore[misc]
        return tenant, token_id

    async def _cached_credentials(
        self, slug: str, token_id: str
    ) -> tuple[Tenant | None, TokenRecord | None]:
        """Tenant and token record: from the cache when both are fresh, else
        one pipelined read (tenant and tokens share a hash slot)."""
        now = time.monotonic()
        caching = self._caching()
        if caching:
            found = self._from_cache(slug, token_id, now)
            if found is not None:
                return found
        generation = self._generation
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.tenant_config(slug))
            pipe.hget(keys.tokens(slug), token_id or "-")
            raw_tenant, raw_record = await pipe.execute()
        tenant = _tenant_decoder.decode(raw_tenant) if raw_tenant else None
        record = _token_decoder.decode(raw_record) if raw_record else None
        # Cache only what no eviction overtook.
        if caching and self._caching() and generation == self._generation:
            if tenant is None:
                self._misses.put((slug, ""), now)
            else:
                self._tenants.put(slug, (now, tenant))
                if record is None:
                    self._misses.put((slug, token_id), now)
                else:
                    self._tokens.put((slug, token_id), (now, record))
        return tenant, record

    def _from_cache(
        self, slug: str, token_id: str, now: float
    ) -> tuple[Tenant | None, TokenRecord | None] | None:
        """The cached answer while every part of it is fresh, else None."""
        ttl = self._ttl
        tenant_hit = self._tenants.get(slug)
        if tenant_hit is None:
            missed = self._misses.get((slug, ""))
            return (None, None) if missed is not None and now - missed < ttl else None
        if now - tenant_hit[0] >= ttl:
            return None
        token_hit = self._tokens.get((slug, token_id))
        if token_hit is not None:
            return (tenant_hit[1], token_hit[1]) if now - token_hit[0] < ttl else None
        missed = self._misses.get((slug, token_id))
        return (tenant_hit[1], None) if missed is not None and now - missed < ttl else None

    async def authenticate(self, slug: str, token: str) -> str | None:
        """The token id when `token` is a live token of `slug`, else None."""
        tenant, token_id = await self.credentials(slug, token)
        return token_id if tenant is not None else None
