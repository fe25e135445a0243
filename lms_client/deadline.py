"""A time limit for every LMS call made inside a block.

The worker runs each job under one (`call_deadline`), ending before the
job's timeout and so before the per-user lock can expire: a call that could
still be in flight when the lock goes, letting another worker write the same
learner, is never started, never retried past it, and cut off at it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["call_deadline", "time_left"]

_deadline: ContextVar[float | None] = ContextVar("lms_call_deadline", default=None)


@contextmanager
def call_deadline(at: float) -> Iterator[None]:
    """Calls made inside end by `at` (`time.monotonic()` seconds), or an
    earlier deadline already in force."""
    outer = _deadline.get()
    token = _deadline.set(at if outer is None else min(at, outer))
    try:
        yield
    finally:
        _deadline.reset(token)


def time_left() -> float | None:
    """Seconds until the deadline in force, or None when there is none."""
    at = _deadline.get()
    return None if at is None else at - time.monotonic()
