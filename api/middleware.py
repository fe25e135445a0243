"""Request id, access log and SCIM request metrics: one cheap ASGI wrapper.

Every HTTP request gets an id: the caller's `X-Request-Id` when it is a
sane token (at most 128 of `A-Z a-z 0-9 . _ : -`), else a fresh random one.
It is echoed in the response's `X-Request-Id`, bound to the task's log
context (`core.logs`) so every line logged while serving names it, and put
in the access log line: method, route template, status, duration, tenant
and the resource id from the path (when it is one the bridge made). Never
the raw path or query string (a filter holds a userName), never a header
(the bearer token).

It wraps the app's whole ASGI handler rather than sitting in Litestar's
`middleware` list, which runs only for requests that matched a route: so
404s and 405s get an id and a log line too. The router has put the route's
template into the scope by the time the response is sent.

The work per request is a header scan, two clock reads, a context-variable
set and reset, a few dict lookups and two metric adds; the log line is
built only when its level is enabled. No Redis, no formatting on the hot
path.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Mapping
from time import perf_counter
from typing import Any

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from api.metrics import RequestMetrics
from core.logs import bind_log_context, reset_log_context
from shadow.tenants import SLUG_RE

__all__ = [
    "REQUEST_ID_HEADER",
    "RequestObserver",
    "observe_requests",
    "route_label",
    "route_of",
]

REQUEST_ID_HEADER = "x-request-id"
_HEADER = REQUEST_ID_HEADER.encode()
_VALID_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
# Ids the bridge hands out are UUIDs; anything else in that place of a path
# (a client's mistake: an email, a name) is not logged.
_BRIDGE_ID = re.compile(r"[0-9a-fA-F-]{8,64}")
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
# Handler parameter names -> the names ops read in route labels.
_PARAM_LABELS = {"tenant_slug": "tenant", "rid": "id"}
# Probes and scrapes: logged at DEBUG so they do not drown the access log.
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})
UNMATCHED = "unmatched"

access_log = logging.getLogger("scim_bridge.access")


def route_label(template: str) -> str:
    """`/scim/{tenant_slug}/v2/Users/{rid}` -> `/scim/{tenant}/v2/Users/{id}`."""
    return _PARAM.sub(lambda m: "{" + _PARAM_LABELS.get(m[1], m[1]) + "}", template)


def route_of(scope: Mapping[str, Any]) -> str:
    """The route template of a request, for error logs: never the raw path,
    which holds ids, slugs and whatever a client typed."""
    template = scope.get("path_template")
    return route_label(template) if isinstance(template, str) else UNMATCHED


#: Generated ids: a random prefix per process and a counter, unique across
#: processes and restarts without a getrandom call on every request.
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(1)


def _request_id(scope: HTTPScope) -> str:
    for name, value in scope["headers"]:
        if name == _HEADER:
            if _VALID_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


class RequestObserver:
    """The ASGI wrapper; `observe_requests(app)` installs it."""

    __slots__ = ("_routes", "app", "metrics")

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._routes: dict[str, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        id_header = (_HEADER, request_id.encode("ascii"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        token = bind_log_context(request_id=request_id)
        started = perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = perf_counter() - started
            reset_log_context(token)
            self._record(scope, request_id, status, elapsed)

    def _record(self, scope: HTTPScope, request_id: str, status: int, elapsed: float) -> None:
        template: str | None = scope.get("path_template")
        if template is None:
            route = UNMATCHED
            scim = scope["path"].startswith("/scim/")
        else:
            route = self._routes.get(template) or self._routes.setdefault(
                template, route_label(template)
            )
            scim = route.startswith("/scim/")
        method: str = scope["method"]
        if scim:
            self.metrics.observe(route, method, status, elapsed)
        level = logging.DEBUG if route in _QUIET else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        extra: dict[str, Any] = {
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
        }
        tenant = _tenant(scope)
        if tenant:
            extra["tenant"] = tenant
        rid = scope.get("path_params", {}).get("rid")
        if isinstance(rid, str) and _BRIDGE_ID.fullmatch(rid):
            extra["group_id" if "/Groups/" in route else "user_id"] = rid
        access_log.log(level, "%s %s %d", method, route, status, extra=extra)


def _tenant(scope: HTTPScope) -> str | None:
    """The authenticated tenant (`api.auth`), else a well-formed slug from the path."""
    state = scope.get("state") or {}
    tenant = state.get("tenant")
    if isinstance(tenant, str):
        return tenant
    slug = scope.get("path_params", {}).get("tenant_slug")
    return slug if isinstance(slug, str) and SLUG_RE.match(slug) else None


def observe_requests(app: Litestar) -> RequestMetrics:
    """Wrap `app` in a `RequestObserver`; its `RequestMetrics` (also kept in
    `app.state.request_metrics`, where `/metrics` reads it)."""
    metrics = RequestMetrics()
    app.state.request_metrics = metrics
    app.asgi_handler = RequestObserver(app.asgi_handler, metrics)
    return metrics
