"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE


@get("/healthz", name="healthz", media_type="application/json")
async def healthz() -> dict[str, str]:
    """The process is alive and serving."""
    return {"status": "ok"}


@get("/readyz", name="readyz", media_type="application/json")
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    """Ready only while Redis answers: without it no change can be acknowledged."""
    services = request.app.state.services
    try:
        await services.redis.ping()
    except Exception:
        return Response(
            {"status": "unavailable", "redis": "down"}, status_code=HTTP_503_SERVICE_UNAVAILABLE
        )
    return Response({"status": "ok", "redis": "up"}, status_code=HTTP_200_OK)
