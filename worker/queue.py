"""Enqueueing sync jobs: the one way a wake-up call reaches the workers.

The shadow store decides *when* a user's job is due (its tenant's fair-share
clock) and whether one is already queued; this module only hands arq the
call. The job id names the tenant, user and due time, so the sweep can tell
whether the job a user was promised still exists.
"""

from __future__ import annotations

import time

from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.jobs import serialize_job

from shadow import InlineJob

SYNC_USER = "sync_user"
QUEUE_NAME = "scim-bridge:queue"


def sync_job_id(tenant: str, user_id: str, due_ms: int) -> str:
    return f"sync:{tenant}:{user_id}:{due_ms}"


async def enqueue_sync(pool: ArqRedis, tenant: str, user_id: str, due_ms: int) -> None:
    """Ask a worker to sync one user at `due_ms` (epoch ms)."""
    await enqueue_many(pool, tenant, [(user_id, due_ms)])


async def enqueue_many(pool: ArqRedis, tenant: str, due_jobs: list[tuple[str, int]]) -> None:
    """Enqueue sync jobs of one tenant, a few hundred per round trip."""
    await enqueue_jobs(pool, [(tenant, user_id, due_ms) for user_id, due_ms in due_jobs])


async def enqueue_jobs(pool: ArqRedis, jobs: list[tuple[str, str, int]]) -> None:
    """Enqueue sync jobs (tenant, user, due ms), a few hundred per round trip.

    Each job is written the way arq's `enqueue_job` writes it, without its
    WATCH round trips: arq's WATCH guards against a duplicate job id, and
    ours cannot repeat (the store hands out each due time once per user), so
    SET NX is guard enough.
    """
    now_ms = int(time.time() * 1000)
    for start in range(0, len(jobs), 500):
        async with pool.pipeline(transaction=False) as pipe:
            for tenant, user_id, due_ms in jobs[start : start + 500]:
                job_id = sync_job_id(tenant, user_id, due_ms)
                payload = serialize_job(
                    SYNC_USER,
                    (tenant, user_id),
                    {},
                    None,
                    now_ms,
                    serializer=pool.job_serializer,
                )
                expires_ms = max(due_ms - now_ms, 0) + pool.expires_extra_ms
                pipe.set(job_key_prefix + job_id, payload, px=expires_ms, nx=True)
                pipe.zadd(QUEUE_NAME, {job_id: due_ms})
            await pipe.execute()


async def job_exists(pool: ArqRedis, tenant: str, user_id: str, due_ms: int) -> bool:
    """True while the job is queued or running (arq keeps its key until it ends)."""
    return bool(await pool.exists(job_key_prefix + sync_job_id(tenant, user_id, due_ms)))


async def queue_depth(pool: ArqRedis) -> int:
    return int(await pool.zcard(QUEUE_NAME))


def inline_job(pool: ArqRedis, tenant: str, user_id: str) -> InlineJob:
    """The job for `user_id`, ready for the shadow store to write in the same
    Lua step as the change (only valid when the queue shares that Redis)."""
    payload = serialize_job(
        SYNC_USER,
        (tenant, user_id),
        {},
        None,
        int(time.time() * 1000),
        serializer=pool.job_serializer,
    )
    return InlineJob(
        payload=payload,
        queue_key=QUEUE_NAME,
        key_prefix=job_key_prefix,
        id_prefix=sync_job_id(tenant, user_id, 0)[:-1],
        expires_extra_ms=pool.expires_extra_ms,
    )
