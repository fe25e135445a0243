"""What one tenant may hold of a worker (worker/fairness.py): a capped share
of its job slots; an LMS that keeps giving no answer pauses its tenant as a
Retry-After would; and no LMS parks a tenant for longer than
MAX_RETRY_AFTER_S, whatever Retry-After it sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from arq.connections import ArqRedis
from arq.worker import Retry

from core.settings import Settings
from lms_client import MAX_RETRY_AFTER_S
from lms_sandbox.config import KnobsUpdate
from shadow import Tenant, keys
from tests.support.worker_fixtures import (
    BASE,
    FAST,
    KEY,
    ORG,
    SandboxLms,
    put_user,
    run_sync,
    scim_user,
)
from worker.deps import WorkerDeps
from worker.fairness import NO_ANSWER_PAUSE_S, NO_ANSWERS_BEFORE_PAUSE
from worker.sync import sync_user


@pytest.fixture
async def capped(
    worker_settings: Settings, queue: ArqRedis, lms: SandboxLms
) -> AsyncIterator[WorkerDeps]:
    """Worker deps whose tenants may run two jobs at once."""
    settings = msgspec.structs.replace(worker_settings, tenant_max_jobs=2)
    built = WorkerDeps.open(settings, queue, http=lms.http, retry=FAST)
    try:
        yield built
    finally:
        await built.aclose()
        await lms.http.aclose()


async def test_a_tenant_past_its_share_of_a_workers_slots_waits_and_others_do_not(
    capped: WorkerDeps, lms: SandboxLms
) -> None:
    for slug in (ORG, "beta"):
        await capped.tenants.create(
            Tenant(slug=slug, name=slug, lms_url=BASE, lms_api_key=KEY, lms_rate=0, lms_burst=1)
        )
    for n in range(3):
        await put_user(capped, f"u-{n}", scim_user(f"u{n}@example.com"))
    await capped.resources.write("beta", "u", "b-1", "create", scim_user("b@example.com"))
    slow_lms, both_held = asyncio.Event(), asyncio.Event()
    held: list[str] = []

    async def slow(request: httpx.Request) -> None:
        if b"@example.com" in request.content and b'"b@example.com"' not in request.content:
            held.append(request.content.decode())
            if len(held) == 2:
                both_held.set()
            await slow_lms.wait()

    lms.on_request.append(slow)
    running = [asyncio.create_task(run_sync(capped, f"u-{n}")) for n in range(2)]
    await both_held.wait()  # both jobs wait on the slow LMS
    calls = len(lms.calls)
    with pytest.raises(Retry) as third:
        await run_sync(capped, "u-2")
    assert third.value.defer_score is not None
    assert 1_000 <= third.value.defer_score <= 5_000
    assert len(lms.calls) == calls  # deferred before any work
    assert await sync_user({"deps": capped}, "beta", "b-1") == "synced"
    slow_lms.set()
    assert await asyncio.gather(*running) == ["synced", "synced"]
    assert capped.slots.running(ORG) == 0
    assert await run_sync(capped, "u-2") == "synced"


async def test_an_lms_that_keeps_giving_no_answer_pauses_its_tenant(
    deps: WorkerDeps, lms: SandboxLms, tenant: Tenant
) -> None:
    async def no_answer(request: httpx.Request) -> None:
        raise httpx.ReadTimeout("the LMS took too long", request=request)

    lms.on_request.append(no_answer)
    users = [f"u-{n}" for n in range(NO_ANSWERS_BEFORE_PAUSE + 1)]
    for n, uid in enumerate(users):
        await put_user(deps, uid, scim_user(f"u{n}@example.com"))
    for uid in users[:NO_ANSWERS_BEFORE_PAUSE]:
        before = len(lms.calls)
        with pytest.raises(Retry):
            await run_sync(deps, uid)
        assert len(lms.calls) > before  # each of these still tried the LMS
    # The tenant is paused now: its next job waits without calling the LMS.
    before = len(lms.calls)
    with pytest.raises(Retry) as paused:
        await run_sync(deps, users[-1])
    assert len(lms.calls) == before
    assert paused.value.defer_score is not None
    assert paused.value.defer_score >= (NO_ANSWER_PAUSE_S - 5) * 1000
    assert await deps.sync.users_in(ORG, "pending", limit=100) == sorted(users)


async def test_a_huge_retry_after_pauses_a_tenant_no_longer_than_the_cap(
    deps: WorkerDeps, lms: SandboxLms, tenant: Tenant
) -> None:
    await put_user(deps, "u-1", scim_user())
    lms.sandbox.update_knobs(KnobsUpdate(outage_seconds=86_400))  # 503, Retry-After: a day
    with pytest.raises(Retry) as deferred:
        await run_sync(deps, "u-1")
    assert deferred.value.defer_score is not None
    assert deferred.value.defer_score <= MAX_RETRY_AFTER_S * 1.1 * 1000 + 5_000
    # The pacing state that holds every worker's calls expires with the pause.
    paused_ms = await deps.redis.pttl(keys.limiter(ORG))
    assert 0 < paused_ms <= (MAX_RETRY_AFTER_S + 5) * 1000
