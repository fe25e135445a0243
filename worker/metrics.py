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
`count`; the API cumulates them when it renders. The hash's layout is this
module's: `METRICS_KEY`, `encode_field`, `decode_field`.

Label values are tenant slugs, endpoint templates from `lms_client`
("PATCH /learners/{id}") and HTTP statuses: never ids, emails or keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, Final, NamedTuple

from redis.asyncio import Redis

from api.logs import bind_log_context

__all__ = [
    "FLUSH_INTERVAL_S",
    "LMS_DURATION_BUCKETS",
    "METRICS_KEY",
    "SERIES",
    "SYNC_LAG_BUCKETS",
    "MetricsFlusher",
    "Series",
    "WorkerMetrics",
    "bind_job_log_context",
    "decode_field",
    "encode_field",
]

logger = logging.getLogger("worker.metrics")

#: The one hash every worker adds into (a hash tag of its own, so the key can
#: sit on any Redis Cluster node).
METRICS_KEY: Final = "{scim-bridge:metrics}:worker"
FLUSH_INTERVAL_S: Final = 5.0

#: From a blink to an hour: a change waits behind pacing, deferrals, outages.
SYNC_LAG_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
#: One HTTP attempt; the client's read timeout is 30 s.
LMS_DURATION_BUCKETS: Final = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Series(NamedTuple):
    """One metric as stored in the hash and rendered by the API."""

    name: str  # without the `scim_bridge_` prefix
    kind: str  # "counter" | "histogram"
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()


SYNC_LAG = Series(
    "sync_lag_seconds",
    "histogram",
    ("tenant",),
    "Seconds from a user becoming pending (SCIM 2xx) to its change applied in the LMS.",
    SYNC_LAG_BUCKETS,
)
LMS_CALLS = Series(
    "lms_calls_total",
    "counter",
    ("tenant", "endpoint", "outcome"),
    "HTTP attempts to the LMS by endpoint template and outcome (status, or 'transport').",
)
LMS_DURATION = Series(
    "lms_call_duration_seconds",
    "histogram",
    ("tenant", "endpoint"),
    "Duration of one HTTP attempt to the LMS.",
    LMS_DURATION_BUCKETS,
)
LMS_RETRIES = Series(
    "lms_retries_total",
    "counter",
    ("tenant", "endpoint"),
    "LMS attempts repeated by the client's retry policy (after a 429, 5xx or no answer).",
)
LMS_RATE_LIMITED = Series(
    "lms_rate_limited_total",
    "counter",
    ("tenant", "endpoint"),
    "429 answers received from the LMS.",
)
SERIES: Final = {
    s.name: s for s in (SYNC_LAG, LMS_CALLS, LMS_DURATION, LMS_RETRIES, LMS_RATE_LIMITED)
}

_Key = tuple[str, ...]
"""(series name, *label values, part); part is "" for a counter, and
"sum", "count" or a bucket's upper bound ("0.5", "+Inf") for a histogram."""

_LE: dict[tuple[float, ...], tuple[str, ...]] = {
    b: (*(repr(float(x)) for x in b), "+Inf") for b in (SYNC_LAG_BUCKETS, LMS_DURATION_BUCKETS)
}

# The endpoint of the last LMS attempt made by this task: a retry is always
# of the attempt just made, in the same task (tenacity sleeps, then repeats).
_last_endpoint: ContextVar[str] = ContextVar("scim_bridge_lms_endpoint", default="unknown")


def encode_field(key: _Key) -> str:
    return json.dumps(key, separators=(",", ":"))


@lru_cache(maxsize=1 << 18)  # the same fields come back every scrape
def decode_field(field: bytes | str) -> _Key | None:
    """A hash field back to its key; None for anything not written here."""
    try:
        value = json.loads(field)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    series = SERIES.get(value[0]) if value else None
    if series is None or len(value) != len(series.labels) + 2:
        return None
    return tuple(value)


class WorkerMetrics:
    """The worker's `SyncMetrics`: in-memory deltas, cheap enough for every
    job and LMS attempt (a few dict updates, no I/O, no lock: one event loop)."""

    def __init__(self) -> None:
        self._deltas: dict[_Key, float] = {}

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

    def _add(self, key: _Key, amount: float = 1.0) -> None:
        self._deltas[key] = self._deltas.get(key, 0.0) + amount

    def _observe(self, series: Series, labels: tuple[str, ...], value: float) -> None:
        le = _LE[series.buckets][bisect_left(series.buckets, value)]
        self._add((series.name, *labels, le))
        self._add((series.name, *labels, "sum"), value)
        self._add((series.name, *labels, "count"))

    def pending(self) -> Mapping[_Key, float]:
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

    def _merge(self, items: Iterable[tuple[_Key, float]]) -> None:
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
