"""Each tenant's SCIM request rate, shared by every API process through Redis.

A token bucket (as GCRA: one timestamp per tenant, the theoretical arrival
time, and the server's clock) of `Tenant.scim_rate` requests a second with
bursts of `scim_burst`: what one tenant's IdP may ask of the API before it
is answered 429, whichever API process it reaches. The defaults (100 a
second, bursts of 200) are four times Entra's 25 requests a second.
"""

from __future__ import annotations

from redis.asyncio import Redis

from shadow import keys

__all__ = ["ScimRateLimiter"]

# KEYS[1] the tenant's GCRA state; ARGV[1] interval (µs), ARGV[2] burst.
# Returns 0 when the request may go (and takes its slot), else the wait in µs.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return math.ceil(wait) end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX',
  math.ceil((next_tat - now) / 1000) + 1000)
return 0
"""


class ScimRateLimiter:
    """One per API process; `wait_s` is the only call."""

    def __init__(self, redis: Redis) -> None:
        self._take = redis.register_script(_TAKE)

    async def wait_s(self, tenant: str, rate: float, burst: int) -> float:
        """0 when the tenant may make this request now (its slot is taken),
        else the seconds until it may."""
        interval_us = max(1, int(1_000_000 / rate))
        wait_us = await self._take(keys=[keys.scim_limiter(tenant)], args=[interval_us, burst])
        return int(wait_us) / 1_000_000
