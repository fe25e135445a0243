"""Liveness, readiness and metrics for load balancers, orchestrators and Prometheus."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_401_UNAUTHORIZED,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from api.admin.auth import same_secret
from api.metrics import RequestMetrics, render_metrics
from api.services import Services
from core.settings import Settings

__all__ = ["READY_TIMEOUT_S", "healthz", "metrics", "readyz"]

#: A Redis that takes longer than this to answer PING is not ready.
READY_TIMEOUT_S = 2.0


@get("/healthz", name="healthz", media_type="application/json", include_in_schema=False)
async def healthz() -> dict[str, str]:
    """The process is alive and serving (it touches nothing outside itself)."""
    return {"status": "ok"}


@get("/readyz", name="readyz", media_type="application/json", include_in_schema=False)
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    """Ready only while Redis answers (and the queue's, when it has its own):
    without it no change can be acknowledged. A hung Redis is down too. A
    process draining after SIGTERM is not ready either, so that a load
    balancer moves away before it closes (`cli.processes.DrainingServer`)."""
    if getattr(request.app.state, "draining", False):
        return Response(
            {"status": "draining", "redis": "unknown"}, status_code=HTTP_503_SERVICE_UNAVAILABLE
        )
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


def _may_scrape(settings: Settings, authorization: str) -> bool:
    """The operator token or the metrics token opens /metrics, 401 to
    anonymous callers (docs/architecture.md, "Interfaces others rely on"):
    it names every tenant. With neither set,
    nobody may scrape: set BRIDGE_METRICS_TOKEN for Prometheus."""
    expected = [t for t in (settings.admin_token, settings.metrics_token) if t]
    if not expected:
        return False
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return False
    found = False
    for token in expected:  # constant time, whichever matches
        found |= same_secret(presented.strip(), token)
    return found


@get("/metrics", name="metrics", media_type=CONTENT_TYPE_LATEST, include_in_schema=False)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text: this process's SCIM request series, the per-tenant
    gauges and the workers' series (`api.metrics`)."""
    services: Services = request.app.state.services
    if not _may_scrape(services.settings, request.headers.get("authorization", "")):
        return Response(
            b"401 Unauthorized: send Authorization: Bearer <operator or metrics token>\n",
            status_code=HTTP_401_UNAUTHORIZED,
            media_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    requests: RequestMetrics = request.app.state.request_metrics
    queue = services.queue if services.settings.queue_redis_url else None
    body = await render_metrics(requests, services.redis, queue)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
