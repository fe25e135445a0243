"""A tenant's SCIM request rate holds across API processes although each
takes its slots from Redis in small leases (shadow/limits.py)."""

from __future__ import annotations

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
