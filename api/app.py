"""The Litestar application factory and the lifespan that owns the pools."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq.connections import ArqRedis, RedisSettings, create_pool
from litestar import Litestar
from redis.asyncio import Redis

from api.errors import EXCEPTION_HANDLERS
from api.middleware import observe_requests
from api.resources import endpoints
from api.routes.health import healthz, metrics, readyz
from api.routes.scim import scim_router
from api.services import Services
from api.settings import Settings, load_settings

log = logging.getLogger("scim_bridge.api")


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.redis_url)
        queue: ArqRedis = (
            await create_pool(RedisSettings.from_dsn(settings.queue_url), retry=0)
            if settings.queue_redis_url
            else ArqRedis(connection_pool=redis.connection_pool)
        )
        services = Services.build(settings, redis, queue)
        app.state.services = services
        app.state.endpoints = endpoints(services)
        watcher = asyncio.create_task(services.tenants.watch_changes())
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if settings.queue_redis_url:
                await queue.aclose()
            await redis.aclose()

    app = Litestar(
        route_handlers=[scim_router(), healthz, readyz, metrics],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        debug=False,
    )
    observe_requests(app)  # request id, access log, SCIM request metrics
    return app
