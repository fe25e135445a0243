"""Fast recovery: a dead worker's claims and locks are handed back within
seconds by the live ones (worker/liveness.py), never a live worker's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.worker import func
from redis.asyncio import Redis

from shadow import SyncStore
from worker.claim import BatchClaimWorker
from worker.liveness import REGISTRY, Liveness, claims_key, forget_claims, heartbeat_key

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning:arq")

QUEUE = "liveness-test"


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def claimed_by(queue: ArqRedis, worker_id: str, *job_ids: str) -> BatchClaimWorker:
    """A worker (not started) that claimed `job_ids` and beat once."""
    worker = BatchClaimWorker(
        functions=[func(noop, name="noop")],
        redis_pool=queue,
        queue_name=QUEUE,
        handle_signals=False,
        burst=True,
    )
    worker.worker_id = worker_id
    for job_id in job_ids:
        await queue.enqueue_job("noop", _job_id=job_id, _queue_name=QUEUE)
    claimed = await worker._claim(list(job_ids))
    assert [job for job, _ in claimed] == list(job_ids)
    await Liveness(queue, QUEUE, worker_id).beat(force=True)
    return worker


async def test_a_claim_names_its_worker(queue: ArqRedis, redis: Redis) -> None:
    await claimed_by(queue, "w-1", "job-a")
    assert await redis.get(in_progress_key_prefix + "job-a") == b"w-1"
    assert await redis.smembers(claims_key("w-1")) == {b"job-a"}  # type: ignore[misc]


async def test_a_dead_workers_queued_jobs_are_handed_back_and_a_live_ones_kept(
    queue: ArqRedis, redis: Redis
) -> None:
    await claimed_by(queue, "dead", "job-a", "job-b")
    await claimed_by(queue, "alive", "job-c")
    await redis.zrem(QUEUE, "job-b")  # job-b ended meanwhile: nothing to run again
    await redis.delete(heartbeat_key("dead"))  # what its expiry does after a SIGKILL

    freed = await Liveness(queue, QUEUE, "judge").reap(force=True)

    assert freed == ["job-a"]
    assert not await redis.exists(in_progress_key_prefix + "job-a")
    assert await redis.exists(in_progress_key_prefix + "job-c")
    assert await redis.zscore(REGISTRY, "dead") is None
    assert not await redis.exists(claims_key("dead"))


async def test_a_claim_taken_over_by_another_worker_is_not_freed(
    queue: ArqRedis, redis: Redis
) -> None:
    await claimed_by(queue, "dead", "job-a")
    await redis.set(in_progress_key_prefix + "job-a", "other", px=60_000)  # re-claimed since
    await redis.delete(heartbeat_key("dead"))
    assert await Liveness(queue, QUEUE, "judge").reap(force=True) == []
    assert await redis.get(in_progress_key_prefix + "job-a") == b"other"


async def test_ended_jobs_leave_the_claims_set_at_the_next_beat(
    queue: ArqRedis, redis: Redis
) -> None:
    await claimed_by(queue, "w-1", "job-a", "job-b")
    await redis.delete(in_progress_key_prefix + "job-a")  # arq finished it
    await Liveness(queue, QUEUE, "w-1").beat(force=True)
    assert await redis.smembers(claims_key("w-1")) == {b"job-b"}  # type: ignore[misc]


async def test_a_worker_whose_own_beat_lapsed_judges_no_one_for_a_while(
    queue: ArqRedis, redis: Redis
) -> None:
    """After Redis was paused longer than a heartbeat lives, every beat lapsed,
    live workers' too: judging then would hand back live workers' jobs."""
    judge = Liveness(queue, QUEUE, "judge")
    await judge.beat(force=True)
    await claimed_by(queue, "paused", "job-a")
    await redis.delete(heartbeat_key("judge"), heartbeat_key("paused"))  # both lapsed

    assert await judge.beat(force=True) is False
    assert await judge.reap(force=True) == []
    assert not await judge.is_gone("paused")
    assert await redis.exists(in_progress_key_prefix + "job-a")


async def test_a_lock_whose_holder_died_is_broken_and_a_live_holders_is_not(
    queue: ArqRedis, redis: Redis
) -> None:
    holder = Liveness(queue, QUEUE, "holder")
    await holder.beat(force=True)
    first = SyncStore(redis)
    first.name_holder("holder", holder.is_gone)
    token = await first.lock("acme", "u-1", 60)
    assert token is not None
    assert token.startswith("holder/")

    judge = Liveness(queue, QUEUE, "judge")
    other = SyncStore(redis)
    other.name_holder("judge", judge.is_gone)
    assert await other.lock("acme", "u-1", 60) is None  # alive: it waits

    await redis.delete(heartbeat_key("holder"))  # SIGKILL, then the beat expires
    taken = await other.lock("acme", "u-1", 60)
    assert taken is not None
    assert taken.startswith("judge/")
    await first.unlock("acme", "u-1", token)  # a late unlock of the dead one's token
    assert await other.is_locked("acme", "u-1")


async def test_a_purge_leaves_no_job_id_of_the_tenant_in_any_claims(
    queue: ArqRedis, redis: Redis
) -> None:
    await claimed_by(queue, "w-1", "sync:acme:u-1:1", "sync:other:u-2:1")
    assert await forget_claims(queue, "sync:acme:") == 1
    assert await redis.smembers(claims_key("w-1")) == {b"sync:other:u-2:1"}  # type: ignore[misc]


async def sleepy(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(30)


async def test_a_worker_judged_dead_while_alive_cancels_the_jobs_it_lost(
    queue: ArqRedis, redis: Redis
) -> None:
    """A worker whose loop stalled past a beat's lifetime had its jobs
    handed back; they run again elsewhere, so its own copies must stop."""
    worker = BatchClaimWorker(
        functions=[func(sleepy, name="sleepy")],
        redis_pool=queue,
        queue_name=QUEUE,
        handle_signals=False,
        burst=True,
    )
    worker.ctx["redis"] = queue
    assert worker.on_startup is not None
    await worker.on_startup(worker.ctx)
    await queue.enqueue_job("sleepy", _job_id="slow", _queue_name=QUEUE)
    await worker.start_jobs([b"slow"])
    task = worker.tasks["slow"]
    await asyncio.sleep(0.05)  # running

    me = worker.worker_id
    await redis.delete(heartbeat_key(me))  # the stall: its beat lapsed...
    assert await Liveness(queue, QUEUE, "judge").reap(force=True) == ["slow"]  # ...and was judged
    assert worker.liveness is not None
    worker.liveness._next_beat = 0.0  # beat now
    await worker.heart_beat()

    await asyncio.wait([task], timeout=5)
    assert task.done()
    assert await redis.exists(heartbeat_key(me))  # it beats on, as a live worker
    await worker.close()
