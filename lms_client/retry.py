"""The inner retry tier: seconds inside one call, under one time budget.

A `RetryPolicy` is a plain value built from settings, so each tenant or
test can have its own and nothing is fixed at import. `build_retrying`
turns it into a fresh tenacity `AsyncRetrying` per call. Waits longer than
the policy allows inside one call are the outer tier's job (the arq job
defers itself), which is what `LmsDeferred` signals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import msgspec
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    stop_before_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from .errors import LmsDeferred, LmsTransientError

__all__ = ["MAX_RETRY_AFTER_S", "RetryPolicy", "Sleep", "build_retrying", "parse_retry_after"]

#: The longest Retry-After believed: a server asking for a day (or a date
#: far ahead) would otherwise park a tenant's deliveries for that long.
MAX_RETRY_AFTER_S = 300.0

Sleep = Callable[[float], Awaitable[None]]


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How hard one LMS call tries before giving up; all times in seconds.

    The defaults keep one call (attempts, backoffs and Retry-After waits)
    within `total_budget`, which must stay below the job timeout of whoever
    calls the client.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    jitter: float = 0.5
    total_budget: float = 30.0
    max_retry_after_wait: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        times = (
            self.initial_backoff,
            self.max_backoff,
            self.jitter,
            self.total_budget,
            self.max_retry_after_wait,
        )
        if min(times) < 0:
            raise ValueError("retry times must not be negative")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 §10.2.3).

    Accepts whole seconds or an HTTP date; a date in the past means 0, and
    anything past `MAX_RETRY_AFTER_S` means that. Anything else is ignored
    (None), so the caller falls back to backoff.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(float(int(text)), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" per RFC 5322: treat as UTC
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(0.0, delta), MAX_RETRY_AFTER_S)


def _retryable(exc: BaseException) -> bool:
    # LmsDeferred is raised from the wait step, never by an attempt; the
    # check keeps a caller-raised one from being retried all the same.
    return isinstance(exc, LmsTransientError) and not isinstance(exc, LmsDeferred)


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    backoff = wait_exponential_jitter(
        multiplier=policy.initial_backoff, max=policy.max_backoff, jitter=policy.jitter
    )

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = exc.retry_after if isinstance(exc, LmsTransientError) else None
        if retry_after is None:
            return backoff(state)
        assert isinstance(exc, LmsTransientError)
        elapsed = state.seconds_since_start or 0.0
        if retry_after > policy.max_retry_after_wait or elapsed + retry_after > policy.total_budget:
            raise LmsDeferred(
                retry_after, f"{exc}; deferring rather than waiting", status=exc.status
            ) from exc
        return retry_after

    return wait


TimeLeft = Callable[[], float | None]


class _stop_before_deadline(stop_base):
    """Stop before a sleep would reach the caller's deadline."""

    def __init__(self, time_left: TimeLeft) -> None:
        self.time_left = time_left

    def __call__(self, retry_state: RetryCallState) -> bool:
        left = self.time_left()
        return left is not None and left <= retry_state.upcoming_sleep


def build_retrying(
    policy: RetryPolicy,
    *,
    sleep: Sleep | None = None,
    time_left: TimeLeft | None = None,
) -> AsyncRetrying:
    """A fresh tenacity `AsyncRetrying` for one call under `policy`.

    Retries only LmsTransientError; LmsRejected is an answer and propagates
    at once. Waits back off exponentially with jitter, or for the server's
    Retry-After when it sent one; a Retry-After beyond `max_retry_after_wait`
    or the remaining budget raises LmsDeferred without sleeping. Stops after
    `max_attempts` or before a sleep would overrun `total_budget` (the
    stricter sibling of `stop_after_delay`, which checks only after the fact)
    and re-raises the last LmsTransientError rather than tenacity's RetryError.
    `sleep` exists so tests can observe waits without spending them.
    `time_left` (`lms_client.deadline`) also stops before a sleep would
    reach the caller's deadline.
    """
    stop = stop_after_attempt(policy.max_attempts) | stop_before_delay(policy.total_budget)
    return AsyncRetrying(
        sleep=sleep or asyncio.sleep,
        stop=stop_any(stop, _stop_before_deadline(time_left)) if time_left else stop,
        wait=_wait(policy),
        retry=retry_if_exception(_retryable),
        reraise=True,
    )
