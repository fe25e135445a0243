"""Each tenant's SCIM request rate and scan budget, shared by every API
process through Redis.

A token bucket (as GCRA: one timestamp per tenant, the theoretical arrival
time, and the server's clock) of `Tenant.scim_rate` requests a second with
bursts of `scim_burst`: what one tenant's IdP may ask of the API before it
is answered 429, whichever API process it reaches. The defaults (100 a
second, bursts of 200) are four times Entra's 25 requests a second.

`ScanBudget` bounds the costly part of what a tenant asks: resources read
for filters no index answers (`title co "e"`), so that one tenant's scans
cannot take the CPU other tenants' requests need (docs/operations.md,
"Per-tenant request rate").
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from shadow import keys

__all__ = ["ScanBudget", "ScimRateLimiter"]

# KEYS[1] the tenant's GCRA state; ARGV[1] interval (µs), ARGV[2] burst,
# ARGV[3] slots wanted. Returns {slots taken, 0}, or {0, wait in µs} when
# none is free.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local free = math.floor((now + tolerance - tat) / interval) + 1
if free < 1 then return {0, math.ceil(tat - tolerance - now)} end
local taken = math.min(tonumber(ARGV[3]), free)
local next_tat = tat + taken * interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX',
  math.ceil((next_tat - now) / 1000) + 1000)
return {taken, 0}
"""

#: A process takes up to a twentieth of a tenant's burst (and a tenth of a
#: second's rate) at once and hands the slots out from memory for at most
#: this long; slots it does not use in time are lost, never given twice, so
#: the limit holds exactly across processes at a tenth of the Redis calls.
LEASE_S = 1.0


class ScimRateLimiter:
    """One per API process; `wait_s` is the only call. Leases are kept only
    for tenants that made requests (authenticated ones)."""

    def __init__(self, redis: Redis) -> None:
        self._take = redis.register_script(_TAKE)
        self._leases: dict[str, tuple[int, float]] = {}
        #: Until when a tenant is refused without asking Redis: the wait it
        #: was told depends only on time, so its 429s cost nothing more.
        self._refused_until: dict[str, float] = {}
        #: A tenant's lease being asked for, awaited by its other requests.
        self._asking: dict[str, asyncio.Future[None]] = {}

    async def wait_s(self, tenant: str, rate: float, burst: int) -> float:
        """0 when the tenant may make this request now (its slot is taken),
        else the seconds until it may. One request at a time asks Redis for
        a tenant; the others wait for its answer and look again, so that
        concurrent requests never lease (and waste) a batch each."""
        while True:
            now = time.monotonic()
            refused_until = self._refused_until.get(tenant)
            if refused_until is not None:
                if refused_until > now:
                    return refused_until - now
                del self._refused_until[tenant]
            lease = self._leases.get(tenant)
            if lease is not None and lease[0] > 0 and lease[1] > now:
                self._leases[tenant] = (lease[0] - 1, lease[1])
                return 0.0
            asking = self._asking.get(tenant)
            if asking is None:
                break
            await asking
        asked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._asking[tenant] = asked
        try:
            interval_us = max(1, int(1_000_000 / rate))
            batch = max(1, min(burst // 20, int(rate / 10)))
            taken, wait_us = await self._take(
                keys=[keys.scim_limiter(tenant)], args=[interval_us, burst, batch]
            )
        finally:
            del self._asking[tenant]
            asked.set_result(None)
        if int(taken) > 0:
            self._leases[tenant] = (int(taken) - 1, now + LEASE_S)
            return 0.0
        self._leases.pop(tenant, None)
        wait = int(wait_us) / 1_000_000
        self._refused_until[tenant] = now + wait
        return wait


# KEYS[1] the tenant's scan budget (GCRA state); ARGV[1] µs per resource,
# ARGV[2] burst (resources), ARGV[3] the scan's cost (resources). Admitted
# while the budget in hand covers the cost (a cost over the burst needs a
# full budget) and then charged in full, so a huge scan is paid for by the
# scans after it. Returns 0, or the wait in µs.
_SCAN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat + math.min(cost, burst) * interval - burst * interval - now
if wait > 0 then return math.ceil(wait) end
local next_tat = tat + cost * interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX',
  math.ceil((next_tat - now) / 1000) + 1000)
return 0
"""


class ScanBudget:
    """A tenant's budget of resources read by filter scans: `rate` a second
    with bursts of `burst`, one Redis call per scan (scans are the rare,
    expensive request; Entra's lookups are answered from indexes)."""

    def __init__(self, redis: Redis, rate: float, burst: int) -> None:
        self._take = redis.register_script(_SCAN)
        self._interval_us = 1_000_000 / rate
        self._burst = burst

    async def wait_s(self, tenant: str, cost: int) -> float:
        """0 when a scan of `cost` resources may run now (and is charged),
        else the seconds until it may."""
        wait_us = await self._take(
            keys=[keys.scan_budget(tenant)],
            args=[repr(self._interval_us), self._burst, max(0, cost)],
        )
        return int(wait_us) / 1_000_000
