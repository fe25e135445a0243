"""The quick start (`scim-bridge up`, what ./scripts/dev runs) shows the admin
page: it prints the page's URL and a login secret it made for the run, and
that secret logs in."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.redis_server import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def quick_start(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str], int]]:
    """`scim-bridge up` on free ports (embedded Redis), until it prints its banner."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BRIDGE_", "SANDBOX_", "WORKER_"))
        and k not in ("REDIS_URL", "QUEUE_REDIS_URL", "PORT", "HOST")
    }
    env.update(
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        PORT=str(port),
        SANDBOX_PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "up"],
        cwd=tmp_path,  # the embedded Redis keeps its files under ./.run
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while not lines or lines[-1] != "Press Ctrl-C to stop.":
            line = proc.stdout.readline()
            assert line or proc.poll() is None, f"up exited: {lines}"
            assert time.monotonic() < deadline, f"no banner: {lines}"
            lines.append(line.rstrip("\n"))
        yield proc, lines, port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_up_prints_the_admin_page_and_a_secret_that_logs_in(
    quick_start: tuple[subprocess.Popen[str], list[str], int],
) -> None:
    _, lines, port = quick_start
    demo = json.loads(next(line for line in lines if line.startswith("{")))
    admin_url = f"http://127.0.0.1:{port}/admin/"
    assert demo["admin_url"] == admin_url
    secret = demo["admin_secret"]
    assert len(secret) >= 32
    assert f"  Admin    : {admin_url}" in lines
    assert any(line.startswith(f"  Log in   : {secret}") for line in lines)

    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        form = http.get("/admin/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None, form.text
        wrong = http.post("/admin/login", data={"secret": "x" * 40, "csrf_token": csrf[1]})
        assert wrong.status_code != 303
        form = http.get("/admin/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        login = http.post("/admin/login", data={"secret": secret, "csrf_token": csrf[1]})
        assert login.status_code in (302, 303), login.text
        page = http.get("/admin/")
        assert page.status_code == 200
        assert "demo" in page.text  # the quick start's tenant, on the operator's page
