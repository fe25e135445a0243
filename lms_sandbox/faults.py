"""Rate limiting and injected failures: what makes the sandbox an unfriendly LMS.

The decisions live here as plain objects with an injectable clock and a
seeded random source, so tests can make them deterministic; `gate.py`
turns the decisions into HTTP answers.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import NamedTuple

from .config import Knobs

__all__ = ["Chaos", "Fault", "RateLimiter"]


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class RateLimiter:
    """One token bucket per API key (docs/lms-contract.md: 20 a second, bursts of 40 by default).

    Rate and burst are passed on every call rather than fixed, so a knob
    change takes effect at once; a bucket never holds more than the current
    burst.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, rate: float, burst: int) -> int | None:
        """Spend one token: None when allowed, else the whole seconds to wait (at least 1).

        A rate of 0 means no limit.
        """
        if rate <= 0:
            return None
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(burst), now)
        else:
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / rate))

    def reset(self) -> None:
        """Refill every bucket (forget them all)."""
        self._buckets.clear()


class Fault(NamedTuple):
    """An injected proxy or overload failure: the status and whether it carries an HTML page."""

    status: int
    html: bool


class Chaos:
    """The sandbox's one random source and the failure decisions drawn from it.

    Seeded from the `seed` knob so that a test with `fault_rate=1.0` and a
    seed sees the same sequence every run.
    """

    def __init__(self, seed: int | None, clock: Callable[[], float] = time.time) -> None:
        self._rng = random.Random(seed)
        self._clock = clock

    def reseed(self, seed: int | None) -> None:
        self._rng.seed(seed)

    def latency(self, knobs: Knobs) -> float:
        """Seconds to wait before answering: the fixed latency plus up to the jitter."""
        jitter = self._rng.uniform(0.0, knobs.latency_jitter_ms) if knobs.latency_jitter_ms else 0.0
        return (knobs.latency_ms + jitter) / 1000.0

    def outage_retry_after(self, knobs: Knobs) -> int | None:
        """Whole seconds left of the current outage (at least 1), or None when there is none."""
        if knobs.outage_until is None:
            return None
        left = knobs.outage_until - self._clock()
        return max(1, math.ceil(left)) if left > 0 else None

    def fault(self, knobs: Knobs) -> Fault | None:
        """A random 502/503/504 for `fault_rate` of requests; 502 and 504 only sometimes HTML."""
        if knobs.fault_rate <= 0 or self._rng.random() >= knobs.fault_rate:
            return None
        status = self._rng.choice(knobs.fault_statuses)
        return Fault(status, html=status == 503 or self._rng.random() < 0.5)

    def drop(self, knobs: Knobs) -> bool:
        """Whether to drop the connection after applying this write."""
        rate = knobs.drop_after_write_rate
        return rate > 0 and self._rng.random() < rate
