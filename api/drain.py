"""A refused request's body is read, up to a bound, before the answer goes out.

A client such as httpx writes the whole request body before it reads the
response. When the bridge answers without reading the body (a 413 on the
declared length, a 401 before any body is read) and the connection then
closes (the client or a proxy sent `Connection: close`), the kernel meets
the unread bytes with a reset and the client reports a broken connection
instead of the SCIM error. So when a response starts while the request
still has body to come, up to `DRAIN_BYTES` of it is read and dropped
first, within `DRAIN_SECONDS`. A body past either bound gets its answer
with `Connection: close`: the bridge never reads an unbounded body.
"""

from __future__ import annotations

import asyncio

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, ReceiveMessage, Scope, Send

__all__ = ["DRAIN_BYTES", "DRAIN_SECONDS", "DrainUnreadBody"]

#: Eight times the largest body the API accepts (docs/scim.md, "Limits").
DRAIN_BYTES = 8 * 1_048_576
DRAIN_SECONDS = 10.0


def _has_body(scope: HTTPScope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
        if name == b"transfer-encoding":
            return True
    return False


async def _drain(receive: Receive) -> bool:
    """Read and drop the rest of the body; False when a bound stopped it."""
    read = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while read <= DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return True  # the client left: nothing to protect
                read += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        pass
    return False


class DrainUnreadBody:
    """ASGI wrapper (installed by `api.app.create_app`)."""

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        body_read = False

        async def tracked_receive() -> ReceiveMessage:
            nonlocal body_read
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read = True
            return message

        async def draining_send(message: Message) -> None:
            nonlocal body_read
            if message["type"] == "http.response.start" and not body_read:
                body_read = True
                if not await _drain(receive):
                    headers = [*message.get("headers", ()), (b"connection", b"close")]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, tracked_receive, draining_send)
