"""`scim-bridge api --processes N`: N API processes on one listener.

One Python process serves on one core; the API's work (SCIM parsing, JSON,
Redis round trips) is CPU-bound under load. The parent binds the port once
and starts N `scim-bridge api` children that inherit the listening socket
(`--listen-fd`): the kernel hands each connection to whichever child
accepts first, so every core serves and there is one address to balance
to. The children are the usual API processes (stateless: docs/architecture.md,
"Scale past one machine"), each with its own credential cache. A scrape
reaches one of them; they share their SCIM request series through Redis
(api/metrics.py `share_requests`), so whichever answers reports the whole
port's (docs/operations.md, "Sizing").

The parent only supervises: a SIGTERM or SIGINT goes to every child (each
drains as one API process does: cli/processes.py `DrainingServer`) and the
parent exits when they have; a child that dies otherwise is started again
(at most once a second), as a process manager would.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

__all__ = ["parse_processes", "run_api_group"]

logger = logging.getLogger("scim_bridge")

#: Connections waiting to be accepted, shared by the children.
BACKLOG = 2048
#: A child that dies is started again no sooner than this after its start.
RESPAWN_DELAY_S = 1.0


def parse_processes(text: str) -> int:
    """`auto` (one per core) or a whole number of API processes, 1 to 256."""
    if text.strip().lower() == "auto":
        return max(1, os.cpu_count() or 1)
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected 'auto' or a number of processes, not {text!r}") from None
    if not 1 <= value <= 256:
        raise ValueError(f"expected 1 to 256 processes, not {value}")
    return value


def listen(host: str, port: int) -> socket.socket:
    """The one listening socket, inheritable by the children."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
    sock.set_inheritable(True)
    return sock


def run_api_group(host: str, port: int, processes: int) -> int:
    """Start `processes` API children on one socket and supervise them until
    a signal; the exit code."""
    sock = listen(host, port)
    fd = sock.fileno()
    command = [sys.executable, "-m", "cli", "api", "--listen-fd", str(fd)]
    group = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    stopping = False

    def start(index: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*command, "--group", f"{group}/{index}"], pass_fds=(fd,))

    children = [start(i) for i in range(processes)]
    started = [time.monotonic()] * processes

    def stop(sig: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(sig)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("API: %d processes on %s:%d", processes, host, port)
    try:
        while not stopping:
            for i, child in enumerate(children):
                code = child.poll()
                if code is None or stopping:
                    continue
                logger.warning("API process %d exited with %s; starting it again", child.pid, code)
                time.sleep(max(0.0, started[i] + RESPAWN_DELAY_S - time.monotonic()))
                if not stopping:
                    children[i], started[i] = start(i), time.monotonic()
            time.sleep(0.2)
        codes = [child.wait() for child in children]
    finally:
        sock.close()
    return max((c for c in codes if c > 0), default=0)
