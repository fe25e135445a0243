"""`scim-bridge api --processes N`: N real API processes on one port,
supervised: all answer, one that dies is started again, SIGTERM stops all."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cli.process_group import parse_processes
from tests.support.cli import ROOT, bridge_env
from tests.support.redis_server import free_port


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(c) for c in text]
    return sorted(found)


def wait_for(check: object, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def healthy(port: int) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    return False


def test_processes_share_one_port_come_back_when_one_dies_and_stop_together(
    redis_url: str,
) -> None:
    port = free_port()
    env = bridge_env(REDIS_URL=redis_url, PORT=str(port), API_PROCESSES="2")
    group = subprocess.Popen([sys.executable, "-m", "cli", "api"], cwd=ROOT, env=env)
    try:
        wait_for(lambda: len(children_of(group.pid)) == 2, "two API processes")
        wait_for(lambda: healthy(port), "the API answers")
        for _ in range(50):  # new connections, whichever process accepts them
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200

        first, second = children_of(group.pid)
        os.kill(first, signal.SIGKILL)
        wait_for(
            lambda: first not in children_of(group.pid) and len(children_of(group.pid)) == 2,
            "the dead process replaced",
        )
        assert second in children_of(group.pid)
        wait_for(lambda: healthy(port), "the API answers")
        children = children_of(group.pid)

        group.send_signal(signal.SIGTERM)
        assert group.wait(timeout=60) == 0
        for pid in children:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
        assert not healthy(port)
    finally:
        if group.poll() is None:
            group.kill()
            group.wait()


@pytest.mark.parametrize(("text", "expected"), [("1", 1), ("3", 3), ("auto", os.cpu_count())])
def test_process_counts(text: str, expected: int) -> None:
    assert parse_processes(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "many", "257"])
def test_a_bad_process_count_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_processes(text)
