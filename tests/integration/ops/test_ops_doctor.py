"""`scim-bridge doctor` against a real Redis, a real worker and the sandbox
LMS (each its own process): every check passes on a sound deployment (exit
0), and each problem is named with its fix (exit 1)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from core.connect import connect
from shadow import Tenant, TenantStore
from tests.support.cli import ROOT, Run, bridge_env
from tests.support.redis_server import RedisServer, free_port, start_redis
from worker.health import HEALTH_KEY


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis(tmp_path, appendonly=True)
    try:
        yield server
    finally:
        server.stop()


def spawn(*args: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=bridge_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(check: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except (httpx.TransportError, redis.RedisError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def sandbox() -> Iterator[str]:
    port = free_port()
    proc = spawn("sandbox", SANDBOX_PORT=str(port), SANDBOX_AUTO_ORGS="1")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/_sandbox/stats").status_code == 200, "the sandbox")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def worker(aof_redis: RedisServer) -> Iterator[None]:
    proc = spawn("worker", REDIS_URL=aof_redis.url)
    client = redis.Redis(port=aof_redis.port)
    try:
        wait_for(lambda: client.exists(HEALTH_KEY), "a worker")
        yield
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


async def add(url: str, slug: str, lms_url: str, key: str) -> None:
    client = connect(url)
    try:
        await TenantStore(client).create(
            Tenant(slug=slug, name=slug, lms_url=lms_url, lms_api_key=key)
        )
    finally:
        await client.aclose()


@pytest.mark.usefixtures("worker")
async def test_doctor_passes_on_a_sound_deployment(
    run_cli: Run, aof_redis: RedisServer, sandbox: str
) -> None:
    await add(aof_redis.url, "acme", f"{sandbox}/org/acme", "sandbox-key-acme")
    done = run_cli("doctor", "--json", REDIS_URL=aof_redis.url)
    report = json.loads(done.stdout)
    assert done.returncode == 0, report
    assert report["ok"] is True
    names = [c["name"] for c in report["checks"]]
    assert names == ["python", "redis", "redis-aof", "redis-maxmemory-policy", "worker", "lms:acme"]
    assert all(c["ok"] and not c["fix"] for c in report["checks"]), report

    human = run_cli("doctor", REDIS_URL=aof_redis.url)
    assert human.returncode == 0, human
    assert human.stdout.splitlines()[-1] == "all 6 checks passed"


async def test_doctor_names_each_problem_with_its_fix(
    run_cli: Run, redis_server: RedisServer, sandbox: str
) -> None:
    # The session's test Redis runs without AOF; no worker runs against it.
    client = redis.Redis(port=redis_server.port)
    client.flushall()
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        await add(redis_server.url, "good", f"{sandbox}/org/good", "sandbox-key-good")
        # An organisation whose key was rotated in the LMS: the tenant's is refused.
        rotated = {"org": "rotated", "api_key": "the-new-key"}
        async with httpx.AsyncClient() as http:
            created = await http.post(f"{sandbox}/_sandbox/orgs", json=rotated)
        assert created.status_code == 201
        await add(redis_server.url, "badkey", f"{sandbox}/org/rotated", "not-the-key")
        await add(redis_server.url, "gone", f"http://127.0.0.1:{free_port()}/org/gone", "k")
        done = run_cli("doctor", "--json", REDIS_URL=redis_server.url)
        human = run_cli("doctor", REDIS_URL=redis_server.url)
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        client.flushall()
        client.close()
    assert done.returncode == 1, done
    report = json.loads(done.stdout)
    assert report["ok"] is False
    results = {c["name"]: c for c in report["checks"]}
    failed = {name for name, c in results.items() if not c["ok"]}
    assert failed == {"redis-aof", "redis-maxmemory-policy", "worker", "lms:badkey", "lms:gone"}
    assert "appendonly yes" in results["redis-aof"]["fix"]
    assert "noeviction" in results["redis-maxmemory-policy"]["fix"]
    assert "scim-bridge worker" in results["worker"]["fix"]
    assert "tenant update badkey --lms-api-key" in results["lms:badkey"]["fix"]
    assert "tenant update gone --lms-url" in results["lms:gone"]["fix"]
    assert "not-the-key" not in done.stdout + human.stdout + human.stderr

    assert human.returncode == 1
    lines = human.stdout.splitlines()
    assert lines[-1] == "5 of 8 checks failed"
    assert sum(line.startswith("[FAIL]") for line in lines) == 5
    assert sum("fix: " in line for line in lines) == 5
    assert human.stderr == ""


def test_doctor_without_redis_says_so_and_fails(run_cli: Run) -> None:
    done = run_cli("doctor", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 1, done
    assert "[FAIL] redis" in done.stdout
    assert "fix: start Redis, or set REDIS_URL" in done.stdout
    assert "Traceback" not in done.stderr
