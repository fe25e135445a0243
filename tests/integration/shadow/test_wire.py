"""core.wire against a real Redis: commands packed by hiredis are the bytes
redis-py's own asyncio packer sends, with the same refusals; an idle pooled
connection holding anything unread is replaced, never lent; the store's
clients use both."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from core.connect import connect
from core.wire import HiredisPacking, IdleCheckFromBuffers, with_fast_wire
from shadow import ResourceStore
from tests.support.cluster import wait_until
from tests.support.redis_server import RedisServer

FastConnection = with_fast_wire(Connection)

COMMANDS: list[tuple[object, ...]] = [
    ("SET", "k", "v"),
    ("CONFIG GET", "maxmemory"),
    (b"CLIENT SETNAME", b"x"),
    ("HSET", "{t:acme}:u:1", "doc", b'{"userName":"\xc3\xa9"}', "v", 3, "score", 1.5),
    ("SET", "unicode", "Zoë Ångström 名前 🙂"),
    ("SET", "big", b"x" * 100_000),  # over redis-py's 6,000-byte chunking cut-off
    ("SET", "view", memoryview(b"abc")),
    ("ZADD", "z", -0.0, "a", 10**20, "b", -7, "c"),
    ("EVALSHA", "a" * 40, 2, "k1", "k2", "", b"", 0),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_the_same_bytes_as_redis_pys_packer(command: tuple[object, ...]) -> None:
    stock, fast = Connection(), FastConnection()
    assert isinstance(fast, HiredisPacking)
    assert b"".join(fast.pack_command(*command)) == b"".join(stock.pack_command(*command))


@pytest.mark.parametrize("bad", [None, True, False, object(), ["list"]])
def test_values_redis_py_refuses_are_refused(bad: object) -> None:
    with pytest.raises(DataError):
        Connection().pack_command("SET", "k", bad)
    with pytest.raises(DataError):
        FastConnection().pack_command("SET", "k", bad)


def test_one_class_per_base_and_never_mixed_twice() -> None:
    assert with_fast_wire(Connection) is FastConnection
    assert with_fast_wire(FastConnection) is FastConnection
    unix = with_fast_wire(UnixDomainSocketConnection)
    assert issubclass(unix, UnixDomainSocketConnection)
    assert unix is not FastConnection


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """The store's client (`core.connect`) of the test Redis."""
    made = connect(redis_server.url)
    await made.flushall()
    try:
        yield made
    finally:
        await made.aclose()


async def test_the_stores_client_packs_with_hiredis_against_a_real_redis(client: Redis) -> None:
    assert issubclass(client.connection_pool.connection_class, HiredisPacking)
    assert issubclass(client.connection_pool.connection_class, IdleCheckFromBuffers)
    value = "Zoë 名前 🙂".encode() + bytes(range(256)) + b"y" * 50_000
    await client.set("wire:big", value)
    assert await client.get("wire:big") == value
    store = ResourceStore(client)  # a Lua write of some thirty arguments
    written = await store.write("acme", "u", "u1", "create", {"userName": "zoë@example.com"})
    stored = await store.get("acme", "u", "u1")
    assert stored is not None
    assert stored.version == written.version == 1
    assert stored.doc == {"userName": "zoë@example.com"}


async def test_a_reply_nobody_read_is_never_handed_to_the_next_command(client: Redis) -> None:
    await client.set("wire:k", "value")
    pool = client.connection_pool
    conn = await pool.get_connection()
    await conn.send_command("ECHO", "stale")  # its reply is never read
    await wait_until(lambda: not conn._socket_is_empty(), 5, interval=0.005)  # the loop read it
    await pool.release(conn)
    assert await conn.can_read_destructive()
    for _ in range(3):  # whichever pooled connection each command gets
        assert await client.get("wire:k") == b"value"
    assert await client.echo("fresh") == b"fresh"


async def test_a_connection_the_server_closed_is_reconnected_not_used(
    client: Redis, redis: Redis
) -> None:
    pool = client.connection_pool
    conn = await pool.get_connection()
    await conn.send_command("CLIENT", "ID")
    victim = await conn.read_response()
    await pool.release(conn)
    assert await redis.client_kill_filter(_id=victim) == 1
    await wait_until(lambda: conn._reader is not None and conn._reader.at_eof(), 5, interval=0.005)
    assert await client.ping()
    assert await client.client_id() != victim


async def test_a_clean_idle_connection_is_lent_as_it_is(client: Redis) -> None:
    first = await client.client_id()
    for _ in range(5):
        assert await client.client_id() == first
    conn = await client.connection_pool.get_connection()
    try:
        assert not await conn.can_read_destructive()
    finally:
        await client.connection_pool.release(conn)
