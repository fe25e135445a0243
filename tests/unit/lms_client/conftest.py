"""Fixtures of the LMS client tests: a respx router standing in for the
organisation's LMS at `BASE`, and a client whose retry waits are recorded
(`sleeps`) rather than spent. A module sets the client's `retry_policy`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import respx

from lms_client import LmsClient, RetryPolicy
from tests.support.lms_answers import BASE, KEY, Sleeps


@pytest.fixture
def lms() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def client(sleeps: Sleeps, retry_policy: RetryPolicy) -> AsyncIterator[LmsClient]:
    async with LmsClient(BASE, KEY, retry=retry_policy, sleep=sleeps) as lms_client:
        yield lms_client
