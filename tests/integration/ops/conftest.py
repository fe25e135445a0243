"""Running the real `scim-bridge` command in a subprocess, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

Run = Callable[..., subprocess.CompletedProcess[str]]


def bridge_env(**extra: str) -> dict[str, str]:
    """The environment without any of the bridge's own settings (but the
    sealing key every deployment has), plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WORKER_", "SANDBOX_", "BRIDGE_", "API_"))
        and k not in ("REDIS_URL", "QUEUE_REDIS_URL", "PORT", "HOST", "LOG_LEVEL")
    }
    env.update(PYTHONDONTWRITEBYTECODE="1", BRIDGE_SECRET_KEY=os.environ["BRIDGE_SECRET_KEY"])
    env.update(extra)
    return env


@pytest.fixture
def run_cli(redis_url: str) -> Run:
    """`run_cli(*args, **env)`: `scim-bridge args...` against the test Redis."""

    def run(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli", *args],
            cwd=ROOT,
            env=bridge_env(**{"REDIS_URL": redis_url, **env}),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
