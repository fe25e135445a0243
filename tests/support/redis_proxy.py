"""A loopback TCP proxy in front of Redis that kills a real process at a
chosen command: the crash-point tests' way to SIGKILL an API or worker
between two of its Redis steps without any hook in the product.

The process under test gets the proxy's URL as its `REDIS_URL`. The proxy
reads the RESP commands the process sends (hiredis parses them as it parses
replies) and forwards them one by one. `arm(match, when, kill)` picks the
next command that `match` accepts:

- `when="before"`: that command is never sent; `kill` runs (the process is
  dead before the step);
- `when="after"`: the command is sent, and once Redis has answered it (so
  it is applied) `kill` runs before the answer reaches the process. An
  error answer (say NOSCRIPT, after which redis-py loads the script and
  calls again) applied nothing, so the proxy waits for the next match.

Either way both sockets close, as the kernel closes a killed process's.

The proxy runs on an event loop of its own, in a thread: the test's loop
blocks while it waits for processes to stop, and they must reach Redis
meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import hiredis

Command = list[bytes]
When = Literal["before", "after"]


def evalsha_of(script: str) -> Callable[[Command], bool]:
    """Matches the Lua call of `script` (redis-py sends EVALSHA)."""
    sha = hashlib.sha1(script.encode()).hexdigest().encode()
    return lambda cmd: cmd[0].upper() == b"EVALSHA" and cmd[1].lower() == sha


@dataclass
class _Trap:
    match: Callable[[Command], bool]
    when: When
    kill: Callable[[], object]


class KillingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.fired = threading.Event()
        self._trap: _Trap | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> KillingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def arm(self, match: Callable[[Command], bool], when: When, kill: Callable[[], object]) -> None:
        self.fired.clear()
        self._trap = _Trap(match, when, kill)

    def _fire(self) -> None:
        trap, self._trap = self._trap, None
        if trap is not None:
            trap.kill()
            self.fired.set()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.close()
            return
        # Per connection: commands sent and replies seen so far, and which
        # command's reply ends the process.
        state = {"sent": 0, "seen": 0, "kill_at": -1}
        pumps = [
            asyncio.create_task(self._commands(client_r, up_w, client_w, state)),
            asyncio.create_task(self._replies(up_r, client_w, up_w, state)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for writer in (client_w, up_w):
                writer.close()
            self._tasks.discard(task)

    async def _commands(
        self,
        client_r: asyncio.StreamReader,
        up_w: asyncio.StreamWriter,
        client_w: asyncio.StreamWriter,
        state: dict[str, int],
    ) -> None:
        reader = hiredis.Reader()
        while data := await client_r.read(65536):
            reader.feed(data)
            while (cmd := reader.gets()) is not False:
                trap = self._trap
                if trap is not None and state["kill_at"] < 0 and trap.match(cmd):
                    if trap.when == "before":
                        self._fire()
                        return
                    state["kill_at"] = state["sent"]
                up_w.write(hiredis.pack_command(tuple(cmd)))
                state["sent"] += 1
            await up_w.drain()

    async def _replies(
        self,
        up_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        up_w: asyncio.StreamWriter,
        state: dict[str, int],
    ) -> None:
        reader = hiredis.Reader()
        while data := await up_r.read(65536):
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                if state["seen"] == state["kill_at"]:
                    if isinstance(reply, hiredis.ReplyError):
                        state["kill_at"] = -1  # applied nothing: wait for the next
                    else:
                        self._fire()
                        return
                state["seen"] += 1
            client_w.write(data)
            with contextlib.suppress(ConnectionError):
                await client_w.drain()
