"""The per-process services the handlers use, built once by the lifespan."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from arq.connections import ArqRedis
from redis.asyncio import Redis

from api.settings import Settings
from shadow import ResourceStore, SyncStore, Tenant, TenantStore

_TENANT_TTL_S = 5.0


@dataclass
class TenantCache:
    """Tenant settings cached for a few seconds: every SCIM request needs the
    tenant's rate and enabled flag, and they change rarely. Tokens are never
    cached, so a revoked token stops working at once."""

    store: TenantStore
    _entries: dict[str, tuple[float, Tenant | None]] = field(default_factory=dict)

    async def get(self, slug: str) -> Tenant | None:
        now = time.monotonic()
        hit = self._entries.get(slug)
        if hit and now - hit[0] < _TENANT_TTL_S:
            return hit[1]
        tenant = await self.store.get(slug)
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[slug] = (now, tenant)
        return tenant


@dataclass
class Services:
    settings: Settings
    redis: Redis
    queue: ArqRedis
    tenants: TenantStore
    resources: ResourceStore
    sync: SyncStore
    tenant_cache: TenantCache

    @classmethod
    def build(cls, settings: Settings, redis: Redis, queue: ArqRedis) -> Services:
        tenants = TenantStore(redis)
        return cls(
            settings=settings,
            redis=redis,
            queue=queue,
            tenants=tenants,
            resources=ResourceStore(redis),
            sync=SyncStore(redis),
            tenant_cache=TenantCache(tenants),
        )
