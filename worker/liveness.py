"""Which workers are alive, what they hold, and handing back a dead one's jobs.

Without this, a worker that dies (SIGKILL, OOM, a lost node) keeps its jobs
claimed (arq's `arq:in-progress:<id>`) and its users locked until the sweep
notices, a minute and more later. Here each worker process (each *run* of
it: a worker that restarts after losing Redis is a new holder) has an id and
a heartbeat key that expires `BEAT_TTL_MS` after its last beat. Its claims
name it (the in-progress key's value, and a set of its claimed job ids) and
so do its per-user locks (`holder/token`). Every live worker, every few
seconds, looks for registered workers whose heartbeat is gone and deletes
their in-progress keys of jobs still queued, so arq runs them again; the
job that runs again finds the user's lock held by a dead holder and breaks
it (`SyncStore.lock`). The sweep stays as the last resort.

A Redis paused or restarted for longer than a heartbeat's lifetime makes
every heartbeat lapse at once, live workers' too. A worker whose own beat
lapsed therefore judges no one for one heartbeat lifetime, by which time
every live worker has beaten again: only the dead stay gone.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import time
from typing import Any

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

__all__ = [
    "BEAT_EVERY_S",
    "BEAT_TTL_MS",
    "REAP_EVERY_S",
    "REGISTRY",
    "Liveness",
    "claims_key",
    "forget_claims",
    "heartbeat_key",
    "new_worker_id",
]

logger = logging.getLogger("worker.liveness")

#: How often a worker beats, how long a beat lasts, how often it looks for
#: dead workers: a dead worker's jobs run again within TTL + REAP_EVERY.
BEAT_EVERY_S = 2.0
BEAT_TTL_MS = 8_000
REAP_EVERY_S = 2.0
#: Every worker that ever beat and has not left: id -> last beat (ms).
REGISTRY = "scim-bridge:workers"


def heartbeat_key(worker_id: str) -> str:
    return f"scim-bridge:worker:{worker_id}"


def claims_key(worker_id: str) -> str:
    """Set of the job ids the worker claimed (pruned as they end)."""
    return f"scim-bridge:worker:{worker_id}:claims"


def new_worker_id() -> str:
    """host.pid.random: readable in logs, unique per run of a process."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]
    return f"{host}.{os.getpid()}.{secrets.token_hex(3)}"


#: KEYS: queue, dead worker's claims, registry, its heartbeat. ARGV: its id,
#: the in-progress key prefix. Frees its claims of jobs still queued (so arq
#: runs them again) unless it beat meanwhile; returns the freed job ids.
RELEASE_CLAIMS = """
if redis.call('EXISTS', KEYS[4]) == 1 then return {} end
local out = {}
for _, job in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local key = ARGV[2] .. job
  if redis.call('GET', key) == ARGV[1] and redis.call('ZSCORE', KEYS[1], job) then
    redis.call('DEL', key)
    out[#out + 1] = job
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return out
"""

#: KEYS: the worker's claims. ARGV: its id, the in-progress key prefix.
#: Forgets claimed jobs that ended (their in-progress key is gone or not ours).
PRUNE_CLAIMS = """
for _, job in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('GET', ARGV[2] .. job) ~= ARGV[1] then redis.call('SREM', KEYS[1], job) end
end
return 0
"""


class Liveness:
    """One worker run's heartbeat, and its judgement of the others."""

    def __init__(
        self,
        redis: Redis,
        queue_name: str,
        worker_id: str | None = None,
        *,
        cautious: bool = False,
    ) -> None:
        """`cautious`: Redis was just lost, so others' beats may have
        lapsed too; judge no one but our own previous runs for a while."""
        self.redis = redis
        self.queue_name = queue_name
        self.worker_id = worker_id or new_worker_id()
        self._next_beat = 0.0
        self._next_reap = 0.0
        self._beaten = False
        #: Another worker handed back our jobs: ours must stop (worker/claim.py).
        self.reaped = False
        #: No judging others before this (monotonic): our own beat lapsed.
        self._judge_from = time.monotonic() + BEAT_TTL_MS / 1000 if cautious else 0.0
        #: Our own previous runs, handed back: gone for sure.
        self._known_gone: set[str] = set()
        self._release = redis.register_script(RELEASE_CLAIMS)
        self._prune = redis.register_script(PRUNE_CLAIMS)

    async def beat(self, *, force: bool = False) -> bool:
        """Refresh the heartbeat (at most every `BEAT_EVERY_S` unless
        `force`); False when it had lapsed or was reaped (see the module note)."""
        now = time.monotonic()
        if not force and now < self._next_beat:
            return True
        self._next_beat = now + BEAT_EVERY_S
        me = self.worker_id
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(heartbeat_key(me), "1", px=BEAT_TTL_MS, xx=True)
            pipe.set(heartbeat_key(me), "1", px=BEAT_TTL_MS, nx=True)
            pipe.zadd(REGISTRY, {me: int(time.time() * 1000)})
            kept, _, added = await pipe.execute()
        await self._prune(keys=[claims_key(me)], args=[me, in_progress_key_prefix])
        if kept or not self._beaten:
            self._beaten = True
            return True
        self._judge_from = now + BEAT_TTL_MS / 1000
        # Gone from the registry too: another worker judged us dead (our
        # loop stalled past a beat's lifetime) and handed our jobs back.
        self.reaped = self.reaped or bool(added)
        return False

    async def is_gone(self, worker_id: str) -> bool:
        """True when `worker_id`'s heartbeat is gone and we may judge it so."""
        if worker_id in self._known_gone:
            return True
        if worker_id == self.worker_id or time.monotonic() < self._judge_from:
            return False
        return not await self.redis.exists(heartbeat_key(worker_id))

    async def reap(self, *, force: bool = False) -> list[str]:
        """Hand back the claimed, still queued jobs of every registered
        worker whose heartbeat is gone; the job ids freed."""
        now = time.monotonic()
        if not force and now < self._next_reap:
            return []
        self._next_reap = now + REAP_EVERY_S
        if now < self._judge_from:
            return []
        others = [_text(w) for w in await self.redis.zrange(REGISTRY, 0, -1)]
        others = [w for w in others if w != self.worker_id]
        if not others:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for other in others:
                pipe.exists(heartbeat_key(other))
            alive = await pipe.execute()
        freed: list[str] = []
        for other, is_alive in zip(others, alive, strict=True):
            if not is_alive:
                freed += await self.hand_back(other)
        return freed

    async def hand_back(self, worker_id: str, *, own: bool = False) -> list[str]:
        """Free a gone worker's claims (`own`: this process's previous run,
        which lost Redis and whose jobs are known to have ended); the job
        ids freed."""
        if own:
            self._known_gone.add(worker_id)
            await self.redis.delete(heartbeat_key(worker_id))
        raw: list[Any] = await self._release(
            keys=[self.queue_name, claims_key(worker_id), REGISTRY, heartbeat_key(worker_id)],
            args=[worker_id, in_progress_key_prefix],
        )
        jobs = [_text(j) for j in raw]
        logger.info("worker %s is gone: %d of its jobs run again", worker_id, len(jobs))
        return jobs

    async def leave(self) -> None:
        """A clean stop: no heartbeat, no registry entry, nothing to reap."""
        me = self.worker_id
        await self.redis.delete(heartbeat_key(me), claims_key(me))
        await self.redis.zrem(REGISTRY, me)


async def forget_claims(redis: Redis, stem: str) -> int:
    """Drop job ids starting with `stem` from every worker's claims (a
    tenant purged, a person erased: their ids leave no trace); how many."""
    removed = 0
    for worker_id in await redis.zrange(REGISTRY, 0, -1):
        key = claims_key(_text(worker_id))
        found = [job async for job in redis.sscan_iter(key, match=stem + "*")]
        if found:
            removed += int(await redis.srem(key, *found))  # type: ignore[misc]
    return removed


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
