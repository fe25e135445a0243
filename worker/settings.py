"""arq worker settings: declarations only (docs/architecture.md, "Conventions").

`worker_options(settings)` is the one place the arq `Worker` is described;
`WorkerSettings` exposes it, configured from the environment, to arq's own
CLI (`arq worker.settings.WorkerSettings [--check]`), and `run_worker` runs
it in-process for `scim-bridge worker`. Connections are made in
`on_startup`, never at import.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx
from arq.cron import CronJob
from arq.typing import StartupShutdown
from arq.worker import Function, Worker, func

from core.connect import check_queue_placement, connect_queue, queue_settings
from core.settings import Settings, load_settings
from lms_client import RetryPolicy
from worker.activity import sample_queues_cron
from worker.claim import REDIS_LOST, BatchClaimWorker
from worker.deps import SyncMetrics, WorkerDeps
from worker.liveness import Liveness
from worker.metrics import MetricsFlusher, WorkerMetrics, bind_job_log_context
from worker.queue import QUEUE_NAME, SYNC_USER
from worker.reconcile import reconcile_function, reconcile_schedule_cron
from worker.rules import followups_function, resync_function
from worker.sweep import sweep_cron
from worker.sync import sync_user
from worker.webhooks import deliver_webhook_function

__all__ = [
    "SYNC_MAX_TRIES",
    "create_worker",
    "run_worker",
    "worker_options",
    "worker_settings_class",
]

#: Deferrals (pacing, LMS faults, a busy lock) count as tries in arq, so the
#: limit is high; an outage is ridden out by deferrals, not by giving up.
SYNC_MAX_TRIES = 1000
#: How often the worker refreshes its health key (what `arq --check` reads).
HEALTH_CHECK_INTERVAL_S = 10
#: Pause before a worker that lost Redis starts afresh.
RECONNECT_DELAY_S = 1.0

logger = logging.getLogger("worker.settings")


def worker_options(
    settings: Settings,
    *,
    http: httpx.AsyncClient | None = None,
    retry: RetryPolicy | None = None,
    metrics: SyncMetrics | None = None,
) -> dict[str, Any]:
    """Keyword arguments of arq's `Worker` for these settings.

    `http`, `retry` and `metrics` go to `WorkerDeps.open` (tests pass an
    httpx client over the sandbox's ASGI app and a fast retry policy).
    """
    check_queue_placement(settings.redis_url, settings.queue_redis_url)

    async def startup(ctx: dict[str, Any]) -> None:
        observed = metrics or WorkerMetrics()
        ctx["deps"] = WorkerDeps.open(
            settings, ctx["redis"], http=http, retry=retry, metrics=observed
        )
        liveness = ctx.get("liveness")
        if isinstance(liveness, Liveness):  # locks name their holder (worker/liveness.py)
            ctx["deps"].sync.name_holder(liveness.worker_id, liveness.is_gone)
        if isinstance(observed, WorkerMetrics):  # observability: flushed into Redis
            ctx["metrics_flusher"] = MetricsFlusher(observed, ctx["deps"].redis)
            ctx["metrics_flusher"].start()

    async def shutdown(ctx: dict[str, Any]) -> None:
        flusher = ctx.pop("metrics_flusher", None)
        if isinstance(flusher, MetricsFlusher):
            await flusher.stop()
        deps = ctx.pop("deps", None)
        if isinstance(deps, WorkerDeps):
            await deps.aclose()

    functions: Sequence[Function] = [
        func(
            sync_user,
            name=SYNC_USER,
            max_tries=SYNC_MAX_TRIES,
            timeout=settings.job_timeout_s,
            keep_result=0,
        ),
        reconcile_function(),
        resync_function(settings.job_timeout_s),
        followups_function(settings.job_timeout_s),
        deliver_webhook_function(),
    ]
    schedule = reconcile_schedule_cron(settings)
    cron_jobs: Sequence[CronJob] = [
        sweep_cron(settings),
        sample_queues_cron(),
        *([schedule] if schedule else []),
    ]
    on_startup: StartupShutdown = startup
    on_shutdown: StartupShutdown = shutdown
    return {
        "functions": functions,
        "cron_jobs": cron_jobs,
        "queue_name": QUEUE_NAME,
        "redis_settings": queue_settings(settings.queue_url),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "on_job_start": bind_job_log_context,  # job, tenant, user on every log line
        "max_jobs": settings.max_jobs,
        # arq polls its queue; the sync lag of a lone change is about half this.
        "poll_delay": settings.poll_delay_s,
        # Read only by arq's own CLI worker: the bridge's worker reads the
        # queue itself, as many due jobs as it has free slots, skipping
        # running ones (worker/claim.py).
        "queue_read_limit": 20,
        "job_timeout": settings.job_timeout_s,
        "keep_result": 0,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
    }


def create_worker(
    settings: Settings,
    *,
    burst: bool = False,
    http: httpx.AsyncClient | None = None,
    retry: RetryPolicy | None = None,
    metrics: SyncMetrics | None = None,
    **worker_args: Any,
) -> BatchClaimWorker:
    """An arq worker for these settings, made inside the loop it will run on;
    `worker_args` override arq's own (e.g. `handle_signals=False`). It claims
    due jobs in batches (worker/claim.py); arq's own CLI, which builds a plain
    `Worker` from `WorkerSettings`, runs the same jobs one claim at a time.

    Its queue client comes from `connect_queue`, not arq's `create_pool`: the
    same connect and read timeouts and capped pool as every other client
    (docs/operations.md, "Redis timeouts"), so a Redis that hangs ends the
    run (and `run_worker` starts afresh) instead of hanging the worker."""
    options = worker_options(settings, http=http, retry=retry, metrics=metrics)
    pool = connect_queue(settings.queue_url)
    return BatchClaimWorker(**{**options, "burst": burst, "redis_pool": pool, **worker_args})


def run_worker(settings: Settings, *, burst: bool = False, **worker_args: Any) -> Worker:
    """Run a worker in this process on a loop of its own until a signal (or,
    with `burst`, until the queue is empty): what `scim-bridge worker` calls.

    arq's poll loop ends on the first Redis connection error, so when Redis
    restarts or fails over the worker abandons its jobs (worker/claim.py),
    logs one line and starts afresh after a pause instead of exiting: a lost
    Redis only delays (docs/architecture.md, invariant 2). The new run hands back the
    previous run's claims and locks as it starts.
    """
    previous = ""
    while True:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        worker: BatchClaimWorker | None = None
        try:
            worker = create_worker(settings, burst=burst, previous=previous, **worker_args)
            worker.run()
            return worker
        except REDIS_LOST as exc:
            previous = worker.worker_id if worker is not None else previous
            logger.warning(
                "lost Redis (%s: %s); %d running jobs cancelled and handed back; "
                "restarting the worker in %.0fs",
                type(exc).__name__,
                _first_line(exc),
                worker.jobs_abandoned if worker is not None else 0,
                RECONNECT_DELAY_S,
            )
        finally:
            _drain(loop)
            asyncio.set_event_loop(None)
            loop.close()
        time.sleep(RECONNECT_DELAY_S)


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and await whatever still runs on a loop about to close, so
    nothing is destroyed pending or resumed on another loop."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""


def worker_settings_class(settings: Settings) -> type:
    """A `WorkerSettings` class (arq reads its attributes) for these settings."""
    return type("WorkerSettings", (), {"__doc__": "arq settings", **worker_options(settings)})


def __getattr__(name: str) -> Any:
    """`WorkerSettings`, for arq's CLI, is built from the environment on first
    use rather than at import, so importing this module reads no settings."""
    if name == "WorkerSettings":
        cls = worker_settings_class(load_settings())
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
