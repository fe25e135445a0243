"""The API listener's own limits: connections, header time and size, keep-alive.

uvicorn caps requests and connections (`limit_concurrency`: past it a 503)
and closes an idle keep-alive connection (`timeout_keep_alive`), but it
gives a client as long as it likes to send its request line and headers,
and buffers all of them: a few hundred clients trickling a header byte now
and then would hold connections (and the cap) for ever. `guarded_protocol`
adds what is missing: the request line and headers must arrive within
`API_HEADER_TIMEOUT_SECONDS` of the connection or the request starting, and
be at most `API_MAX_HEADER_BYTES`, else the connection is closed
(docs/operations.md, "HTTP listener").
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.settings import Settings

__all__ = ["guarded_protocol", "server_config"]

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)


def guarded_protocol(header_timeout_s: float, max_header_bytes: int) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a deadline and a size cap on headers."""

    class GuardedHttpProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _awaiting_headers = True
        _header_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._start_header_clock()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_header_clock()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._awaiting_headers and not self.transport.is_closing():
                # Still no complete header block: all of `data` was headers.
                self._header_bytes += len(data)
                if self._header_bytes > max_header_bytes:
                    self._stop_header_clock()
                    self.transport.write(_TOO_LARGE)
                    self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._header_bytes = 0
            if self._header_timer is None:
                self._start_header_clock()

        def on_headers_complete(self) -> None:
            self._stop_header_clock()
            super().on_headers_complete()

        def _start_header_clock(self) -> None:
            self._awaiting_headers = True
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _stop_header_clock(self) -> None:
            self._awaiting_headers = False
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedHttpProtocol


def server_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """The uvicorn config of the API listener, with the limits of `settings`."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(settings.api_header_timeout_s, settings.api_max_header_bytes),
        limit_concurrency=settings.api_max_connections,
        timeout_keep_alive=settings.api_keep_alive_s,
        h11_max_incomplete_event_size=settings.api_max_header_bytes,
        log_level="warning",
        access_log=False,
        lifespan="on",
        **options,
    )
