"""Every Redis client times out and caps its connections by default, and a
URL's own options win, for the store and the queue alike (core/connect.py).
No I/O: clients are only built."""

from __future__ import annotations

from typing import Any

from redis.asyncio.connection import BlockingConnectionPool

from core.connect import (
    MAX_CONNECTIONS,
    POOL_WAIT_S,
    SOCKET_CONNECT_TIMEOUT_S,
    SOCKET_TIMEOUT_S,
    connect,
    connect_listener,
    connect_queue,
    queue_settings,
)


def pool_options(client: Any) -> dict[str, Any]:
    pool = client.connection_pool
    return {**pool.connection_kwargs, "max_connections": pool.max_connections}


def test_store_and_queue_clients_have_timeouts_and_a_cap_by_default() -> None:
    for client in (connect("redis://h:6379/0"), connect_queue("redis://h:6379/0")):
        options = pool_options(client)
        assert options["socket_timeout"] == SOCKET_TIMEOUT_S
        assert options["socket_connect_timeout"] == SOCKET_CONNECT_TIMEOUT_S
        assert options["max_connections"] == MAX_CONNECTIONS
        assert isinstance(client.connection_pool, BlockingConnectionPool)  # waits, not fails
        assert client.connection_pool.timeout == POOL_WAIT_S


def test_url_options_win_for_store_and_queue() -> None:
    url = "redis://h:6379/0?socket_timeout=7&socket_connect_timeout=0.5&max_connections=9"
    for client in (connect(url), connect_queue(url)):
        options = pool_options(client)
        assert (options["socket_timeout"], options["socket_connect_timeout"]) == (7, 0.5)
        assert options["max_connections"] == 9


def test_sentinel_clients_take_the_defaults_and_the_url_options() -> None:
    url = "redis+sentinel://s1:26379,s2:26379/main/0?socket_timeout=4&max_connections=64"
    options = pool_options(connect(url))
    assert options["socket_timeout"] == 4
    assert options["socket_connect_timeout"] == SOCKET_CONNECT_TIMEOUT_S
    assert options["max_connections"] == 64


def test_the_workers_arq_settings_keep_the_url_options() -> None:
    """arq's own `RedisSettings.from_dsn` drops them."""
    plain = queue_settings("rediss://:pw@q:6380/2?socket_connect_timeout=3&max_connections=9")
    assert (plain.host, plain.port, plain.database, plain.password) == ("q", 6380, 2, "pw")
    assert plain.ssl
    assert (plain.conn_timeout, plain.max_connections) == (3, 9)
    default = queue_settings("redis://q:6379/0")
    assert default.conn_timeout == 2
    assert default.max_connections is None  # arq's pool would fail past a cap
    sentinel = queue_settings("redis+sentinel://s1:26379/main/1?socket_connect_timeout=0.2")
    assert sentinel.sentinel
    assert (sentinel.database, sentinel.conn_timeout) == (1, 1)


def test_the_listener_has_no_read_timeout_whatever_the_url() -> None:
    options = pool_options(connect_listener("redis://h:6379/0?socket_timeout=1"))
    assert options["socket_timeout"] is None
    assert options["socket_connect_timeout"] == SOCKET_CONNECT_TIMEOUT_S
