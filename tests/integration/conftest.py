"""Fixtures of the integration tests that span directories: the real
`scim-bridge` command in a subprocess, against the test Redis."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.cli import ROOT, Run, bridge_env


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Environment every `run_cli` call adds (a directory's conftest may set some)."""
    return {}


@pytest.fixture
def run_cli(redis_url: str, cli_env: dict[str, str]) -> Run:
    """`run_cli(*args, input=None, timeout=60, **env)`: `scim-bridge args...`
    in its own process against the test Redis; its completed process."""

    def run(
        *args: str, input: str | None = None, timeout: float = 60, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli", *args],
            cwd=ROOT,
            env=bridge_env(**{"REDIS_URL": redis_url, **cli_env, **env}),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )

    return run
