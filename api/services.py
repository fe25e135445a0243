"""The per-process services the handlers use, built once by the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis
from redis.asyncio import Redis

from core.settings import Settings
from shadow import ResourceStore, SyncStore, TenantStore
from shadow.limits import ScimRateLimiter

# Tenants and token records are cached per process; a change waits until
# every API process has evicted it (see shadow/tenants.py), so the TTL only
# bounds a process that missed a message.
_CREDENTIALS_TTL_S = 30.0


@dataclass
class Services:
    settings: Settings
    redis: Redis
    queue: ArqRedis
    tenants: TenantStore
    resources: ResourceStore
    sync: SyncStore
    scim_limiter: ScimRateLimiter | None

    @classmethod
    def build(cls, settings: Settings, redis: Redis, queue: ArqRedis) -> Services:
        return cls(
            settings=settings,
            redis=redis,
            queue=queue,
            tenants=TenantStore(redis, cache_ttl_s=_CREDENTIALS_TTL_S, sealer=settings.sealer()),
            resources=ResourceStore(redis),
            sync=SyncStore(redis, retention=settings.retention),
            scim_limiter=ScimRateLimiter(redis) if settings.scim_rate_limit else None,
        )
