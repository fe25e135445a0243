"""The shared limiter keeps every worker together under the LMS's limit.

A fake clock (passed to the Lua step as "now") makes the arithmetic exact;
sleeps are recorded, not spent.
"""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from lms_client import LmsDeferred
from lms_sandbox.faults import RateLimiter
from worker.pacing import Pacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def pacer(redis: Redis, fake: FakeTime, **options: float) -> Pacer:
    return Pacer(redis, clock=fake.clock, sleep=fake.sleep, **options)


async def test_a_burst_goes_at_once_then_calls_are_spaced(redis: Redis, fake: FakeTime) -> None:
    limiter = pacer(redis, fake, margin=0.95).limiter("acme", rate=20, burst=40)

    waits = [await limiter.reserve() for _ in range(40)]

    # 95% of a burst of 40: 38 at once, then one every 1/19 s.
    assert waits[:38] == [0.0] * 38
    assert waits[38] == pytest.approx(1 / 19, abs=1e-5)
    assert waits[39] == pytest.approx(2 / 19, abs=1e-5)


async def test_acquire_sleeps_a_short_wait_and_defers_a_long_one(
    redis: Redis, fake: FakeTime
) -> None:
    limiter = pacer(redis, fake, margin=1.0, max_wait=1.0).limiter("acme", rate=2, burst=1)

    await limiter.acquire()
    await limiter.acquire()
    await limiter.acquire()
    assert fake.slept == [pytest.approx(0.5), pytest.approx(0.5)]
    # Reserve three ahead without time passing: the third is 1.5 s away.
    assert await limiter.reserve() == pytest.approx(0.5)
    assert await limiter.reserve() == pytest.approx(1.0)
    with pytest.raises(LmsDeferred) as deferred:
        await limiter.reserve()
    assert deferred.value.retry_after == pytest.approx(1.5)
    assert deferred.value.status is None  # pacing, not the LMS
    # A deferral reserves nothing: the slot is still 1.5 s away.
    with pytest.raises(LmsDeferred):
        await limiter.reserve()
    fake.now += 0.5
    assert await limiter.reserve() == pytest.approx(1.0)


async def test_workers_share_one_budget_and_stay_under_the_lms_bucket(
    redis: Redis, fake: FakeTime
) -> None:
    # Two workers, each with its own Pacer, one tenant; the LMS's own
    # bucket (the sandbox's) judges every call they let through.
    workers = [pacer(redis, fake).limiter("acme", rate=20, burst=40) for _ in range(2)]
    lms_bucket = RateLimiter(clock=fake.clock)
    refused = 0
    for n in range(400):
        await workers[n % 2].acquire()
        refused += lms_bucket.take("key", 20, 40) is not None

    assert refused == 0
    elapsed = fake.now - 1_000.0
    # 400 calls: 38 at once, then 362 at 19 a second.
    assert elapsed == pytest.approx(362 / 19, rel=1e-3)


async def test_tenants_do_not_share_a_budget(redis: Redis, fake: FakeTime) -> None:
    shared = pacer(redis, fake, margin=1.0, max_wait=0.5)
    busy = shared.limiter("busy", rate=1, burst=1)
    quiet = shared.limiter("quiet", rate=1, burst=1)

    assert await busy.reserve() == 0.0
    with pytest.raises(LmsDeferred):
        await busy.reserve()
    assert await quiet.reserve() == 0.0


async def test_pause_holds_every_worker_then_resumes_paced(redis: Redis, fake: FakeTime) -> None:
    one = pacer(redis, fake, margin=1.0).limiter("acme", rate=10, burst=10)
    other = pacer(redis, fake, margin=1.0).limiter("acme", rate=10, burst=10)

    await one.pause(30)
    with pytest.raises(LmsDeferred) as deferred:
        await other.reserve()
    assert deferred.value.retry_after == pytest.approx(30)

    fake.now += 30
    assert await other.reserve() == 0.0
    assert await other.reserve() == pytest.approx(0.1)  # from an empty bucket


async def test_rate_zero_means_unlimited(redis: Redis, fake: FakeTime) -> None:
    limiter = pacer(redis, fake).limiter("acme", rate=0, burst=1)
    for _ in range(100):
        await limiter.acquire()
    assert fake.slept == []


async def test_redis_clock_is_used_without_a_fake(redis: Redis) -> None:
    limiter = Pacer(redis).limiter("acme", rate=1, burst=3)  # 95%: 2 at once
    assert await limiter.reserve() == 0.0
    assert await limiter.reserve() == 0.0
    wait = await limiter.reserve()
    assert 0.9 < wait <= 1 / 0.95  # one interval at 95% of 1/s, less the time spent
    assert await redis.pttl("{t:acme}:lms:tat") > 0
