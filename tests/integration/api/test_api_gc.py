"""The API process tunes Python's cycle collector before it serves
(cli.processes.tune_gc_for_serving). Checked in fresh interpreters: the
collector's state is process-wide, and the test process's own must not change."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cli.processes import GC_YOUNG_THRESHOLD
from tests.support.redis_server import RedisServer

# Replaces uvicorn.Server.run, so run_api stops where it would start serving
# and reports the collector's state at that moment.
PROBE = """
import gc, json, sys
import uvicorn
def serve(server, sockets=None):
    print(json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                      "app": type(server.config.app).__name__}))
uvicorn.Server.run = serve
from cli.processes import run_api
from core.settings import load_settings
before = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
print(json.dumps(before))
run_api(load_settings())
"""


@pytest.mark.processes
def test_run_api_freezes_start_up_objects_and_raises_the_young_threshold(
    redis_server: RedisServer,
) -> None:
    env = {**os.environ, "REDIS_URL": redis_server.url, "LOG_LEVEL": "ERROR"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    before, serving = (json.loads(line) for line in out.stdout.splitlines())
    assert before["threshold"][0] == 700  # Python's defaults
    assert before["frozen"] == 0
    assert serving["app"] == "Litestar"
    assert serving["threshold"] == [GC_YOUNG_THRESHOLD, *before["threshold"][1:]]
    # The loaded modules, the app and its routes: tens of thousands of objects.
    assert serving["frozen"] > 20_000
