"""BatchClaimWorker against a real Redis: one script call claims the due jobs
by arq's own rule, and a job is never run twice however many workers read it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix
from arq.worker import func
from redis.asyncio import Redis

from core.settings import Settings
from worker.claim import BatchClaimWorker
from worker.settings import create_worker

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning:arq")

QUEUE = "claim-test"


async def record(ctx: dict[str, Any], name: str) -> None:
    """The job: count each run of `name` in Redis, so a double run shows."""
    await ctx["redis"].hincrby("claim-test:runs", name, 1)
    await asyncio.sleep(0.005)


def claim_worker(queue: ArqRedis, **options: Any) -> BatchClaimWorker:
    defaults: dict[str, Any] = {
        "functions": [func(record, name="record")],
        "redis_pool": queue,
        "queue_name": QUEUE,
        "burst": True,
        "poll_delay": 0.01,
        "handle_signals": False,
        "keep_result": 0,
        "max_jobs": 4,
    }
    worker = BatchClaimWorker(**{**defaults, **options})
    worker.ctx["redis"] = queue  # what arq's main() sets, for tests that call start_jobs
    return worker


async def runs(redis: Redis) -> dict[str, int]:
    counts = await redis.hgetall("claim-test:runs")  # type: ignore[misc]
    return {k.decode(): int(v) for k, v in counts.items()}


async def test_the_bridge_runs_the_batch_claiming_worker(redis_url: str) -> None:
    worker = create_worker(Settings(redis_url=redis_url), handle_signals=False)
    try:
        assert isinstance(worker, BatchClaimWorker)
    finally:
        await worker.close()


async def test_only_due_unclaimed_queued_jobs_are_claimed_and_run_once(
    queue: ArqRedis, redis: Redis
) -> None:
    for name in ("due-1", "due-2", "due-3", "claimed-elsewhere"):
        await queue.enqueue_job("record", name, _job_id=name, _queue_name=QUEUE)
    await queue.enqueue_job("record", "later", _job_id="later", _queue_name=QUEUE, _defer_by=60)
    await redis.set(in_progress_key_prefix + "claimed-elsewhere", b"1", px=60_000)
    worker = claim_worker(queue, max_jobs=10)
    slots = worker.sem._value
    try:
        ids = [b"due-1", b"due-2", b"due-3", b"claimed-elsewhere", b"later", b"gone"]
        await worker.start_jobs(ids)
        assert sorted(worker.tasks) == ["due-1", "due-2", "due-3"]
        ttl_ms = await redis.pttl(in_progress_key_prefix + "due-1")
        assert 0 < ttl_ms <= int(worker.in_progress_timeout_s * 1000)
        assert not await redis.exists(in_progress_key_prefix + "later")
        await asyncio.gather(*worker.tasks.values())
        # Every slot came back: three ran, the other three were never taken.
        assert (worker.job_counter, worker.sem._value) == (0, slots)
    finally:
        await worker.close()
    assert await runs(redis) == {"due-1": 1, "due-2": 1, "due-3": 1}
    assert await redis.zscore(QUEUE, "later") is not None  # still waits its turn
    assert await redis.zscore(QUEUE, "due-1") is None  # finished by arq as usual


async def test_a_poll_claims_no_more_jobs_than_free_slots(queue: ArqRedis, redis: Redis) -> None:
    """Like arq: a poll starts what fits in max_jobs; the rest stays queued,
    unclaimed, for the next poll."""
    ids = [f"j{n}".encode() for n in range(6)]
    for job_id in ids:
        await queue.enqueue_job(
            "record", job_id.decode(), _job_id=job_id.decode(), _queue_name=QUEUE
        )
    worker = claim_worker(queue, max_jobs=2)
    try:
        await worker.start_jobs(ids)
        assert sorted(worker.tasks) == ["j0", "j1"]
        assert len(await redis.keys(in_progress_key_prefix + "j*")) == 2
        await asyncio.gather(*worker.tasks.values())
        await worker.start_jobs(ids)  # the next poll: j0 and j1 are gone from the queue
        assert sorted(worker.tasks)[-2:] == ["j2", "j3"]
        await asyncio.gather(*worker.tasks.values())
    finally:
        await worker.close()
    assert await runs(redis) == {"j0": 1, "j1": 1, "j2": 1, "j3": 1}
    assert await redis.zcard(QUEUE) == 2


async def test_competing_workers_run_every_job_exactly_once(
    queue: ArqRedis, redis: Redis, redis_url: str
) -> None:
    names = [f"job-{n}" for n in range(300)]
    for name in names:
        await queue.enqueue_job("record", name, _job_id=name, _queue_name=QUEUE)
    pools = [await create_pool(RedisSettings.from_dsn(redis_url)) for _ in range(3)]
    workers = [claim_worker(p, max_jobs=8, queue_read_limit=20) for p in pools]
    try:
        await asyncio.wait_for(asyncio.gather(*(w.main() for w in workers)), 60)
    finally:
        for w, p in zip(workers, pools, strict=True):
            await w.close()
            await p.aclose()
    assert await runs(redis) == dict.fromkeys(names, 1)
    assert sum(w.jobs_complete for w in workers) == len(names)
    assert await redis.zcard(QUEUE) == 0


async def test_a_failed_claim_gives_every_slot_back(
    queue: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis lost mid-claim: the error reaches arq's loop (which restarts the
    worker) and no slot stays taken by a job that never started."""
    worker = claim_worker(queue, max_jobs=4)
    slots = worker.sem._value

    async def lost(job_ids: list[str]) -> list[tuple[str, int]]:
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(worker, "_claim", lost)
    try:
        with pytest.raises(ConnectionError):
            await worker.start_jobs([b"a", b"b", b"c"])
        assert (worker.sem._value, worker.job_counter, worker.tasks) == (slots, 0, {})
    finally:
        await worker.close()
