"""The admin API's one error shape: `{"error": <code>, "detail": <text>}`.

SCIM clients get SCIM Error bodies (api/errors.py); admin clients (the ops
tooling, the LMS's settings page) get this plainer JSON. The handlers are
registered on the admin router, so they win over the app's SCIM ones for
every admin route; a traceback never reaches a body.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from redis.exceptions import RedisError

from api.middleware import route_of
from scim.errors import ScimError

log = logging.getLogger("scim_bridge.admin")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    500: "internal",
    503: "unavailable",
}


#: Sent with every admin API answer, errors included: never cached (a token
#: or key is shown once), never sniffed as another type, never framed.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every refusal of the admin API (docs/operations.md, "Admin API: errors")."""

    error: str
    detail: str


#: Described on every admin route in the OpenAPI document (api/admin/router.py).
ERROR_RESPONSES = {
    status: ResponseSpec(data_container=ErrorBody, description=f"{code.replace('_', ' ')}")
    for status, code in _CODES.items()
    if status in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}


class AdminError(Exception):
    """An answer of the admin API that is not a success."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        error: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.error = error or _CODES.get(status, "error")
        self.headers = headers
        self.extra = extra


def error_response(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response[dict[str, Any]]:
    headers = {**SECURITY_HEADERS, **(headers or {})}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="scim-bridge-admin"'
    return Response(
        {"error": error, "detail": detail, **extra},
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _admin_error(_: Request[Any, Any, Any], exc: AdminError) -> Response[dict[str, Any]]:
    return error_response(exc.status, exc.error, exc.detail, exc.headers, **exc.extra)


def _scim_error(_: Request[Any, Any, Any], exc: ScimError) -> Response[dict[str, Any]]:
    return error_response(exc.status, _CODES.get(exc.status, "error"), exc.detail)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    detail = str(exc.detail) if status == 400 and exc.detail else _CODES.get(status, "error")
    extra = exc.extra if isinstance(exc.extra, list) else []
    if status == 400 and any(isinstance(e, dict) and e.get("key") == "data" for e in extra):
        detail = "a JSON object body is required"  # a typed route's body was empty
    allow = {"Allow": exc.headers["allow"]} if exc.headers and "allow" in exc.headers else None
    return error_response(status, _CODES.get(status, "error"), detail.replace("_", " "), allow)


def _redis_error(request: Request[Any, Any, Any], exc: RedisError) -> Response[dict[str, Any]]:
    route = route_of(request.scope)
    log.error("redis unavailable", extra={"route": route, "error": repr(exc)[:200]})
    return error_response(
        503, "unavailable", "the bridge's store is unavailable; retry later", {"Retry-After": "5"}
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled admin error", extra={"route": route_of(request.scope)})
    return error_response(500, "internal", "internal error")


ADMIN_EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    AdminError: _admin_error,
    ScimError: _scim_error,
    HTTPException: _http_error,
    RedisError: _redis_error,
    Exception: _unexpected,
}
