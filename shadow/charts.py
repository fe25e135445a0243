"""A tenant's last 24 hours in one-minute buckets, for the admin page's charts.

One hash per tenant (`keys.charts`) used as a ring: field `minute % 1440`
holds `"<minute> <applied> <failed> <queue> <h0> ... <h12>"`, a bucket that
a write for a newer minute starts afresh. So the hash never holds more than
1,440 fields, and an idle tenant holds none of its old minutes' data longer
than it keeps its own (the admin page drops buckets older than 24 hours).

`h0`..`h12` count sync lags in `LAG_BOUNDS` (and over the last); a bucket's
p95 is the bound of the bin holding its 95th percentile, so it is an upper
bound, like Prometheus' `histogram_quantile` without interpolation.
`queue` is the tenant's queue depth as last sampled in that minute, -1 when
no sample was taken. Every write is one Lua step (one round trip).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Sequence

import msgspec
from redis.asyncio import Redis

from shadow import keys

__all__ = ["LAG_BOUNDS", "MINUTES", "Bucket", "ChartStore", "Series", "p95"]

MINUTES = 1440
#: Upper bounds (seconds) of the lag bins; one more bin counts the rest.
LAG_BOUNDS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_BINS = len(LAG_BOUNDS) + 1

# KEYS: 1 chart hash, 2 the tenant's queued set (read when ARGV[5] is '1').
# ARGV: 1 minute, 2 applied +, 3 failed +, 4 lag bin or -1, 5 sample queue.
_RECORD = f"""
local minute = tonumber(ARGV[1])
local slot = tostring(minute % {MINUTES})
local cur = redis.call('HGET', KEYS[1], slot)
local v = {{}}
if cur then for n in string.gmatch(cur, '%S+') do v[#v + 1] = tonumber(n) end end
if v[1] ~= minute or #v ~= {4 + _BINS} then
  v = {{minute, 0, 0, -1}}
  for i = 1, {_BINS} do v[4 + i] = 0 end
end
v[2] = v[2] + tonumber(ARGV[2])
v[3] = v[3] + tonumber(ARGV[3])
local bin = tonumber(ARGV[4])
if bin >= 0 then v[5 + bin] = v[5 + bin] + 1 end
if ARGV[5] == '1' then v[4] = redis.call('ZCARD', KEYS[2]) end
for i = 1, #v do v[i] = string.format('%d', v[i]) end
redis.call('HSET', KEYS[1], slot, table.concat(v, ' '))
return 1
"""


def lag_bin(seconds: float) -> int:
    """The bin of `LAG_BOUNDS` a lag falls in (the last one past 3,600 s)."""
    return bisect.bisect_left(LAG_BOUNDS, seconds)


def p95(histogram: Sequence[int]) -> float | None:
    """The bound of the bin holding the 95th percentile; None for no samples.
    Lags past the last bound read as that bound (the chart says "over")."""
    total = sum(histogram)
    if not total:
        return None
    rank, seen = 0.95 * total, 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return LAG_BOUNDS[min(index, len(LAG_BOUNDS) - 1)]
    return LAG_BOUNDS[-1]


class Bucket(msgspec.Struct, frozen=True):
    """One minute of one tenant (or of the fleet, summed)."""

    minute: int
    applied: int = 0
    failed: int = 0
    #: Users with a sync job waiting, as sampled; -1 when not sampled.
    queue: int = -1
    lags: tuple[int, ...] = (0,) * _BINS


class Series(msgspec.Struct, frozen=True):
    """Every minute of a window, oldest first, gaps filled with empty buckets."""

    start_minute: int
    buckets: tuple[Bucket, ...]

    @classmethod
    def of(cls, found: Iterable[Bucket], now_minute: int, minutes: int = MINUTES) -> Series:
        start = now_minute - minutes + 1
        by_minute = {b.minute: b for b in found if start <= b.minute <= now_minute}
        return cls(
            start_minute=start,
            buckets=tuple(by_minute.get(m, Bucket(minute=m)) for m in range(start, now_minute + 1)),
        )

    @classmethod
    def total(cls, many: Sequence[Series]) -> Series:
        """The fleet: counts and queues summed, lag histograms merged."""
        if not many:
            return cls(start_minute=0, buckets=())
        merged = []
        for column in zip(*(s.buckets for s in many), strict=True):
            queues = [b.queue for b in column if b.queue >= 0]
            merged.append(
                Bucket(
                    minute=column[0].minute,
                    applied=sum(b.applied for b in column),
                    failed=sum(b.failed for b in column),
                    queue=sum(queues) if queues else -1,
                    lags=tuple(sum(b.lags[i] for b in column) for i in range(_BINS)),
                )
            )
        return cls(start_minute=many[0].start_minute, buckets=tuple(merged))


def _bucket(raw: bytes | str) -> Bucket | None:
    text = raw.decode() if isinstance(raw, bytes) else raw
    parts = text.split()
    if len(parts) != 4 + _BINS or not all(p.lstrip("-").isdigit() for p in parts):
        return None
    n = [int(p) for p in parts]
    return Bucket(minute=n[0], applied=n[1], failed=n[2], queue=n[3], lags=tuple(n[4:]))


def now_minute() -> int:
    return int(time.time() // 60)


class ChartStore:
    """Writes a tenant's buckets (the worker) and reads them (the admin page)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._record = redis.register_script(_RECORD)

    async def record_sync(
        self, tenant: str, state: str, lag_s: float | None, *, minute: int | None = None
    ) -> None:
        """One finished sync: `synced` counts as applied, `failed` as a failure."""
        await self._record(
            keys=[keys.charts(tenant), keys.queued(tenant)],
            args=[
                now_minute() if minute is None else minute,
                int(state == "synced"),
                int(state == "failed"),
                lag_bin(lag_s) if lag_s is not None else -1,
                "0",
            ],
        )

    async def sample_queue(self, tenant: str, *, minute: int | None = None) -> None:
        """Note the tenant's queue depth now (the worker's minutely job)."""
        await self._record(
            keys=[keys.charts(tenant), keys.queued(tenant)],
            args=[now_minute() if minute is None else minute, 0, 0, -1, "1"],
        )

    async def read(self, tenants: Sequence[str], *, minute: int | None = None) -> list[Series]:
        """The last 24 hours of each tenant, in one round trip (a pipeline)."""
        now = now_minute() if minute is None else minute
        async with self._redis.pipeline(transaction=False) as pipe:
            for tenant in tenants:
                pipe.hvals(keys.charts(tenant))
            answers = await pipe.execute()
        return [Series.of((b for b in map(_bucket, raw) if b is not None), now) for raw in answers]
