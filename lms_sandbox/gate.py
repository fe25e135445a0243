"""The gate in front of the LMS API: latency, outages, faults, org, auth, rate limit, drops.

Order, from the outside in, as a real deployment would have it:

1. latency: every answer, good or bad, is late (an `await asyncio.sleep`);
2. outage: the maintenance proxy answers 503 with Retry-After to everything;
3. random fault: the proxy answers 502/504 (empty or HTML) or 503;
4. unknown organisation: 404 (nothing to authenticate against);
5. auth: 401 unless `Authorization: Token <the org's key>`;
6. rate limit: 429 with Retry-After. Counted per *authenticated* API key,
   before any other processing: a request that fails auth has no key to
   charge, and a request that will fail validation still costs a token, as
   on most real APIs;
7. the route handler; for a write (POST or PATCH) that it applied (2xx),
   `drop_after_write_rate` of the time the status line and headers go out
   and then the connection is closed with no body, so the caller sees a
   transport error although the write happened.

Proxy-level failures (2, 3) cost no rate-limit token: they never reached
the LMS. Litestar's own 404/405 for unknown paths and methods (DELETE)
answer before the gate runs.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import re
from collections.abc import Callable
from typing import NamedTuple, cast

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from .state import Sandbox
from .stats import DROPPED

__all__ = ["ConnectionDropped", "Gate", "quiet_dropped_connections", "route_label"]

WRITE_METHODS = frozenset({"POST", "PATCH"})

_HTML_PAGES = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


class ConnectionDropped(Exception):
    """Raised after the response started, so uvicorn closes the connection without a body."""


class _Answer(NamedTuple):
    status: int
    body: bytes = b""
    content_type: bytes | None = None
    retry_after: int | None = None

    async def send(self, send: Send) -> None:
        headers = [(b"content-length", str(len(self.body)).encode())]
        if self.content_type is not None:
            headers.append((b"content-type", self.content_type))
        if self.retry_after is not None:
            headers.append((b"retry-after", str(self.retry_after).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


_JSON = b"application/json"
_NOT_FOUND = _Answer(404, b'{"error":"not_found"}', _JSON)
_UNAUTHORIZED = _Answer(401, b'{"error":"unauthorized"}', _JSON)


def _html_page(status: int) -> bytes:
    title = f"{status} {_HTML_PAGES[status]}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


def _api_key(scope: HTTPScope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            return key if scheme == "Token" and key else None
    return None


_ORG_PREFIX = re.compile(r"^/org/\{org(?::str)?\}")
_LEARNER_ID = re.compile(r"\{learner_id(?::int)?\}")


@functools.lru_cache(maxsize=64)
def route_label(method: str, path_template: str) -> str:
    """`POST /org/{org}/api/v1/learners/{learner_id}/deactivate` ->
    `POST /api/v1/learners/{id}/deactivate`: the spelling of docs/lms-contract.md."""
    path = _LEARNER_ID.sub("{id}", _ORG_PREFIX.sub("", path_template))
    return f"{method} {path}"


class Gate(ASGIMiddleware):
    """Litestar middleware on the LMS router: every LMS request passes here first."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        http = cast("HTTPScope", scope)
        sandbox = self._sandbox
        org_name: str = http["path_params"]["org"]
        method = http["method"]
        route = route_label(method, str(scope.get("path_template", http["path"])))

        def record(status: int | str) -> None:
            sandbox.stats.record(org_name, route, status)

        delay = sandbox.chaos.latency(sandbox.knobs)
        if delay > 0:
            await asyncio.sleep(delay)

        refusal = self._refuse(http, org_name)
        if refusal is not None:
            record(refusal.status)
            await refusal.send(send)
            return
        drop = method in WRITE_METHODS and sandbox.chaos.drop(sandbox.knobs)
        await next_app(scope, receive, _watch(send, record, drop=drop))

    def _refuse(self, scope: HTTPScope, org_name: str) -> _Answer | None:
        """Steps 2 to 6 of the module docstring: the answer that stops this request, if any."""
        sandbox = self._sandbox
        knobs = sandbox.knobs
        if (retry_after := sandbox.chaos.outage_retry_after(knobs)) is not None:
            return _Answer(503, _html_page(503), b"text/html", retry_after)
        if (fault := sandbox.chaos.fault(knobs)) is not None:
            body = _html_page(fault.status) if fault.html else b""
            content_type = b"text/html" if fault.html else None
            return _Answer(fault.status, body, content_type, 1 if fault.status == 503 else None)
        api_key = _api_key(scope)
        org = sandbox.org_for(org_name, api_key)
        if org is None:
            return _NOT_FOUND
        if api_key is None or not hmac.compare_digest(api_key.encode(), org.api_key.encode()):
            return _UNAUTHORIZED
        wait = sandbox.limiter.take(api_key, knobs.rate, knobs.burst)
        if wait is not None:
            return _Answer(429, b'{"error":"rate_limited"}', _JSON, wait)
        return None


def _watch(send: Send, record: Callable[[int | str], None], *, drop: bool) -> Send:
    """Wrap `send` to count the answer's status and, for a doomed write, drop the connection.

    The dropped answer's status line and headers (with its Content-Length)
    are sent, then ConnectionDropped is raised instead of the body; Litestar
    re-raises errors after a response started and uvicorn then closes the
    transport, so the caller's HTTP client reports an incomplete message.
    """
    held: Message | None = None

    async def watched(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start":
            status = message["status"]
            if drop and 200 <= status < 300:
                held = message
                return
            record(status)
        elif held is not None:
            record(DROPPED)
            await send(held)
            raise ConnectionDropped("connection dropped after the write was applied")
        await send(message)

    return watched


class _HideDroppedConnections(logging.Filter):
    """Drops uvicorn's "Exception in ASGI application" records caused by ConnectionDropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc: BaseException | None = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, ConnectionDropped):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


def quiet_dropped_connections() -> None:
    """Keep deliberate drops out of uvicorn's error log (idempotent; run at app start-up)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDroppedConnections) for f in logger.filters):
        logger.addFilter(_HideDroppedConnections())
