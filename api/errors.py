"""One place that turns every failure into a SCIM Error body (RFC 7644 §3.12).

SCIM errors come from the pure logic; Litestar's own errors (404 route,
405 method, 413, validation) and anything unexpected are rendered the same
way, never with a traceback or an internal path.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from redis.exceptions import RedisError

from api.middleware import route_of
from api.scim_io import SCIM_MEDIA_TYPE, encode
from scim.errors import ScimError, Unavailable

log = logging.getLogger("scim_bridge.api")

_GENERIC_DETAIL = {
    400: "bad request",
    401: "authentication required",
    403: "forbidden",
    404: "resource not found",
    405: "method not allowed",
    413: "request body too large",
    415: "unsupported media type",
    429: "too many requests",
}


def scim_error_response(error: ScimError, headers: dict[str, str] | None = None) -> Response[bytes]:
    if error.status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="scim-bridge"', **(headers or {})}
    return Response(
        content=encode(error.to_body()),
        status_code=error.status,
        media_type=SCIM_MEDIA_TYPE,
        headers=headers or {},
    )


def handle_scim_error(_: Request[Any, Any, Any], exc: ScimError) -> Response[bytes]:
    return scim_error_response(exc, exc.headers)


def handle_http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    detail = _GENERIC_DETAIL.get(status, "request failed")
    if status == 413:
        detail = "request body over the size limit"
    elif status == 400 and exc.detail:
        detail = str(exc.detail)
    error = ScimError(detail, status=status)
    if status == 400:
        error.scim_type = "invalidSyntax"
    headers = dict(exc.headers or {})
    return scim_error_response(error, headers)


def handle_redis_error(request: Request[Any, Any, Any], exc: RedisError) -> Response[bytes]:
    """Redis is down or failing: say 503, never a 2xx we could not persist."""
    route = route_of(request.scope)
    log.error("redis unavailable", extra={"route": route, "error": repr(exc)[:200]})
    return scim_error_response(
        Unavailable("the bridge's store is unavailable; retry later"), {"Retry-After": "5"}
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error", extra={"route": route_of(request.scope)})
    return scim_error_response(ScimError("internal error", status=500))


Handlers = dict[type[Exception] | int, Any]


def by_area(areas: list[tuple[str, Handlers]], default: Handlers) -> Handlers:
    """The app's handlers: an error is answered in the shape of the area its
    path is in (`areas`: path prefix, that area's handlers; the first match
    wins, so longer prefixes go first), else by `default`.

    A router's own handlers only see errors of routes it matched: a URL no
    route matches (404) or a method a route lacks (405) comes here, and an
    admin client must still get the admin API's JSON, a browser the admin
    site's page (docs/operations.md, "Errors").
    """

    def choose(path: str) -> Handlers:
        for prefix, handlers in areas:
            if path == prefix or path.startswith(prefix + "/"):
                return handlers
        return default

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        handlers = choose(request.scope["path"])
        for kind in type(exc).__mro__:
            if kind in handlers:
                answer: Response[Any] = handlers[kind](request, exc)
                return answer
        return handle_unexpected(request, exc)

    return {Exception: handle}


EXCEPTION_HANDLERS: Handlers = {
    ScimError: handle_scim_error,
    HTTPException: handle_http_exception,
    RedisError: handle_redis_error,
    Exception: handle_unexpected,
}
