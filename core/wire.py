"""Two costs of redis-py's asyncio connections, cut where they are paid.

- **Packing.** redis-py 5's asyncio connection packs each command in Python,
  one argument at a time (~0.8 µs an argument); its sync connection already
  uses `hiredis.pack_command` when hiredis is installed. A shadow write is a
  Lua call of some thirty arguments, so packing it cost ~25 µs of each SCIM
  write; hiredis packs the same bytes in ~3 µs. Values are refused as
  redis-py refuses them (`DataError` for None, booleans and other types).
- **The idle check.** Before lending a pooled connection, the pool asks it
  whether unread data is waiting (a reply left over from an interrupted
  command, or the server's close). With hiredis, redis-py answers by reading
  the socket under a zero timeout: a timer, a cancelled read and an
  exception, one more event-loop turn, all while holding the pool's lock,
  for every command. The event loop has already read whatever the socket
  held into the connection's stream, so the same question is answered from
  there: buffered bytes, an end of stream, an error or a closing transport
  all mean "not clean", and the pool reconnects exactly as before. (Its
  pure-Python parser checks its buffers the same way, without a read.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hiredis
from redis._parsers.hiredis import _AsyncHiredisParser
from redis.exceptions import ConnectionError, DataError

__all__ = ["HiredisPacking", "IdleCheckFromBuffers", "with_fast_wire"]


class HiredisPacking:
    """Mixin for a redis-py asyncio `Connection` class (first in the bases)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        # As redis-py does: a command name with spaces ("CONFIG GET") is
        # several arguments.
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:
            raise DataError(f"Invalid input for a Redis command: {exc}") from None


class IdleCheckFromBuffers:
    """Mixin for a redis-py asyncio `Connection` class: `can_read_destructive`
    (the pool's check of an idle connection) without reading the socket."""

    _reader: Any
    _writer: Any
    _parser: Any
    _socket_is_empty: Callable[[], bool]

    async def can_read_destructive(self) -> bool:
        parser, stream, writer = self._parser, self._reader, self._writer
        if not isinstance(parser, _AsyncHiredisParser):
            return bool(await super().can_read_destructive())  # type: ignore[misc]
        replies = parser._reader  # hiredis's reader: bytes fed, not yet parsed
        if stream is None or writer is None or replies is None:
            raise ConnectionError("Connection closed by server.")
        return bool(
            not self._socket_is_empty()  # the event loop read bytes no command asked for
            or replies.has_data()
            or stream.at_eof()
            or stream.exception() is not None
            or writer.is_closing()
        )


_made: dict[type, type] = {}


def with_fast_wire(connection_class: type) -> type:
    """`connection_class` with both mixins (one class per base)."""
    if issubclass(connection_class, HiredisPacking):
        return connection_class
    made = _made.get(connection_class)
    if made is None:
        made = type(
            f"Fast{connection_class.__name__}",
            (HiredisPacking, IdleCheckFromBuffers, connection_class),
            {},
        )
        _made[connection_class] = made
    return made
