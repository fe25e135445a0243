"""Commands packed by hiredis (shadow.wire): the bytes redis-py's own asyncio
packer sends, the same refusals, and the store's clients use it."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from shadow import ResourceStore
from shadow.connect import connect
from shadow.wire import HiredisPacking, with_hiredis_packing
from tests.support.redis_server import RedisServer

FastConnection = with_hiredis_packing(Connection)

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
    assert with_hiredis_packing(Connection) is FastConnection
    assert with_hiredis_packing(FastConnection) is FastConnection
    unix = with_hiredis_packing(UnixDomainSocketConnection)
    assert issubclass(unix, UnixDomainSocketConnection)
    assert unix is not FastConnection


async def test_the_stores_client_packs_with_hiredis_against_a_real_redis(
    redis_server: RedisServer,
) -> None:
    client = connect(redis_server.url)
    try:
        await client.flushall()
        assert issubclass(client.connection_pool.connection_class, HiredisPacking)
        value = "Zoë 名前 🙂".encode() + bytes(range(256)) + b"y" * 50_000
        await client.set("wire:big", value)
        assert await client.get("wire:big") == value
        store = ResourceStore(client)  # a Lua write of some thirty arguments
        written = await store.write("acme", "u", "u1", "create", {"userName": "zoë@example.com"})
        stored = await store.get("acme", "u", "u1")
        assert stored is not None
        assert stored.version == written.version == 1
        assert stored.doc == {"userName": "zoë@example.com"}
    finally:
        await client.aclose()
