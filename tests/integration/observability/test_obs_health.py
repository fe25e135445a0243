"""/healthz says the process lives; /readyz says Redis answers and turns 503
when it stops; `scim-bridge worker --check` reads arq's health key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis as sync_redis
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from cli.main import main
from core.settings import Settings
from tests.support.api import SCRAPE, api_settings
from tests.support.redis_server import free_port, start_redis
from worker.health import HEALTH_KEY, worker_health
from worker.settings import create_worker

# arq 0.28 closes its pool with redis-py 5's deprecated `close()`.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning:arq")


@pytest.mark.processes
async def test_readyz_turns_503_when_redis_stops_and_healthz_stays_200(tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    try:
        app = create_app(api_settings(server.url))
        async with AsyncTestClient(app=app, base_url="https://bridge.test") as http:
            ready = await http.get("/readyz")
            assert (ready.status_code, ready.json()) == (200, {"status": "ok", "redis": "up"})
            assert (await http.get("/healthz")).status_code == 200

            server.stop()

            down = await http.get("/readyz")
            assert down.status_code == 503
            assert down.json() == {"status": "unavailable", "redis": "down"}
            assert down.headers["x-request-id"]
            assert (await http.get("/healthz")).status_code == 200
            # The scrape still answers, with the process's own series.
            scrape = await http.get("/metrics", headers=SCRAPE)
            assert scrape.status_code == 200
            assert "scim_bridge_redis_up 0.0" in scrape.text
            assert "# TYPE scim_bridge_scim_requests_total counter" in scrape.text
    finally:
        server.stop()


@pytest.mark.processes
async def test_readyz_checks_the_queue_redis_when_it_has_its_own(
    redis_url: str, tmp_path: Path
) -> None:
    queue_server = start_redis(tmp_path)
    try:
        app = create_app(api_settings(redis_url, queue_redis_url=queue_server.url))
        async with AsyncTestClient(app=app, base_url="https://bridge.test") as http:
            assert (await http.get("/readyz")).status_code == 200
            queue_server.stop()
            assert (await http.get("/readyz")).status_code == 503
    finally:
        queue_server.stop()


async def test_worker_health_is_none_without_a_worker_or_a_redis(redis_url: str) -> None:
    client = sync_redis.Redis.from_url(redis_url)
    client.delete(HEALTH_KEY)
    client.close()
    assert await worker_health(Settings(redis_url=redis_url)) is None
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    assert await worker_health(Settings(redis_url=nowhere)) is None


async def test_worker_check_exits_1_without_a_live_worker_and_0_with_one(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = Redis.from_url(redis_url)
    await client.delete(HEALTH_KEY)
    monkeypatch.setenv("REDIS_URL", redis_url)

    def check() -> int:  # the CLI runs its own event loop
        return main(["worker", "--check"])

    assert await asyncio.to_thread(check) == 1
    assert "no worker" in capsys.readouterr().out

    worker = create_worker(
        Settings(redis_url=redis_url), burst=True, handle_signals=False, poll_delay=0.02
    )
    try:
        await worker.async_run()  # empty queue: starts, records health, stops
        assert await client.ttl(HEALTH_KEY) > 0
        assert await asyncio.to_thread(check) == 0
        assert "j_complete=" in capsys.readouterr().out
    finally:
        await worker.close()  # a worker that stops takes its health record with it
    assert await asyncio.to_thread(check) == 1
    await client.aclose()
