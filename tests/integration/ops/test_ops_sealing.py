"""Processes that store or use LMS keys refuse to run without a sealing key
(core/sealing.py), with one line saying how to make one; the re-seal
command moves every tenant to the newest key."""

from __future__ import annotations

import json
import os

import pytest
from redis.asyncio import Redis

from tests.support.cli import Run


@pytest.mark.parametrize(
    "args",
    [
        ("api",),
        ("worker",),
        ("tenant", "create", "acme", "--name", "A", "--lms-url", "https://lms.example.com/org/a",
         "--lms-api-key", "k"),
    ],
)  # fmt: skip
def test_without_a_sealing_key_it_refuses_in_one_line(run_cli: Run, args: tuple[str, ...]) -> None:
    done = run_cli(*args, BRIDGE_SECRET_KEY="", timeout=30)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("scim-bridge: BRIDGE_SECRET_KEY: expected a key of at least 32")


def test_a_short_sealing_key_is_refused_without_echoing_it(run_cli: Run) -> None:
    done = run_cli("tenant", "list", BRIDGE_SECRET_KEY="too-short-to-seal")
    assert done.returncode == 2
    assert "too-short-to-seal" not in done.stderr + done.stdout
    assert "BRIDGE_SECRET_KEY: key 1 has 17 characters" in done.stderr


def test_reseal_moves_every_tenant_to_the_newest_key(run_cli: Run, redis: Redis) -> None:
    made = run_cli(
        "tenant", "create", "acme", "--name", "Acme", "--lms-url",
        "https://lms.example.com/org/acme", "--lms-api-key", "sk-acme-1234567890", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made
    newest = "the-newest-sealing-key-0123456789-abcdef"
    both = f"{newest},{os.environ['BRIDGE_SECRET_KEY']}"
    done = run_cli("tenant", "reseal", "--json", BRIDGE_SECRET_KEY=both)
    assert done.returncode == 0, done
    assert json.loads(done.stdout) == {"resealed": 1}
    # Under the newest key alone, the old one gone, the key still opens.
    again = run_cli("tenant", "reseal", "--json", BRIDGE_SECRET_KEY=newest)
    assert again.returncode == 0, again
    # And a key nobody holds any more is a refusal, not a traceback.
    lost = run_cli("tenant", "reseal", "--json", BRIDGE_SECRET_KEY="x" * 40)
    assert lost.returncode == 1, lost
    assert "Traceback" not in lost.stderr
