"""Fixtures of the Redis Cluster tests.

A three-node Redis Cluster (real processes, one per session) holds the
shadow store; the session's plain Redis (tests/conftest.py) holds the arq
queue, as QUEUE_REDIS_URL would in production. The usual fixture names are
overridden here, so the shadow, worker, groups and API tests reused by the
`test_cluster_*` modules run unchanged against the cluster:

- `redis_url`: the cluster's `redis+cluster://` URL;
- `redis`: a cluster client (`core.connect.connect`), the cluster and the
  queue's Redis flushed before each test;
- `worker_settings` and `queue`: shadow on the cluster, queue on plain Redis;
- `use_queue_redis(module)` makes `api_settings` (tests.support.api) and
  `Settings(...)` as a reused test module calls them put the queue on the
  plain Redis (the app refuses a cluster without a queue of its own).

Skips, with the reason, only when redis-server or redis-cli cannot be found.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import Redis

import tests.support.api as api_support
from core.connect import connect
from core.settings import Settings
from tests.integration.cluster.servers import (
    RedisClusterServers,
    SentinelServer,
    missing_binaries,
    start_cluster,
    start_sentinel,
)
from tests.support.redis_server import RedisServer, start_redis


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    reason = missing_binaries()
    if reason:
        pytest.skip(f"Redis Cluster tests need redis-server and redis-cli: {reason}")
    servers = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def cluster_url(redis_cluster: RedisClusterServers) -> str:
    return redis_cluster.url


@pytest.fixture
def queue_url(redis_server: RedisServer) -> str:
    """The plain Redis of the arq queue (QUEUE_REDIS_URL)."""
    return redis_server.url


@pytest.fixture
def redis_url(cluster_url: str) -> str:
    return cluster_url


@pytest.fixture
async def redis(cluster_url: str, queue_url: str) -> AsyncIterator[Redis]:
    plain = Redis.from_url(queue_url)
    await plain.flushall()
    await plain.aclose()
    client = connect(cluster_url)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def worker_settings(cluster_url: str, queue_url: str) -> Settings:
    return Settings(
        redis_url=cluster_url,
        queue_redis_url=queue_url,
        job_timeout_s=30.0,
        sweep_grace_s=0.0,
    )


@pytest.fixture
async def queue(redis: Redis, queue_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(queue_url))
    try:
        yield pool
    finally:
        await pool.aclose()


@pytest.fixture
def use_queue_redis(
    monkeypatch: pytest.MonkeyPatch, queue_url: str
) -> Callable[[ModuleType], None]:
    """Make `api_settings` (tests.support.api, and its copy in `module`) and
    `module.Settings(...)` put the queue on the plain Redis."""
    original = api_support.api_settings

    def api_settings(redis_url: str, **overrides: Any) -> Settings:
        return original(redis_url, **{"queue_redis_url": queue_url, **overrides})

    monkeypatch.setattr(api_support, "api_settings", api_settings)

    def settings(**values: Any) -> Settings:
        return Settings(**{"queue_redis_url": queue_url, **values})

    def patch(module: ModuleType) -> None:
        if hasattr(module, "api_settings"):
            monkeypatch.setattr(module, "api_settings", api_settings)
        if getattr(module, "Settings", None) is Settings:
            monkeypatch.setattr(module, "Settings", settings)

    return patch


@pytest.fixture
def plain_redis_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start extra plain redis-servers (stopped at the end of the test)."""
    started: list[RedisServer] = []

    def start(**options: Any) -> RedisServer:
        workdir = tmp_path / f"redis-{len(started)}"
        workdir.mkdir(parents=True, exist_ok=True)
        server = start_redis(workdir, **options)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def sentinel_factory(tmp_path: Path) -> Iterator[Callable[[int], SentinelServer]]:
    """Start a Sentinel watching the Redis on a port (stopped at the end)."""
    reason = missing_binaries()
    if reason:
        pytest.skip(f"Sentinel tests need redis-server: {reason}")
    started: list[SentinelServer] = []

    def start(master_port: int) -> SentinelServer:
        server = start_sentinel(tmp_path / f"sentinel-{len(started)}", master_port)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
