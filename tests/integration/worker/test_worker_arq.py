"""A real arq Worker, in burst mode, against Redis and the sandbox LMS: the
settings load and the job runs end to end (arq: tests/conftest.py)."""

from __future__ import annotations

import importlib
import time
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker, async_check_health, get_kwargs
from arq.worker import create_worker as arq_create_worker

from core.settings import Settings
from lms_sandbox import KnobsUpdate
from shadow import Tenant
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
from worker.queue import QUEUE_NAME, enqueue_sync
from worker.settings import SYNC_MAX_TRIES, create_worker, run_worker, worker_settings_class

# arq 0.28 closes its pool with redis-py 5's deprecated `close()`.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning:arq")


def burst_worker(settings: Settings, lms: SandboxLms, **extra: Any) -> Worker:
    """A burst worker without the sweep cron, whose run (at :00 and :30) would
    otherwise add to the job counts these tests assert."""
    extra.setdefault("cron_jobs", [])
    return create_worker(
        settings,
        burst=True,
        http=lms.http,
        retry=FAST,
        handle_signals=False,
        poll_delay=0.02,
        **extra,
    )


async def enqueue_written_user(deps: WorkerDeps, queue: ArqRedis, user_id: str) -> int:
    """What the API does: write the shadow, then enqueue at the slot it got."""
    await put_user(deps, user_id, scim_user(f"{user_id}@example.com"))
    due = await deps.sync.queued_due(ORG, user_id)
    assert due is not None
    await enqueue_sync(queue, ORG, user_id, due)
    return due


async def test_burst_worker_syncs_enqueued_users(
    worker_settings: Settings, deps: WorkerDeps, queue: ArqRedis, lms: SandboxLms, tenant: object
) -> None:
    for user_id in ("u-1", "u-2", "u-3"):
        await enqueue_written_user(deps, queue, user_id)

    worker = burst_worker(worker_settings, lms)
    try:
        await worker.async_run()
    finally:
        await worker.close()

    assert (worker.jobs_complete, worker.jobs_failed, worker.jobs_retried) == (3, 0, 0)
    assert sorted(x.external_ref or "" for x in lms.learners()) == ["u-1", "u-2", "u-3"]
    counts = await deps.sync.counts(ORG)
    assert (counts.pending, counts.synced, counts.queued) == (0, 3, 0)
    assert await queue.keys("arq:result:*") == []  # keep_result=0


async def test_burst_worker_defers_through_an_outage_and_then_syncs(
    worker_settings: Settings, deps: WorkerDeps, queue: ArqRedis, lms: SandboxLms, tenant: object
) -> None:
    await enqueue_written_user(deps, queue, "u-1")
    lms.sandbox.update_knobs(KnobsUpdate(outage_seconds=1))  # 503, Retry-After: 1

    started = time.monotonic()
    worker = burst_worker(worker_settings, lms)
    try:
        await worker.async_run()
    finally:
        await worker.close()

    assert (worker.jobs_complete, worker.jobs_failed, worker.jobs_retried) == (1, 0, 1)
    assert time.monotonic() - started >= 1.0
    [learner] = lms.learners()
    assert learner.external_ref == "u-1"
    assert (await deps.sync.counts(ORG)).synced == 1
    events = [e["event"] for e in reversed(await deps.sync.events(ORG, "u-1"))]
    assert events == [
        "scim_create",
        "job_started",
        "lms",
        "deferred",
        "job_started",
        "lms",
        "synced",
    ]


async def test_worker_settings_class_loads_in_arq_and_reports_health(
    worker_settings: Settings, redis_url: str, queue: ArqRedis
) -> None:
    cls = worker_settings_class(worker_settings)
    options: dict[str, Any] = get_kwargs(cls)
    assert options["queue_name"] == QUEUE_NAME
    functions = {f.name: f for f in options["functions"]}
    assert set(functions) == {
        "sync_user",
        "reconcile_tenant",
        "resync_rules",
        "drain_group_followups",
        "deliver_webhook",
    }
    function = functions["sync_user"]
    assert (function.max_tries, function.timeout_s, function.keep_result_s) == (
        SYNC_MAX_TRIES,
        worker_settings.job_timeout_s,
        0,
    )
    cron_jobs = {c.name: c for c in options["cron_jobs"]}
    assert set(cron_jobs) == {"sweep", "sample_queues"}
    assert cron_jobs["sweep"].second == {0, 30}
    assert cron_jobs["sample_queues"].second == 50

    worker = arq_create_worker(cls, burst=True, handle_signals=False, poll_delay=0.02)
    try:
        await worker.async_run()  # empty queue: starts, records health, stops
        assert isinstance(worker.ctx["deps"], WorkerDeps)
        health = await async_check_health(RedisSettings.from_dsn(redis_url), queue_name=QUEUE_NAME)
        assert health == 0
    finally:
        await worker.close()
    assert "deps" not in worker.ctx


def test_worker_settings_for_arq_cli_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/3")
    monkeypatch.setenv("WORKER_MAX_JOBS", "7")
    module = importlib.import_module("worker.settings")
    monkeypatch.delitem(module.__dict__, "WorkerSettings", raising=False)

    cls = module.WorkerSettings

    assert cls.max_jobs == 7
    assert (cls.redis_settings.port, cls.redis_settings.database) == (6390, 3)
    monkeypatch.delitem(module.__dict__, "WorkerSettings")


def test_run_worker_runs_in_process_until_the_queue_is_empty(redis_url: str) -> None:
    worker = run_worker(Settings(redis_url=redis_url), burst=True, poll_delay=0.02)

    assert (worker.jobs_complete, worker.jobs_failed) == (0, 0)
    assert "deps" not in worker.ctx  # on_shutdown closed what on_startup built


class Recorder:
    def __init__(self) -> None:
        self.lags: list[tuple[str, float]] = []
        self.calls: list[tuple[str, str, str]] = []

    def sync_lag(self, tenant: str, seconds: float) -> None:
        self.lags.append((tenant, seconds))

    def lms_call(self, tenant: str, endpoint: str, outcome: str, seconds: float) -> None:
        self.calls.append((tenant, endpoint, outcome))


async def test_metrics_hook_gets_sync_lag_and_lms_calls(
    worker_settings: Settings, queue: ArqRedis, lms: SandboxLms
) -> None:
    recorder = Recorder()
    observed = WorkerDeps.open(worker_settings, queue, http=lms.http, retry=FAST, metrics=recorder)
    await observed.tenants.create(
        Tenant(slug=ORG, name="Acme", lms_url=BASE, lms_api_key=KEY, lms_rate=20, lms_burst=40)
    )
    await put_user(observed, "u-1", scim_user())

    assert await run_sync(observed, "u-1") == "synced"

    [(tenant, lag)] = recorder.lags
    assert tenant == ORG
    assert 0 <= lag < 5
    assert recorder.calls == [(ORG, "POST /learners", "201")]
