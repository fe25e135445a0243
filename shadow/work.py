"""The index of tenants with work, and the figures read from it.

With thousands of tenants most have nothing to do at any moment, and the
periodic jobs, the metrics scrape and the admin list must cost what the
busy ones cost, not what all of them cost (docs/operations.md, "Sizing").
The index (`keys.TENANTS_WORK`, a sorted set slug -> touch count) is a
superset of the tenants with work: users pending, queued or failed,
deactivations held or the breaker tripped, group follow-ups, a rules
re-sync running.

- Every change that can give a tenant work touches it (ZINCRBY 1): the
  shadow write and re-queue scripts in their own atomic step (a Lua script
  reaching the untagged key, as the inline job does); on a Redis Cluster,
  where a script may not, the store touches it after a script that
  changed something (a refused write leaves no trace: docs/architecture.md,
  invariant 6).
- Only `settle` takes a tenant out: it reads the touch count, then the
  tenant's figures, and removes it only if it is idle and its count has not
  moved (one script). A change that lands after the figures were read moved
  the count, so no tenant with work is taken out, and a tenant with work
  never leaves the index even for a moment (an alert's `for:` keeps
  counting). On a Cluster, a process dying between its script and its
  touch could leave one out: the sweep's slow walk of every tenant, a few
  at each run, puts it back.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec
from redis.asyncio import Redis

from shadow import keys

__all__ = ["TenantFigures", "WorkIndex", "has_work", "read_figures"]

#: KEYS: the index. ARGV: pairs of slug and the touch count read before its
#: figures. Removes each whose count is unchanged; returns how many.
_FORGET_IDLE = """
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return n
"""

#: Commands per tenant in `read_figures` (one pipeline for many tenants).
_PER_TENANT = 10


class TenantFigures(msgspec.Struct, frozen=True):
    """What ops sort and alert on, per tenant: O(1)/O(log n) reads each."""

    tenant: str
    pending: int = 0
    synced: int = 0
    failed: int = 0
    queued: int = 0
    oldest_pending_ms: int | None = None
    breaker_tripped: bool = False
    held: int = 0
    followups: bool = False
    resync_running: bool = False

    def oldest_pending_seconds(self, now_ms: int | None = None) -> float:
        if self.oldest_pending_ms is None:
            return 0.0
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        return max(0.0, round((now_ms - self.oldest_pending_ms) / 1000, 3))


def has_work(f: TenantFigures) -> bool:
    """Whether the tenant belongs in the index."""
    return bool(
        f.pending
        or f.queued
        or f.failed
        or f.held
        or f.breaker_tripped
        or f.followups
        or f.resync_running
    )


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


async def read_figures(redis: Redis, slugs: Sequence[str]) -> list[TenantFigures]:
    """The figures of `slugs`, in one pipeline (ten commands a tenant)."""
    if not slugs:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for slug in slugs:
            pipe.zcard(keys.state_set(slug, "pending"))
            pipe.zcard(keys.state_set(slug, "synced"))
            pipe.zcard(keys.state_set(slug, "failed"))
            pipe.zcard(keys.queued(slug))
            pipe.zrange(keys.state_set(slug, "pending"), 0, 0, withscores=True)
            pipe.hget(keys.breaker_state(slug), "tripped")
            pipe.zcard(keys.breaker_held(slug))
            pipe.exists(keys.followup_users(slug))
            pipe.exists(keys.followup_groups(slug))
            pipe.hget(keys.rules_resync(slug), "state")
        rows = await pipe.execute()
    out = []
    for i, slug in enumerate(slugs):
        pending, synced, failed, queued, oldest, tripped, held, fu, fg, resync = rows[
            i * _PER_TENANT : (i + 1) * _PER_TENANT
        ]
        out.append(
            TenantFigures(
                tenant=slug,
                pending=int(pending),
                synced=int(synced),
                failed=int(failed),
                queued=int(queued),
                oldest_pending_ms=int(oldest[0][1]) if oldest else None,
                breaker_tripped=_text(tripped) == "1",
                held=int(held),
                followups=bool(fu or fg),
                resync_running=_text(resync) in ("running", "queued"),
            )
        )
    return out


class WorkIndex:
    """The tenants with work (module docstring)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._forget_idle = redis.register_script(_FORGET_IDLE)

    async def mark(self, *slugs: str) -> None:
        """Touch tenants that may have work now (outside a script)."""
        if slugs:
            async with self._redis.pipeline(transaction=False) as pipe:
                for slug in slugs:
                    pipe.zincrby(keys.TENANTS_WORK, 1, slug)
                await pipe.execute()

    async def tenants(self) -> list[str]:
        raw = await self._redis.zrange(keys.TENANTS_WORK, 0, -1)
        return sorted(_text(m) for m in raw)

    async def size(self) -> int:
        return int(await self._redis.zcard(keys.TENANTS_WORK))

    async def forget(self, slug: str) -> None:
        """A tenant deleted: it has nothing left to do."""
        await self._redis.zrem(keys.TENANTS_WORK, slug)

    async def settle(self, slugs: Sequence[str]) -> list[TenantFigures]:
        """Make the index right about `slugs`: the idle ones leave it
        (unless touched since their figures were read), any with work it
        missed join it; the figures."""
        if not slugs:
            return []
        touches = await self._redis.zmscore(keys.TENANTS_WORK, list(slugs))
        figures = await read_figures(self._redis, slugs)
        idle: list[str] = []
        missed: list[str] = []
        for f, touch in zip(figures, touches, strict=True):
            if touch is not None and not has_work(f):
                idle += [f.tenant, _score(touch)]
            elif touch is None and has_work(f):
                missed.append(f.tenant)
        if idle:
            await self._forget_idle(keys=[keys.TENANTS_WORK], args=idle)
        await self.mark(*missed)
        return figures


def _score(value: float) -> str:
    """A score as ZSCORE gives it back in a script: integers without a point."""
    return str(int(value)) if float(value).is_integer() else repr(value)
