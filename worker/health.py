"""`scim-bridge worker --check`: is a worker of this queue alive?

Every worker refreshes arq's health key (`<queue>:health-check`) each
`HEALTH_CHECK_INTERVAL_S` with a short expiry, so the key exists while at
least one worker's main loop runs and vanishes soon after the last one
stops or hangs. This is what `arq worker.settings.WorkerSettings --check`
reads too. The key is shared by all workers of the queue: the check says
the fleet is alive, not which process.
"""

from __future__ import annotations

import asyncio

from arq.constants import health_check_key_suffix
from redis.exceptions import RedisError

from core.connect import connect_queue
from core.settings import Settings
from worker.queue import QUEUE_NAME

__all__ = ["HEALTH_KEY", "check_worker", "worker_health"]

HEALTH_KEY = QUEUE_NAME + health_check_key_suffix
_TIMEOUT_S = 5.0


async def worker_health(settings: Settings) -> str | None:
    """The health line the last worker wrote ("... j_complete=3 ... queued=0"),
    or None when no worker has written one lately or Redis does not answer."""
    redis = connect_queue(settings.queue_url, socket_connect_timeout=_TIMEOUT_S)
    try:
        async with asyncio.timeout(_TIMEOUT_S):
            raw = await redis.get(HEALTH_KEY)
    except (RedisError, OSError, TimeoutError):
        return None
    finally:
        await redis.aclose()
    if raw is None:
        return None
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def check_worker(settings: Settings) -> int:
    """Exit status for `scim-bridge worker --check`: 0 alive, 1 not."""
    info = asyncio.run(worker_health(settings))
    if info is None:
        print(f"no worker health record at {HEALTH_KEY!r}: no worker alive")
        return 1
    print(f"worker alive: {info}")
    return 0
