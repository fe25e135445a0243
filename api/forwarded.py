"""`X-Forwarded-Proto` and `X-Forwarded-Host` from trusted proxies.

When `BRIDGE_PUBLIC_URL` is unset, SCIM URLs and `meta.location` would
name the guessed `http://127.0.0.1:<port>`. Behind a reverse proxy listed
in `BRIDGE_TRUSTED_PROXIES` (addresses or networks), the bridge builds them
from the proxy's `X-Forwarded-Proto` and `X-Forwarded-Host` instead
(docs/operations.md, "Behind a proxy"). Headers from any other peer are
ignored: a client must not choose the URLs the bridge hands out. A set
`BRIDGE_PUBLIC_URL` always wins.

The base is put in a context variable for the request (`core.settings.
request_public_url`), which `Settings.scim_url` reads.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from core.settings import Settings, parse_proxies, request_public_url

__all__ = ["ForwardedBase", "forwarded_base"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: A host name or IP literal with an optional port: nothing that could
#: carry a path, a user or a second URL into the links the bridge hands out.
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9-]{1,63}(?::\d{1,5})?"
    r"|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?"
)


def _first(value: str) -> str:
    """The first of a comma-separated header: the proxy nearest the client
    wrote it, later proxies appended."""
    return value.split(",", 1)[0].strip()


def forwarded_base(
    client: str | None, headers: dict[str, str], proxies: Sequence[Network]
) -> str | None:
    """The public base URL the proxy says the client used, or None to keep
    the configured one (untrusted peer, no or malformed headers)."""
    if client is None or not proxies:
        return None
    try:
        peer = ipaddress.ip_address(client)
    except ValueError:
        return None
    if not any(peer in network for network in proxies):
        return None
    proto = _first(headers.get("x-forwarded-proto", "")).lower()
    host = _first(headers.get("x-forwarded-host", "")) or headers.get("host", "")
    if not headers.get("x-forwarded-proto") and not headers.get("x-forwarded-host"):
        return None
    if proto not in ("http", "https") or _HOST.fullmatch(host) is None:
        return None
    return f"{proto}://{host.lower()}"


class ForwardedBase:
    """ASGI wrapper: the request's public base, when a trusted proxy gives it."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.proxies = () if settings.public_url_set else parse_proxies(settings.trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.proxies or scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers", ())
            if k in (b"x-forwarded-proto", b"x-forwarded-host", b"host")
        }
        base = forwarded_base(client[0] if client else None, headers, self.proxies)
        token = request_public_url.set(base)
        try:
            await self.app(scope, receive, send)
        finally:
            request_public_url.reset(token)
