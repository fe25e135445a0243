"""Fixtures of the Redis Cluster and Sentinel tests.

The tests here run on the cluster backend only (`redis_backend` below):
`redis`, `redis_url`, `worker_settings` and `queue` (tests/conftest.py,
tests/support/worker_fixtures.py) put the shadow store on the session's
three-node Redis Cluster and the arq queue on the session's plain Redis, as
QUEUE_REDIS_URL would in production. The shadow, worker, API, groups, admin
and metrics tests that also run on a cluster are marked `also_on_cluster`
in their own modules and run there with `[cluster]` in their ids.

Skips, with the reason, only when redis-server or redis-cli cannot be found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster.servers import (
    RedisClusterServers,
    SentinelServer,
    missing_binaries,
    start_sentinel,
)
from tests.support.redis_server import RedisServer, start_redis


@pytest.fixture
def redis_backend(redis_cluster: RedisClusterServers) -> str:
    return "cluster"


@pytest.fixture
def cluster_url(redis_cluster: RedisClusterServers) -> str:
    return redis_cluster.url


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
