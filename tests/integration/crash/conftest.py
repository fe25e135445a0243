"""A crash lab over the test Redis and the in-process sandbox LMS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from shadow import Tenant
from tests.support.crash import Faults, Lab
from tests.support.worker_fixtures import BASE, KEY, ORG, SandboxLms


@pytest.fixture
def lms() -> SandboxLms:
    """The LMS without its rate limit: the lab moves the clock past waits."""
    return SandboxLms(rate=0)


@pytest.fixture
async def lab(redis: Redis, redis_url: str, lms: SandboxLms) -> AsyncIterator[Lab]:
    faults = Faults()
    faults.install()
    Faults.wrap_lms(lms)
    made = Lab(redis, redis_url, lms)
    try:
        async with made.running():
            await made.worker().tenants.create(
                Tenant(
                    slug=ORG,
                    name="Acme",
                    lms_url=BASE,
                    lms_api_key=KEY,
                    lms_rate=1000,
                    lms_burst=1000,
                )
            )
            made.token = (await made.worker().tenants.issue_token(ORG)).token
            yield made
    finally:
        faults.remove()
        await lms.http.aclose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many crash points each path has, all of them covered."""
    from tests.integration.crash.test_crash_paths import COVERED

    if not COVERED:
        return
    terminalreporter.section("crash points")
    for c in COVERED:
        terminalreporter.write_line(
            f"{c.path:<24} {c.redis_calls:>4} Redis commands {c.lms_calls:>3} LMS calls"
            f" x 3 faults = {3 * c.points:>4} runs, all recovered ({c.seconds:.1f}s);"
            f" jobs: {', '.join(c.jobs) or 'none'}"
        )
