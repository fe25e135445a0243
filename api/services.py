"""The per-process services the handlers use, built once by the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis
from redis.asyncio import Redis

from api.settings import Settings
from shadow import ResourceStore, SyncStore, TenantStore


@dataclass
class Services:
    settings: Settings
    redis: Redis
    queue: ArqRedis
    tenants: TenantStore
    resources: ResourceStore
    sync: SyncStore

    @classmethod
    def build(cls, settings: Settings, redis: Redis, queue: ArqRedis) -> Services:
        return cls(
            settings=settings,
            redis=redis,
            queue=queue,
            tenants=TenantStore(redis),
            resources=ResourceStore(redis),
            sync=SyncStore(redis),
        )
