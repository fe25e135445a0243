"""The crash harness itself: what counts as one call, and what each fault
leaves in Redis (tests/support/crash.py, tests/support/redis_proxy.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.support.crash import Fault, Faults, Injected, Mode, Run
from tests.support.redis_proxy import KillingProxy, When

SCRIPT = "return redis.call('INCR', KEYS[1])"


@pytest.fixture
def faults() -> Iterator[Faults]:
    installed = Faults()
    installed.install()
    yield installed
    installed.remove()


async def _steps(redis: Redis) -> None:
    """Four calls: a command, a pipeline, a MULTI/EXEC, a Lua call."""
    await redis.set("a", 1)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set("b", 1).set("c", 1)
        await pipe.execute()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr("d").incr("d")
        await pipe.execute()
    await redis.register_script(SCRIPT)(keys=["e"])


async def test_each_command_pipeline_transaction_and_script_is_one_call(
    redis: Redis, faults: Faults
) -> None:
    await redis.register_script(SCRIPT)(keys=["warm"])  # loaded: EVALSHA needs no retry
    run = Run()
    with run.process("p"):
        await _steps(redis)
    assert run.redis_calls == 4
    await redis.flushall()
    await _steps(redis)  # outside a process: not counted, not faulted
    assert run.redis_calls == 4


@pytest.mark.parametrize(
    ("mode", "applied", "after"),
    [("error", False, True), ("lost", True, True), ("kill", True, False)],
)
async def test_what_each_fault_leaves(
    redis: Redis, faults: Faults, mode: Mode, applied: bool, after: bool
) -> None:
    run = Run(Fault("redis", mode, 2))
    with run.process("p") as proc:
        await redis.set("first", 1)
        with pytest.raises(Injected):
            await redis.set("second", 1)
        try:
            await redis.set("third", 1)
        except Injected:
            assert proc.dead
    assert run.fired
    assert bool(await redis.exists("second")) is applied
    assert bool(await redis.exists("third")) is after
    assert run.killed == (["p"] if mode == "kill" else [])


@pytest.mark.parametrize(("when", "applied"), [("before", False), ("after", True)])
async def test_the_proxy_kills_before_or_after_the_chosen_command(
    redis: Redis, when: When, applied: bool
) -> None:
    port = int(redis.connection_pool.connection_kwargs["port"])
    proxy = KillingProxy(port).start()
    killed: list[bool] = []
    client = Redis(port=proxy.port)
    try:
        proxy.arm(lambda cmd: cmd[:2] == [b"SET", b"chosen"], when, lambda: killed.append(True))
        await client.set("earlier", 1)
        with pytest.raises(RedisConnectionError):  # the connection closes: no answer
            await client.set("chosen", 1)
        assert await asyncio.to_thread(proxy.fired.wait, 5)
    finally:
        await client.aclose()
        proxy.stop()
    assert killed == [True]
    assert await redis.exists("earlier")
    assert bool(await redis.exists("chosen")) is applied
