"""Start and stop real redis-server processes for tests and benchmarks,
with the starter `scim-bridge up` uses for its embedded Redis."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cli.redis_server import free_port, redis_executable, start_redis_server, stop_process

__all__ = ["RedisServer", "free_port", "redis_executable", "start_redis"]


class RedisServer:
    def __init__(self, process: subprocess.Popen[bytes], port: int, workdir: Path) -> None:
        self.process = process
        self.port = port
        self.workdir = workdir

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.process)


def start_redis(workdir: Path, *, port: int | None = None, appendonly: bool = False) -> RedisServer:
    """A redis-server on a free loopback port, its files under `workdir`."""
    port = port or free_port()
    process = start_redis_server(
        workdir, port, appendonly=appendonly, fsync_always=True, timeout=10
    )
    return RedisServer(process, port, workdir)
