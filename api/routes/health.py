"""Liveness, readiness and metrics for load balancers, orchestrators and Prometheus."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from api.metrics import RequestMetrics, render_metrics
from api.services import Services

__all__ = ["READY_TIMEOUT_S", "healthz", "metrics", "readyz"]

#: A Redis that takes longer than this to answer PING is not ready.
READY_TIMEOUT_S = 2.0


@get("/healthz", name="healthz", media_type="application/json")
async def healthz() -> dict[str, str]:
    """The process is alive and serving (it touches nothing outside itself)."""
    return {"status": "ok"}


@get("/readyz", name="readyz", media_type="application/json")
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    """Ready only while Redis answers (and the queue's, when it has its own):
    without it no change can be acknowledged. A hung Redis is down too."""
    services: Services = request.app.state.services
    clients = [services.redis]
    if services.settings.queue_redis_url:
        clients.append(services.queue)
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            for client in clients:
                await client.ping()
    except Exception:
        return Response(
            {"status": "unavailable", "redis": "down"}, status_code=HTTP_503_SERVICE_UNAVAILABLE
        )
    return Response({"status": "ok", "redis": "up"}, status_code=HTTP_200_OK)


@get("/metrics", name="metrics", media_type=CONTENT_TYPE_LATEST)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text: this process's SCIM request series, the per-tenant
    gauges and the workers' series (`api.metrics`)."""
    services: Services = request.app.state.services
    requests: RequestMetrics = request.app.state.request_metrics
    queue = services.queue if services.settings.queue_redis_url else None
    body = await render_metrics(requests, services.redis, queue)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
