"""The Litestar application factory and the lifespan that owns the pools."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq.connections import ArqRedis
from litestar import Litestar

from api.admin.errors import ADMIN_EXCEPTION_HANDLERS
from api.admin.openapi import admin_openapi_config
from api.admin.router import ADMIN_PREFIX, admin_router
from api.drain import DrainUnreadBody
from api.endpoints import endpoints
from api.errors import EXCEPTION_HANDLERS, by_area
from api.fair_turns import FairTurns
from api.forwarded import ForwardedBase
from api.inflight import TenantInFlight
from api.metrics import share_requests
from api.middleware import observe_requests
from api.routes.health import healthz, metrics, readyz
from api.routes.scim import ScimPathCase, scim_router
from api.services import Services
from api.web import WEB_PREFIX, AdminPage
from api.web.router import WEB_EXCEPTION_HANDLERS
from core.connect import check_queue_placement, connect, connect_listener, connect_queue
from core.settings import Settings, load_settings

log = logging.getLogger("scim_bridge.api")


def create_app(
    settings: Settings | None = None, *, metrics_group: tuple[str, str] | None = None
) -> Litestar:
    """The app; `metrics_group` (group, index) for a process of a group
    sharing a port (cli/process_group.py): its SCIM request series are
    shared with the others' (api/metrics.py `share_requests`)."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        check_queue_placement(settings.redis_url, settings.queue_redis_url)
        redis = connect(settings.redis_url)
        # Both clients time out and cap their connections (core/connect.py).
        queue: ArqRedis = (
            connect_queue(settings.queue_url)
            if settings.queue_redis_url
            else ArqRedis(connection_pool=redis.connection_pool)
        )
        services = Services.build(
            settings, redis, queue, throttled=app.state.request_metrics.throttled
        )
        app.state.services = services
        app.state.endpoints = endpoints(services)
        listener = connect_listener(settings.redis_url)  # no read timeout: it idles
        watcher = asyncio.create_task(services.tenants.watch_changes(listener))
        tasks = [watcher]
        if metrics_group is not None:
            requests = app.state.request_metrics
            tasks.append(asyncio.create_task(share_requests(requests, redis, *metrics_group)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if settings.queue_redis_url:
                await queue.aclose()
            await listener.aclose()
            await redis.aclose()

    app = Litestar(
        route_handlers=[scim_router(), admin_router(), healthz, readyz, metrics],
        lifespan=[lifespan],
        plugins=[AdminPage()],  # the admin web page under /admin/ (api/web)
        # An unknown URL or method is answered in its area's shape: the admin
        # API's JSON, the admin site's page, else a SCIM Error.
        exception_handlers=by_area(
            [(ADMIN_PREFIX, ADMIN_EXCEPTION_HANDLERS), (WEB_PREFIX, WEB_EXCEPTION_HANDLERS)],
            EXCEPTION_HANDLERS,
        ),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=admin_openapi_config(),  # the admin API's, at /admin/v1/schema
        debug=False,
        # The process configures JSON-lines logging (core.logs); Litestar's
        # default config would replace the root handler with a text one.
        logging_config=None,
    )
    app.asgi_handler = ScimPathCase(app.asgi_handler)  # `/users` is `/Users`
    app.asgi_handler = ForwardedBase(app.asgi_handler, settings)  # BRIDGE_TRUSTED_PROXIES
    app.asgi_handler = DrainUnreadBody(app.asgi_handler)  # a refused body is read first
    # One tenant's requests in flight in this process: admitted by api.auth.
    app.state.inflight = TenantInFlight(
        app.asgi_handler, settings.scim_inflight_per_tenant, FairTurns(settings.api_turns)
    )
    app.asgi_handler = app.state.inflight
    observe_requests(app)  # request id, access log, SCIM request metrics
    app.state.metrics_group = metrics_group
    return app
