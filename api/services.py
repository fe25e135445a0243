"""The per-process services the handlers use, built once by the lifespan."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from arq.connections import ArqRedis
from redis.asyncio import Redis

from core.settings import Settings
from scim.errors import TooManyRequests
from shadow import ResourceStore, SyncStore, TenantStore
from shadow.limits import ScanBudget, ScimRateLimiter

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
    scan_budget: ScanBudget | None = None
    #: Counts a tenant's 429 in /metrics (`RequestMetrics.throttled`).
    throttled: Callable[[str], None] = lambda _tenant: None

    @classmethod
    def build(
        cls,
        settings: Settings,
        redis: Redis,
        queue: ArqRedis,
        throttled: Callable[[str], None] | None = None,
    ) -> Services:
        limits = settings.scim_rate_limit
        return cls(
            settings=settings,
            redis=redis,
            queue=queue,
            tenants=TenantStore(redis, cache_ttl_s=_CREDENTIALS_TTL_S, sealer=settings.sealer()),
            resources=ResourceStore(redis),
            sync=SyncStore(redis, retention=settings.retention),
            scim_limiter=ScimRateLimiter(redis) if limits else None,
            scan_budget=ScanBudget(redis, settings.scan_rate, settings.scan_burst)
            if limits
            else None,
            **({"throttled": throttled} if throttled else {}),
        )

    async def admit_scan(self, tenant: str, cost: int) -> None:
        """Charge a filter scan of `cost` resources to the tenant's scan budget
        (shadow/limits.py); 429 with Retry-After, counted, when it is spent."""
        if self.scan_budget is None:
            return
        wait = await self.scan_budget.wait_s(tenant, cost)
        if wait > 0:
            self.throttled(tenant)
            raise TooManyRequests(
                f"this tenant's budget for filters that scan every resource is spent "
                f"({self.settings.scan_rate:g} resources a second); retry later, or "
                "filter with eq on userName, externalId or id",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
