"""A tenant's SCIM request rate holds across API processes although each
takes its slots from Redis in small leases (shadow/limits.py)."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from shadow.limits import ScimRateLimiter


async def redis_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(v.get("calls", 0)) for k, v in stats.items() if k.startswith("cmdstat_eval"))


async def test_the_burst_holds_across_processes_at_a_tenth_of_the_calls(redis: Redis) -> None:
    processes = [ScimRateLimiter(redis), ScimRateLimiter(redis)]
    before = await redis_calls(redis)
    started = time.monotonic()
    admitted = 0
    for n in range(400):
        if await processes[n % 2].wait_s("acme", 100.0, 200) == 0:
            admitted += 1
    elapsed = time.monotonic() - started
    assert 200 <= admitted <= 200 + 100 * elapsed + 1
    # about one call per ten admitted (per process); refusals are answered
    # from memory until the wait they were told is over
    assert await redis_calls(redis) - before <= admitted / 10 + 4
    refused = await processes[0].wait_s("acme", 100.0, 200)
    assert 0 < refused <= 0.1
    assert await processes[1].wait_s("other", 100.0, 200) == 0  # another tenant's own bucket


async def test_concurrent_requests_share_one_lease_instead_of_wasting_one_each(
    redis: Redis,
) -> None:
    """Requests arriving together wait for the one asking Redis: a tenant far
    below its rate is never refused, and few calls are made."""
    limiter = ScimRateLimiter(redis)
    before = await redis_calls(redis)
    for _ in range(20):  # 20 waves of 64 at once: 1,280 requests of a 100,000/s tenant
        waits = await asyncio.gather(
            *(limiter.wait_s("acme", 100_000.0, 200_000) for _ in range(64))
        )
        assert waits == [0.0] * 64
    assert await redis_calls(redis) - before <= 2
