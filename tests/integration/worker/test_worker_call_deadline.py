"""No overlapping LMS writes for one learner: with an LMS slower than the
job timeout, every call ends before its job's timeout (so before the user's
lock, which outlives it, can expire) and the job defers instead of being
cut off mid-call by arq; two workers never have calls for the user in flight
at once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import httpx
import msgspec
import pytest
from arq.connections import ArqRedis

from core.settings import Settings
from lms_sandbox.config import KnobsUpdate
from tests.support.worker_fixtures import FAST, ORG, SandboxLms, put_user, scim_user
from worker.claim import CALL_MARGIN_S
from worker.deps import WorkerDeps
from worker.queue import enqueue_sync
from worker.settings import create_worker

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning:arq")

JOB_TIMEOUT_S = 2.0


async def test_calls_to_an_lms_slower_than_the_job_timeout_end_before_the_lock_can(
    worker_settings: Settings, deps: WorkerDeps, queue: ArqRedis, lms: SandboxLms, tenant: object
) -> None:
    lms.sandbox.update_knobs(KnobsUpdate(latency_ms=2_500))  # every answer after the timeout
    spans: list[tuple[float, float]] = []
    transport = lms.http._transport
    send = transport.handle_async_request

    async def timed(request: httpx.Request) -> httpx.Response:
        started = time.monotonic()
        try:
            return await send(request)
        finally:
            spans.append((started, time.monotonic()))

    transport.handle_async_request = timed  # type: ignore[method-assign]
    await put_user(deps, "u-1", scim_user())
    due = await deps.sync.queued_due(ORG, "u-1")
    assert due is not None
    await enqueue_sync(queue, ORG, "u-1", due)

    settings = msgspec.structs.replace(worker_settings, job_timeout_s=JOB_TIMEOUT_S)
    workers = [
        create_worker(
            settings, http=lms.http, retry=FAST, handle_signals=False, poll_delay=0.02, cron_jobs=[]
        )
        for _ in range(2)
    ]
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(w.async_run() for w in workers)), 5.0)
    finally:
        for worker in workers:
            await worker.close()

    assert spans, "no LMS call was made"
    assert all(end - start < JOB_TIMEOUT_S - CALL_MARGIN_S + 0.1 for start, end in spans), spans
    ordered = sorted(spans)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ordered)), ordered
    assert sum(w.jobs_failed for w in workers) == 0  # arq never had to cut a job off
    assert (await deps.sync.counts(ORG)).pending == 1  # waiting for the LMS, not failed
