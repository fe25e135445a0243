"""How long the bridge keeps what it writes about people, and what it never
writes at all.

Provisioning logs (`keys.events`) hold ids, versions, outcomes and LMS
status codes. Every value written to them, and every sync error, passes
`scrub` first, so an address that reached a message (an LMS that echoes
what it refused, an exception's text) is written as `<address>`. Each log
keeps at most `events_kept` entries and none older than `events_max_age_s`
(trimmed at every write, and the whole log expires once nothing was
written to it for that long).
"""

from __future__ import annotations

import re

from redis.asyncio import Redis

from shadow import keys

__all__ = ["scrub", "trim_gone"]

_ADDRESS = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+")


def scrub(text: str) -> str:
    """`text` with every email address replaced by `<address>`."""
    return _ADDRESS.sub("<address>", text) if "@" in text else text


async def trim_gone(redis: Redis, slug: str, before_ms: int) -> int:
    """Forget deleted users' ids remembered for reconcile (`keys.gone_users`)
    since before `before_ms`: the sweep calls it, so ids go when their time
    is up even when no further delete comes."""
    return int(await redis.zremrangebyscore(keys.gone_users(slug), "-inf", f"({before_ms}"))
