"""The worker's metrics, aggregated through Redis for the API's `/metrics`.

A worker counts in memory (`WorkerMetrics`, the `SyncMetrics` of the jobs
and the LMS clients' `on_call`) and a `MetricsFlusher` adds the deltas into
one Redis hash every few seconds, in one MULTI/EXEC pipeline of
HINCRBYFLOAT: never a Redis write per job or per LMS call. Every worker adds
into the same hash, so the API renders the whole fleet's figures from one
HGETALL and one scrape target gives everything. Counters in the hash only
grow (they survive worker restarts; Prometheus sees a reset only when the
hash is lost). A flush that fails puts its deltas back for the next one.

Histograms are stored as per-bucket counts (not cumulative), plus `sum` and
`count`; the API cumulates them when it renders. The hash's layout and the
series' names are shadow/metrics.py's, which the API reads too.

Label values are tenant slugs, endpoint templates from `lms_client`
("PATCH /learners/{id}") and HTTP statuses: never ids, emails or keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any

from redis.asyncio import Redis

from core.logs import bind_log_context
from shadow.metrics import (
    FLUSH_INTERVAL_S,
    LMS_CALLS,
    LMS_DURATION,
    LMS_DURATION_BUCKETS,
    LMS_RATE_LIMITED,
    LMS_RETRIES,
    METRICS_KEY,
    SYNC_LAG,
    SYNC_LAG_BUCKETS,
    Key,
    Series,
    encode_field,
)

__all__ = ["MetricsFlusher", "WorkerMetrics", "bind_job_log_context"]

logger = logging.getLogger("worker.metrics")

_LE: dict[tuple[float, ...], tuple[str, ...]] = {
    b: (*(repr(float(x)) for x in b), "+Inf") for b in (SYNC_LAG_BUCKETS, LMS_DURATION_BUCKETS)
}

# The endpoint of the last LMS attempt made by this task: a retry is always
# of the attempt just made, in the same task (tenacity sleeps, then repeats).
_last_endpoint: ContextVar[str] = ContextVar("scim_bridge_lms_endpoint", default="unknown")


class WorkerMetrics:
    """The worker's `SyncMetrics`: in-memory deltas, cheap enough for every
    job and LMS attempt (a few dict updates, no I/O, no lock: one event loop)."""

    def __init__(self) -> None:
        self._deltas: dict[Key, float] = {}

    # -- SyncMetrics --------------------------------------------------------

    def sync_lag(self, tenant: str, seconds: float) -> None:
        self._observe(SYNC_LAG, (tenant,), seconds)

    def lms_call(self, tenant: str, endpoint: str, outcome: str, seconds: float) -> None:
        _last_endpoint.set(endpoint)
        self._add((LMS_CALLS.name, tenant, endpoint, outcome, ""))
        self._observe(LMS_DURATION, (tenant, endpoint), seconds)
        if outcome == "429":
            self._add((LMS_RATE_LIMITED.name, tenant, endpoint, ""))

    def lms_retry(self, tenant: str) -> None:
        self._add((LMS_RETRIES.name, tenant, _last_endpoint.get(), ""))

    # -- aggregation ---------------------------------------------------------

    def _add(self, key: Key, amount: float = 1.0) -> None:
        self._deltas[key] = self._deltas.get(key, 0.0) + amount

    def _observe(self, series: Series, labels: tuple[str, ...], value: float) -> None:
        le = _LE[series.buckets][bisect_left(series.buckets, value)]
        self._add((series.name, *labels, le))
        self._add((series.name, *labels, "sum"), value)
        self._add((series.name, *labels, "count"))

    def pending(self) -> Mapping[Key, float]:
        """What the next flush would add (for tests and the shutdown log)."""
        return dict(self._deltas)

    async def flush(self, redis: Redis) -> int:
        """Add the deltas into `METRICS_KEY` in one MULTI/EXEC round trip;
        the number of fields written. On failure the deltas are kept."""
        deltas, self._deltas = self._deltas, {}
        if not deltas:
            return 0
        try:
            async with redis.pipeline(transaction=True) as pipe:
                for key, amount in deltas.items():
                    pipe.hincrbyfloat(METRICS_KEY, encode_field(key), amount)
                await pipe.execute()
        except BaseException:
            self._merge(deltas.items())
            raise
        return len(deltas)

    def _merge(self, items: Iterable[tuple[Key, float]]) -> None:
        for key, amount in items:
            self._add(key, amount)


class MetricsFlusher:
    """Flushes a `WorkerMetrics` every `interval` seconds until stopped, then
    once more, so a worker that stops cleanly loses nothing."""

    def __init__(
        self, metrics: WorkerMetrics, redis: Redis, interval: float = FLUSH_INTERVAL_S
    ) -> None:
        self.metrics = metrics
        self.redis = redis
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="scim-bridge-metrics-flush")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._flush_once()

    async def _flush_once(self) -> None:
        try:
            await self.metrics.flush(self.redis)
        except Exception as exc:  # Redis down: keep counting, try again later
            logger.warning("metrics flush failed: %s", type(exc).__name__)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._flush_once()


async def bind_job_log_context(ctx: dict[str, Any]) -> None:
    """arq `on_job_start`: every line logged by the job names its job id, and
    the tenant and user a sync job id carries (`worker.queue.sync_job_id`).

    arq runs this in the job's own task, just before it starts the job
    function (which inherits the binding); the binding ends with the task.
    """
    job_id = ctx.get("job_id")
    if not isinstance(job_id, str):
        return
    kind, _, rest = job_id.partition(":")
    tenant, _, rest = rest.partition(":")
    user_id, _, due = rest.rpartition(":")
    if kind == "sync" and tenant and user_id and due.isdigit():
        bind_log_context(job_id=job_id, tenant=tenant, user_id=user_id)
    else:
        bind_log_context(job_id=job_id)
