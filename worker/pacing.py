"""Per-tenant pacing of LMS calls, shared by every worker through Redis.

The LMS limits each organisation with a token bucket (docs/lms-contract.md, "Limits
and failures"); the bridge must stay under it across all workers instead
of learning it from 429s. One GCRA state per tenant (`shadow.keys.limiter`,
a theoretical arrival time) lives in Redis and one Lua step reserves the
next slot, so any number of workers share one budget. Time comes from the
Redis server's clock, so workers on machines with skewed clocks still agree.

A caller whose slot is near (`max_wait`, a second or two) sleeps until it
and proceeds; a later slot is not reserved and `LmsDeferred` is raised so
the job defers itself and the worker moves on (docs/architecture.md, "Conventions"). The
configured rate and burst are scaled by `margin` (95%) to absorb network
jitter and clock differences with the LMS's own bucket.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from lms_client import LmsDeferred
from shadow import keys

__all__ = ["DEFAULT_MARGIN", "DEFAULT_MAX_WAIT_S", "Pacer", "TenantLimiter"]

DEFAULT_MARGIN = 0.95
DEFAULT_MAX_WAIT_S = 2.0

# GCRA with reservation, all times in integer microseconds.
# KEYS: 1 TAT key
# ARGV: 1 emission interval, 2 tolerance ((burst - 1) * interval),
#       3 longest wait to reserve, 4 now ("" = the server's TIME),
#       5 "take" | "pause", 6 pause length (pause only)
# Returns {granted 1|0, wait}: granted means the slot at now + wait is
# reserved; 0 means the wait is over the limit and nothing was reserved.
_GCRA = """
local now
if ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local function store(value)
  local ttl = math.ceil((value - now) / 1000) + 1000
  redis.call('SET', KEYS[1], string.format('%.0f', value), 'PX', ttl)
end
if ARGV[5] == 'pause' then
  local resume = now + tonumber(ARGV[6]) + tolerance
  if resume > tat then store(resume) end
  return {1, 0}
end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if wait > tonumber(ARGV[3]) then return {0, wait} end
store(tat + interval)
return {1, wait}
"""

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Pacer:
    """Holds the registered script; hands out one limiter per tenant setting."""

    def __init__(
        self,
        redis: Redis,
        *,
        margin: float = DEFAULT_MARGIN,
        max_wait: float = DEFAULT_MAX_WAIT_S,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not 0 < margin <= 1:
            raise ValueError("margin must be in (0, 1]")
        self._script = redis.register_script(_GCRA)
        self.margin = margin
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep

    def limiter(self, tenant: str, rate: float, burst: int) -> TenantLimiter:
        return TenantLimiter(self, tenant, rate, burst)

    async def run(
        self, tenant: str, mode: str, interval_us: int, tolerance_us: int, extra_us: int
    ) -> tuple[bool, float]:
        """One GCRA step (`take` with the longest wait, or `pause` with its
        length); whether a slot was reserved, and the wait in seconds."""
        now = "" if self._clock is None else str(int(self._clock() * 1_000_000))
        max_wait, pause = (extra_us, 0) if mode == "take" else (0, extra_us)
        granted, wait_us = await self._script(
            keys=[keys.limiter(tenant)],
            args=[interval_us, tolerance_us, max_wait, now, mode, pause],
        )
        return bool(int(granted)), int(wait_us) / 1_000_000

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)


class TenantLimiter:
    """The `lms_client.Limiter` of one tenant: `acquire()` before every LMS request."""

    def __init__(self, pacer: Pacer, tenant: str, rate: float, burst: int) -> None:
        self._pacer = pacer
        self.tenant = tenant
        self.rate = rate * pacer.margin
        self.burst = max(1, math.floor(burst * pacer.margin))
        # Rounded up: a slightly longer interval errs on the LMS's side.
        self._interval_us = math.ceil(1_000_000 / self.rate) if self.rate > 0 else 0
        self._tolerance_us = (self.burst - 1) * self._interval_us
        self._max_wait_us = int(pacer.max_wait * 1_000_000)

    async def reserve(self) -> float:
        """Reserve the next slot; the seconds until it. Raises LmsDeferred when
        it is further away than `max_wait` (nothing is reserved then)."""
        if self._interval_us == 0:  # rate 0: the organisation is not limited
            return 0.0
        granted, wait = await self._pacer.run(
            self.tenant, "take", self._interval_us, self._tolerance_us, self._max_wait_us
        )
        if not granted:
            raise LmsDeferred(wait, f"LMS pacing: next slot in {wait:.2f}s; deferring")
        return wait

    async def acquire(self) -> None:
        wait = await self.reserve()
        if wait > 0:
            await self._pacer.sleep(wait)

    async def pause(self, seconds: float) -> None:
        """Hold every worker's calls to this tenant for `seconds` (the LMS's
        Retry-After), then resume at the paced rate from an empty bucket:
        one job learning of an outage spares the LMS the others' calls."""
        if self._interval_us == 0 or seconds <= 0:
            return
        await self._pacer.run(
            self.tenant, "pause", self._interval_us, self._tolerance_us, int(seconds * 1_000_000)
        )
