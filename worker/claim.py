"""An arq worker that claims its due jobs in one round trip.

arq 0.28's `Worker.start_jobs` claims each job on its own: WATCH, EXISTS,
ZSCORE, then MULTI/EXEC, four round trips a job. At a few hundred syncs a
second that is most of a worker's Redis time and the main reason a backlog
drained slower than the LMS's rate allows. `BatchClaimWorker` claims as many
of the jobs it read as it has free slots in one Lua call, by arq's own rule
(the job is still queued, due, and not in progress elsewhere; the claim is
arq's `arq:in-progress:<id>` key with the same lifetime), then runs each
exactly as arq does. Everything else (running, retrying, finishing, aborting,
health) is arq's. It overrides arq internals, hence arq is pinned to 0.28.

A poll reads the queue itself (`CLAIM_DUE_SCRIPT`): arq reads only the
first `queue_read_limit` due jobs, and a running job stays in the queue
until it ends, so once that many ran fleet-wide no worker found anything
to start, however many slots it had free. The script walks the due jobs,
skips those in progress, and claims as many as the worker has free slots,
oldest due first: delivery grows with workers times `max_jobs`
(docs/operations.md, "Sizing").

A claim names its worker (the in-progress key's value, and the worker's
claims set, in the same script), and the worker beats and hands back dead
workers' claims from arq's own heartbeat step (worker/liveness.py).

A worker that loses Redis (`abandon`) cancels its jobs and waits for them,
quietly, and closes its pool without a command; the next run of the process
hands back the claims and locks of this one at its start (`previous`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.typing import WorkerCoroutine
from arq.utils import timestamp_ms
from arq.worker import Retry, Worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lms_client import call_deadline
from worker.liveness import Liveness, claims_key, new_worker_id

__all__ = ["CLAIM_DUE_SCRIPT", "CLAIM_SCRIPT", "DUE_SCAN_LIMIT", "REDIS_LOST", "BatchClaimWorker"]

logger = logging.getLogger("worker.claim")

#: What losing Redis (a restart, a failover, a network cut) raises.
REDIS_LOST = (RedisConnectionError, RedisTimeoutError, OSError)
#: How long a worker that lost Redis waits for its cancelled jobs to end.
ABANDON_WAIT_S = 5.0
#: A job's LMS calls end this long before its timeout.
CALL_MARGIN_S = 1.0
#: Loggers silenced while a worker abandons its jobs: one line says it all.
_QUIETED = ("arq.worker", "worker.sync", "worker.metrics")

#: KEYS: the queue, the worker's claims set, then one in-progress key per
#: candidate job. ARGV: now (ms), claim lifetime (ms), how many to claim at
#: most, the worker's id, then the candidates' job ids in KEYS order.
#: Returns [job_id, score, ...] claimed.
CLAIM_SCRIPT = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[3])
local out, claimed = {}, 0
for i = 3, #KEYS do
  if claimed >= limit then break end
  local job_id = ARGV[i + 2]
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local score = redis.call('ZSCORE', KEYS[1], job_id)
    if score and tonumber(score) <= now then
      redis.call('SET', KEYS[i], ARGV[4], 'PX', ARGV[2])
      redis.call('SADD', KEYS[2], job_id)
      claimed = claimed + 1
      out[#out + 1] = job_id
      out[#out + 1] = score
    end
  end
end
return out
"""

#: Due jobs one poll looks at, at most, to find free ones: a bound on the
#: script's time (running jobs it skips count), well above the jobs a fleet
#: runs at once.
DUE_SCAN_LIMIT = 5000

#: KEYS: the queue, the worker's claims set. ARGV: now (ms), claim lifetime
#: (ms), how many to claim at most, the worker's id, the in-progress key
#: prefix, how many due jobs to look at at most. The in-progress keys are
#: named in the script: the queue's Redis is never a Cluster
#: (shadow/connect.py). Returns [job_id, score, ...] claimed, due order.
CLAIM_DUE_SCRIPT = """
local now, limit, scan = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[6])
local out, claimed, offset, chunk = {}, 0, 0, 100
while claimed < limit and offset < scan do
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now,
    'WITHSCORES', 'LIMIT', offset, chunk)
  if #due == 0 then break end
  for i = 1, #due, 2 do
    local job_id = due[i]
    local key = ARGV[5] .. job_id
    if redis.call('EXISTS', key) == 0 then
      redis.call('SET', key, ARGV[4], 'PX', ARGV[2])
      redis.call('SADD', KEYS[2], job_id)
      claimed = claimed + 1
      out[#out + 1] = job_id
      out[#out + 1] = due[i + 1]
      if claimed >= limit then break end
    end
  end
  offset = offset + chunk
end
return out
"""


class BatchClaimWorker(Worker):
    """arq's `Worker`, claiming the jobs of one poll in a single script call."""

    _claim_script: Any = None
    _claim_due_script: Any = None
    liveness: Liveness | None = None

    def __init__(self, *args: Any, previous: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker_id = new_worker_id()
        self.jobs_abandoned = 0
        self._lost = False
        for function in self.functions.values():
            timeout = self.job_timeout_s if function.timeout_s is None else function.timeout_s
            function.coroutine = _run_job(function.coroutine, timeout)
        startup, shutdown = self.on_startup, self.on_shutdown

        async def on_startup(ctx: dict[str, Any]) -> None:
            self.liveness = Liveness(
                ctx["redis"], self.queue_name, self.worker_id, cautious=bool(previous)
            )
            ctx["liveness"] = self.liveness
            await self.liveness.beat(force=True)  # alive before the first claim
            if previous:  # our previous run lost Redis: its jobs have ended
                await self.liveness.hand_back(previous, own=True)
            if startup:
                await startup(ctx)

        async def on_shutdown(ctx: dict[str, Any]) -> None:
            if self.liveness is not None and not self._lost:
                await self.liveness.leave()
            if shutdown:
                await shutdown(ctx)

        self.on_startup, self.on_shutdown = on_startup, on_shutdown

    def run(self) -> None:
        """arq's `run`, except that losing Redis abandons the jobs instead
        of closing cleanly (which needs Redis), then raises."""
        self.main_task = self.loop.create_task(self.main())
        try:
            self.loop.run_until_complete(self.main_task)
        except asyncio.CancelledError:
            pass
        except REDIS_LOST:
            self._lost = True
            raise
        finally:
            self.loop.run_until_complete(self.abandon() if self._lost else self.close())

    async def abandon(self) -> None:
        """Redis is gone: cancel the running jobs and wait for them, then
        shut down without a Redis command. Quiet: the caller logs one line."""
        running = [task for task in self.tasks.values() if not task.done()]
        self.jobs_abandoned = len(running)
        quiet = logging.Filter("nothing")  # passes only a logger of that name
        for name in _QUIETED:
            logging.getLogger(name).addFilter(quiet)
        try:
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running, timeout=ABANDON_WAIT_S)
            if self.on_shutdown:
                with contextlib.suppress(Exception, asyncio.TimeoutError):
                    await asyncio.wait_for(self.on_shutdown(self.ctx), ABANDON_WAIT_S)
            if self._pool is not None:
                with contextlib.suppress(Exception):
                    await self._pool.aclose(close_connection_pool=True)
                self._pool = None
        finally:
            for name in _QUIETED:
                logging.getLogger(name).removeFilter(quiet)

    async def run_job(self, job_id: str, score: int) -> None:
        """arq's `run_job`; when Redis is lost its end cannot be recorded,
        and the job runs again (worker/liveness.py), so that is no error."""
        with contextlib.suppress(*REDIS_LOST):
            await super().run_job(job_id, score)

    async def heart_beat(self) -> None:
        """arq's health and cron step, plus ours: beat, and hand back the
        jobs of workers that died."""
        if self.liveness is not None:
            await self.liveness.beat()
            if self.liveness.reaped:
                self._stop_reaped_jobs()
            await self.liveness.reap()
        await super().heart_beat()

    def _stop_reaped_jobs(self) -> None:
        """Our jobs were handed back (we looked dead): cancel them, so that
        they run only where they run again."""
        assert self.liveness is not None
        self.liveness.reaped = False
        running = [task for task in self.tasks.values() if not task.done()]
        logger.warning("judged dead by another worker: %d running jobs cancelled", len(running))
        for task in running:
            task.cancel()

    async def _poll_iteration(self) -> None:
        """arq's poll step, with the queue read by `CLAIM_DUE_SCRIPT`: as
        many due, unclaimed jobs as there are free slots, in one call."""
        free = self.max_jobs - self.job_counter
        if self.burst and self.max_burst_jobs >= 0:
            free = min(free, self.max_burst_jobs - self._jobs_started())
        if self.allow_pick_jobs and free > 0:
            for job_id, score in await self._claim_due(free):
                await self.sem.acquire()  # free: never waits
                self.job_counter += 1
                task = self.loop.create_task(self.run_job(job_id, score))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[job_id] = task
        if self.allow_abort_jobs:
            await self._cancel_aborted_jobs()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # an error of run_job reaches the loop, as in arq
        await self.heart_beat()

    async def _claim_due(self, limit: int) -> list[tuple[str, int]]:
        if self._claim_due_script is None:
            self._claim_due_script = self.pool.register_script(CLAIM_DUE_SCRIPT)
        lifetime_ms = int(self.in_progress_timeout_s * 1000)
        args = [
            timestamp_ms(),
            lifetime_ms,
            limit,
            self.worker_id,
            in_progress_key_prefix,
            DUE_SCAN_LIMIT,
        ]
        flat = await self._claim_due_script(
            keys=[self.queue_name, claims_key(self.worker_id)], args=args
        )
        return [(_text(flat[i]), int(float(_text(flat[i + 1])))) for i in range(0, len(flat), 2)]

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        pending = [job_id.decode() for job_id in job_ids]
        while pending:
            await self.sem.acquire()  # wait for one free slot, take the others free now
            slots = 1
            while slots < len(pending) and not self.sem.locked():
                await self.sem.acquire()
                slots += 1
            allowed = min(slots, self.max_jobs - self.job_counter)
            for _ in range(slots - max(allowed, 0)):
                self.sem.release()
            if allowed <= 0:
                return
            batch, pending = pending[:allowed], pending[allowed:]
            try:
                claimed = await self._claim(batch)
            except BaseException:
                for _ in range(allowed):  # nothing claimed: give every slot back
                    self.sem.release()
                raise
            for _ in range(allowed - len(claimed)):  # taken elsewhere, finished or not due
                self.sem.release()
            for job_id, score in claimed:
                self.job_counter += 1
                task = self.loop.create_task(self.run_job(job_id, score))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[job_id] = task

    async def _claim(self, job_ids: list[str]) -> list[tuple[str, int]]:
        if self._claim_script is None:
            self._claim_script = self.pool.register_script(CLAIM_SCRIPT)
        keys = [
            self.queue_name,
            claims_key(self.worker_id),
            *(in_progress_key_prefix + job_id for job_id in job_ids),
        ]
        lifetime_ms = int(self.in_progress_timeout_s * 1000)
        args = [timestamp_ms(), lifetime_ms, len(job_ids), self.worker_id, *job_ids]
        flat = await self._claim_script(keys=keys, args=args)
        return [(_text(flat[i]), int(float(_text(flat[i + 1])))) for i in range(0, len(flat), 2)]


def _run_job(coroutine: WorkerCoroutine, timeout_s: float) -> WorkerCoroutine:
    """The job, with its LMS calls ending `CALL_MARGIN_S` before its
    timeout, so before the user's lock (which outlives the timeout) can
    expire: no two LMS writes for one learner overlap (lms_client.deadline).
    A job cut off by a lost Redis runs again later, rather than failing with
    a traceback for a fault that is not its own."""

    @functools.wraps(coroutine)
    async def run(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            with call_deadline(time.monotonic() + timeout_s - CALL_MARGIN_S):
                return await coroutine(ctx, *args, **kwargs)
        except REDIS_LOST as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # abandoned: stay cancelled
                raise asyncio.CancelledError from exc
            raise Retry(defer=1) from exc

    return run


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
