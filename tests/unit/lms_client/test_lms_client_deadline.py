"""A deadline (lms_client.deadline) bounds every call made under it: none
starts without the time to end, a slow one is cut at it, retries stop short
of it. The worker sets one per job so calls end before the user's lock can."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from lms_client import (
    LmsClient,
    LmsDeferred,
    LmsTransientError,
    RetryPolicy,
    call_deadline,
    time_left,
)
from tests.support.lms_answers import BASE

LEARNER = "/api/v1/learners/7"
POLICY = RetryPolicy(max_attempts=5, initial_backoff=0.2, max_backoff=0.2, jitter=0.0)


@pytest.fixture
async def client() -> AsyncIterator[LmsClient]:
    """Real sleeps: these tests are about time running out."""
    async with LmsClient(BASE, "sk-test", retry=POLICY) as lms_client:
        yield lms_client


def test_deadlines_nest_and_the_earlier_one_wins() -> None:
    assert time_left() is None
    now = time.monotonic()
    with call_deadline(now + 10), call_deadline(now + 60):
        left = time_left()
        assert left is not None
        assert left <= 10
    assert time_left() is None


async def test_no_call_starts_without_the_time_to_end(
    lms: respx.MockRouter, client: LmsClient
) -> None:
    route = lms.get(LEARNER).respond(200)
    with call_deadline(time.monotonic() + 0.2), pytest.raises(LmsDeferred):
        await client.get(7)
    assert not route.called


async def test_a_call_slower_than_the_deadline_is_cut_off_at_it(
    lms: respx.MockRouter, client: LmsClient
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    lms.get(LEARNER).mock(side_effect=slow)
    started = time.monotonic()
    with call_deadline(started + 0.8), pytest.raises(LmsTransientError):
        await client.get(7)
    assert time.monotonic() - started < 1.0


async def test_retries_stop_before_a_wait_would_reach_the_deadline(
    lms: respx.MockRouter, client: LmsClient
) -> None:
    route = lms.get(LEARNER).respond(502)
    started = time.monotonic()
    with call_deadline(started + 0.9), pytest.raises(LmsTransientError):
        await client.get(7)
    assert time.monotonic() - started < 0.9
    assert 1 <= route.call_count < POLICY.max_attempts
