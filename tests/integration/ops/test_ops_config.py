"""A bad environment value is refused at start: one line naming the variable
and what it expects, exit status 2, no traceback; never a secret echoed."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.cli import ROOT, Run, bridge_env
from tests.support.redis_server import free_port

SHORT_TOKEN = "too-short-a-token"

BAD = [
    ("api", {"BRIDGE_ADMIN_TOKEN": SHORT_TOKEN}, "BRIDGE_ADMIN_TOKEN: expected at least 32"),
    ("api", {"BRIDGE_METRICS_TOKEN": "x"}, "BRIDGE_METRICS_TOKEN: expected at least 32"),
    ("api", {"PORT": "99999"}, "PORT='99999': expected a TCP port, 1 to 65535"),
    ("api", {"PORT": "abc"}, "PORT='abc': expected a TCP port"),
    (
        "api",
        {"BRIDGE_PUBLIC_URL": "bridge.example.com"},
        "BRIDGE_PUBLIC_URL='bridge.example.com': expected an absolute http(s) URL",
    ),
    (
        "api",
        {"REDIS_URL": "http://127.0.0.1:6379/0"},
        "REDIS_URL='http://127.0.0.1:6379/0': expected redis://",
    ),
    (
        "api",
        {"REDIS_URL": "redis://127.0.0.1:99999/0"},
        "REDIS_URL='redis://127.0.0.1:99999/0': the port must be 1 to 65535",
    ),
    ("api", {"REDIS_URL": "redis://:hunter2@127.0.0.1:abc/0"}, "the port must be 1 to 65535"),
    ("api", {"LOG_LEVEL": "verbose"}, "LOG_LEVEL='verbose': expected one of DEBUG, INFO"),
    ("api", {"API_DRAIN_SECONDS": "-1"}, "API_DRAIN_SECONDS='-1': expected a number >= 0"),
    ("worker", {"WORKER_MAX_JOBS": "0"}, "WORKER_MAX_JOBS='0': expected a whole number >= 1"),
    ("worker", {"WORKER_POLL_DELAY": "soon"}, "WORKER_POLL_DELAY='soon': expected a number"),
    (
        "status",
        {"QUEUE_REDIS_URL": "mysql://db/0"},
        "QUEUE_REDIS_URL='mysql://db/0': expected redis://",
    ),
]


@pytest.mark.parametrize(
    ("command", "env", "message"), BAD, ids=[next(iter(env)) + "-" + cmd for cmd, env, _ in BAD]
)
def test_a_bad_environment_value_is_one_line_naming_the_variable(
    run_cli: Run, command: str, env: dict[str, str], message: str
) -> None:
    args = [command, "acme"] if command == "status" else [command]
    done = run_cli(*args, **env)
    assert done.returncode == 2, done
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("scim-bridge: ")
    assert message in line
    assert "Traceback" not in done.stderr
    assert SHORT_TOKEN not in line
    assert "hunter2" not in line


def test_worker_check_refuses_a_worker_that_could_run_nothing(run_cli: Run) -> None:
    done = run_cli("worker", "--check", WORKER_MAX_JOBS="0")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "scim-bridge: WORKER_MAX_JOBS='0': expected a whole number >= 1"
    ]


@pytest.mark.parametrize("command", ["api", "worker"])
def test_a_process_whose_redis_does_not_answer_exits_with_one_line(
    run_cli: Run, command: str
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = run_cli(command, REDIS_URL=url)
    assert done.returncode == 1, done
    lines = [x for x in done.stderr.splitlines() if not x.startswith("{")]  # JSON log lines
    assert lines == [lines[0]], done.stderr
    assert lines[0].startswith(f"scim-bridge: cannot reach Redis at REDIS_URL={url}: ")
    assert "Traceback" not in done.stderr


def test_a_cli_command_whose_redis_does_not_answer_exits_with_one_line(run_cli: Run) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = run_cli("status", "acme", REDIS_URL=url)
    assert done.returncode == 1, done
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"scim-bridge: cannot reach Redis at REDIS_URL={url}: ")


def test_a_mapping_file_that_does_not_exist_is_one_line(run_cli: Run) -> None:
    done = run_cli("mapping", "set", "acme", "/nonexistent/mapping.toml")
    assert done.returncode == 2, done
    (line,) = done.stderr.splitlines()
    assert line == "scim-bridge: /nonexistent/mapping.toml: No such file or directory"


@pytest.mark.processes
@pytest.mark.parametrize("public_url", ["", "https://bridge.example.com"])
def test_an_api_on_a_public_address_warns_when_its_public_url_is_a_guess(
    redis_url: str, public_url: str
) -> None:
    port = free_port()
    env = bridge_env(REDIS_URL=redis_url, HOST="0.0.0.0", PORT=str(port))
    if public_url:
        env["BRIDGE_PUBLIC_URL"] = public_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "api"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            assert proc.poll() is None, "the API exited"
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.1)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=20)
    warned = [line for line in stderr.splitlines() if "BRIDGE_PUBLIC_URL is not set" in line]
    assert len(warned) == (0 if public_url else 1), stderr
    if warned:
        assert f"meta.location will name http://127.0.0.1:{port}" in warned[0]
