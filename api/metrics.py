"""Prometheus text for `/metrics`: the API's own request figures, the store's
gauges read at scrape time, and the workers' figures aggregated in Redis.

Three sources, one scrape:
- `RequestMetrics`: SCIM requests by route template, method and status, and
  their latency, counted in this process by `api.middleware`.
- Gauges read from Redis at scrape time: queue depth, users per sync
  state, age of the oldest pending change, the breaker (tripped, users
  held). Fleet totals always; per-tenant series only for the tenants with
  work (shadow/work.py), the `top_k` most in need of a look
  (METRICS_TENANT_TOP_K): an idle tenant is read on demand, by the admin
  API or `scim-bridge status` (docs/operations.md, "Sizing"). One pipeline
  reads their figures, so a scrape costs two round trips whatever the
  number of tenants (three when the queue has a Redis of its own), and
  its work follows the busy tenants.
- The workers' counters and histograms (sync lag, LMS calls), flushed by
  every worker into one hash (`worker.metrics`) and read with one HGETALL
  in the first of those round trips.

The Redis-sourced series are the same from every API process; sum the
request series over instances, and take any one instance's (or `max`) of
the rest. Should Redis not answer, the scrape still succeeds with the
process's own series and `scim_bridge_redis_up 0`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import msgspec
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shadow import keys
from shadow.metrics import METRICS_KEY, PREFIX, SERIES, decode_field
from shadow.work import TenantFigures, read_figures
from worker.health import HEALTH_KEY as WORKER_HEALTH_KEY
from worker.queue import QUEUE_NAME

__all__ = [
    "DEFAULT_TOP_K",
    "PREFIX",
    "SCIM_DURATION_BUCKETS",
    "Fleet",
    "RequestMetrics",
    "StoreFigures",
    "TenantFigures",
    "attention",
    "group_key",
    "read_store",
    "render_metrics",
    "share_requests",
    "store_families",
    "worker_families",
]

#: A SCIM answer is a few Redis round trips: milliseconds, not seconds.
SCIM_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: A scrape that cannot read Redis in this long reports `redis_up 0`.
STORE_READ_TIMEOUT_S = 5.0
_SCIM_LE = (*(repr(b) for b in SCIM_DURATION_BUCKETS), "+Inf")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_STATES = ("pending", "synced", "failed")
#: Tenants with work given per-tenant series, at most (METRICS_TENANT_TOP_K).
DEFAULT_TOP_K = 500


class RequestMetrics(Collector):
    """The SCIM request series of one API process, in a registry of its own
    (so that several apps in one process, as in tests, never collide).

    `observe` is on every request's path, so it is plain dict and list
    arithmetic (no lock: it runs on the event loop only); the Prometheus
    families are built from it at scrape time, on the loop too.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], int] = {}
        # per (route, method): a count per bucket (the last one +Inf), then the sum
        self._timings: dict[tuple[str, str], list[float]] = {}
        # per authenticated tenant (so bounded by the tenants): its 429s
        self._throttled: dict[str, int] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        ProcessCollector(namespace=PREFIX.rstrip("_"), registry=self.registry)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        if method not in _METHODS:  # methods come from clients: bound the labels
            method = "other"
        key = (route, method, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        timing = self._timings.get((route, method))
        if timing is None:
            timing = self._timings[(route, method)] = [0.0] * (len(SCIM_DURATION_BUCKETS) + 2)
        timing[bisect_left(SCIM_DURATION_BUCKETS, seconds)] += 1
        timing[-1] += seconds

    def throttled(self, tenant: str) -> None:
        """A SCIM request refused for its tenant's rate, requests in flight or scan budget."""
        self._throttled[tenant] = self._throttled.get(tenant, 0) + 1

    def snapshot(self) -> bytes:
        """This process's series as JSON, for the other processes of its
        group (`--processes`: `share_requests`)."""
        return msgspec.json.encode(
            {
                "counts": [[*key, n] for key, n in self._counts.items()],
                "timings": [[*key, t] for key, t in self._timings.items()],
                "throttled": list(self._throttled.items()),
            }
        )

    def add_snapshot(self, raw: bytes) -> None:
        """Add another process's `snapshot` into these series."""
        data = msgspec.json.decode(raw)
        for route, method, status, n in data.get("counts", []):
            key = (route, method, int(status))
            self._counts[key] = self._counts.get(key, 0) + int(n)
        for route, method, timing in data.get("timings", []):
            mine = self._timings.setdefault((route, method), [0.0] * len(timing))
            if len(mine) == len(timing):
                for i, value in enumerate(timing):
                    mine[i] += float(value)
        for tenant, n in data.get("throttled", []):
            self._throttled[tenant] = self._throttled.get(tenant, 0) + int(n)

    def collect(self) -> Iterator[Metric]:
        throttled = CounterMetricFamily(
            PREFIX + "scim_throttled",
            "SCIM requests answered 429: over their tenant's request rate, requests in flight "
            "or scan budget.",
            labels=("tenant",),
        )
        for tenant, count in sorted(self._throttled.items()):
            throttled.add_metric([tenant], count)
        yield throttled
        requests = CounterMetricFamily(
            PREFIX + "scim_requests",
            "SCIM requests answered, by route template, method and status.",
            labels=("route", "method", "status"),
        )
        for (route, method, status), count in sorted(self._counts.items()):
            requests.add_metric([route, method, str(status)], count)
        duration = HistogramMetricFamily(
            PREFIX + "scim_request_duration_seconds",
            "Time to answer a SCIM request, by route template and method.",
            labels=("route", "method"),
        )
        for (route, method), timing in sorted(self._timings.items()):
            running, buckets = 0.0, []
            for bound, observed in zip(_SCIM_LE, timing[:-1], strict=True):
                running += observed
                buckets.append((bound, running))
            duration.add_metric([route, method], buckets, timing[-1])
        yield requests
        yield duration


def group_key(group: str) -> str:
    """Hash index -> `RequestMetrics.snapshot` of one group of API processes
    sharing a port (cli/process_group.py); one hash tag, any Cluster node."""
    return f"{{scim-bridge:metrics}}:api:{group}"


#: How often a process of a group writes its snapshot, and how long the
#: group's hash outlives its last write.
SHARE_EVERY_S = 5.0
SHARE_KEPT_S = 86_400


async def share_requests(requests: RequestMetrics, redis: Redis, group: str, index: str) -> None:
    """Write this process's request series for its group every
    `SHARE_EVERY_S`, until cancelled: a scrape reaches one process of the
    group, which renders the sum (`render_metrics`), so the series are the
    whole port's, whichever process answers. A process restarted under the
    same index first takes up its predecessor's last snapshot, so the port's
    counters never go down (Prometheus would read the drop as a reset)."""
    key = group_key(group)
    with contextlib.suppress(RedisError, OSError, TimeoutError):
        previous = await redis.hget(key, index)  # type: ignore[misc]
        if previous:
            requests.add_snapshot(previous)
    while True:
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, index, requests.snapshot())  # type: ignore[arg-type]
                pipe.expire(key, SHARE_KEPT_S)
                await pipe.execute()
        await asyncio.sleep(SHARE_EVERY_S)


async def _group_requests(
    requests: RequestMetrics, redis: Redis, group: str, index: str
) -> list[Metric]:
    """The group's request series: this process's own, live, plus the others'
    last snapshots."""
    combined = RequestMetrics()
    combined.add_snapshot(requests.snapshot())
    with contextlib.suppress(RedisError, OSError, TimeoutError):
        async with asyncio.timeout(STORE_READ_TIMEOUT_S):
            others = await redis.hgetall(group_key(group))  # type: ignore[misc]
            for field, raw in others.items():
                if (field.decode() if isinstance(field, bytes) else field) != index:
                    combined.add_snapshot(raw)
    return [m for m in combined.collect()] + [
        m for m in requests.registry.collect() if not m.name.startswith(PREFIX + "scim_")
    ]


class StoreFigures(NamedTuple):
    #: The tenants with per-tenant series: those with work, `top_k` at most.
    tenants: list[TenantFigures]
    worker: dict[bytes, bytes]
    arq_queue_depth: int | None
    # Whether arq's health key exists: some worker's main loop ran lately.
    worker_alive: bool | None = None
    #: Tenants configured, and those with work (shadow/work.py).
    tenant_count: int = 0
    fleet: Fleet | None = None


class Fleet(NamedTuple):
    """Totals over every tenant: exact, as an idle tenant adds nothing to
    them (no pending, failed, queued or held users)."""

    with_work: int
    pending: int
    failed: int
    queued: int
    held: int
    tripped: int
    oldest_pending_ms: int | None
    #: Tenants with work left without per-tenant series by `top_k`.
    left_out: int


def attention(f: TenantFigures) -> tuple[int, int, int, float, str]:
    """Sort key, most in need of a look first: breaker, failed, pending,
    oldest pending; then the slug (the admin list sorts the same way)."""
    oldest = float(f.oldest_pending_ms) if f.oldest_pending_ms is not None else float("inf")
    return (-int(f.breaker_tripped or f.held > 0), -f.failed, -f.pending, oldest, f.tenant)


async def read_store(
    redis: Redis, queue: Redis | None = None, *, top_k: int = DEFAULT_TOP_K
) -> StoreFigures:
    """Everything the scrape needs from Redis, in two round trips (three with
    `queue`, the arq queue's Redis when it is not `redis`). It reads the
    tenants with work only: its cost follows them, not every tenant."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.scard(keys.TENANTS)
        pipe.zrange(keys.TENANTS_WORK, 0, -1)
        pipe.hgetall(METRICS_KEY)
        if queue is None:
            pipe.zcard(QUEUE_NAME)
            pipe.exists(WORKER_HEALTH_KEY)
        first = await pipe.execute()
    busy = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in first[1])
    figures = await read_figures(redis, busy)
    ranked = sorted(figures, key=attention)
    oldest = [f.oldest_pending_ms for f in figures if f.oldest_pending_ms is not None]
    fleet = Fleet(
        with_work=len(figures),
        pending=sum(f.pending for f in figures),
        failed=sum(f.failed for f in figures),
        queued=sum(f.queued for f in figures),
        held=sum(f.held for f in figures),
        tripped=sum(1 for f in figures if f.breaker_tripped),
        oldest_pending_ms=min(oldest) if oldest else None,
        left_out=max(0, len(ranked) - top_k),
    )
    if queue is None:
        depth, alive = int(first[3]), bool(first[4])
    else:
        async with queue.pipeline(transaction=False) as pipe:
            pipe.zcard(QUEUE_NAME)
            pipe.exists(WORKER_HEALTH_KEY)
            depth_raw, alive_raw = await pipe.execute()
        depth, alive = int(depth_raw), bool(alive_raw)
    shown = sorted(ranked[:top_k], key=lambda f: f.tenant)
    return StoreFigures(shown, first[2], depth, alive, int(first[0]), fleet)


def store_families(figures: StoreFigures, now: float | None = None) -> list[Metric]:
    """The per-tenant gauges of the tenants shown, the fleet's totals (and
    the arq queue's depth)."""
    now_ms = (time.time() if now is None else now) * 1000
    tenants = GaugeMetricFamily(
        PREFIX + "tenants", "Tenants configured.", value=figures.tenant_count
    )
    depth = GaugeMetricFamily(
        PREFIX + "queue_depth",
        "Sync jobs queued for the tenant (users with a job waiting or deferred).",
        labels=("tenant",),
    )
    users = GaugeMetricFamily(PREFIX + "users", "Users by sync state.", labels=("tenant", "state"))
    oldest = GaugeMetricFamily(
        PREFIX + "oldest_pending_seconds",
        "Age of the tenant's oldest pending change (0 when none is pending).",
        labels=("tenant",),
    )
    tripped = GaugeMetricFamily(
        PREFIX + "breaker_tripped",
        "1 while the tenant's mass-deactivation breaker is tripped.",
        labels=("tenant",),
    )
    held = GaugeMetricFamily(
        PREFIX + "users_held",
        "Deactivations held by the tenant's breaker, waiting for approve or cancel.",
        labels=("tenant",),
    )
    for t in figures.tenants:
        depth.add_metric([t.tenant], t.queued)
        tripped.add_metric([t.tenant], int(t.breaker_tripped))
        held.add_metric([t.tenant], t.held)
        for state, count in zip(_STATES, (t.pending, t.synced, t.failed), strict=True):
            users.add_metric([t.tenant, state], count)
        age = (
            0.0 if t.oldest_pending_ms is None else max(0.0, (now_ms - t.oldest_pending_ms) / 1000)
        )
        oldest.add_metric([t.tenant], age)
    families: list[Metric] = [tenants, depth, users, oldest, tripped, held]
    if figures.fleet is not None:
        families += fleet_families(figures.fleet, now_ms)
    if figures.worker_alive is not None:
        families.append(
            GaugeMetricFamily(
                PREFIX + "worker_up",
                "1 while some worker of the queue refreshes arq's health key.",
                value=int(figures.worker_alive),
            )
        )
    if figures.arq_queue_depth is not None:
        families.append(
            GaugeMetricFamily(
                PREFIX + "arq_queue_depth",
                "Jobs in the arq queue, all tenants, due or deferred.",
                value=figures.arq_queue_depth,
            )
        )
    return families


def fleet_families(fleet: Fleet, now_ms: float) -> list[Metric]:
    """Totals over every tenant, always present whatever `top_k` leaves out."""
    users = GaugeMetricFamily(
        PREFIX + "fleet_users",
        "Users pending or failed, all tenants together.",
        labels=("state",),
    )
    users.add_metric(["pending"], fleet.pending)
    users.add_metric(["failed"], fleet.failed)
    age = 0.0
    if fleet.oldest_pending_ms is not None:
        age = max(0.0, (now_ms - fleet.oldest_pending_ms) / 1000)
    return [
        users,
        GaugeMetricFamily(
            PREFIX + "fleet_queue_depth", "Sync jobs queued, all tenants.", value=fleet.queued
        ),
        GaugeMetricFamily(
            PREFIX + "fleet_oldest_pending_seconds",
            "Age of the oldest pending change of any tenant (0 when none is pending).",
            value=age,
        ),
        GaugeMetricFamily(
            PREFIX + "fleet_users_held",
            "Deactivations held by breakers, all tenants.",
            value=fleet.held,
        ),
        GaugeMetricFamily(
            PREFIX + "tenants_breaker_tripped",
            "Tenants whose mass-deactivation breaker is tripped.",
            value=fleet.tripped,
        ),
        GaugeMetricFamily(
            PREFIX + "tenants_with_work",
            "Tenants with users pending, queued or failed, or deactivations held.",
            value=fleet.with_work,
        ),
        GaugeMetricFamily(
            PREFIX + "tenants_unlisted",
            "Tenants with work shown without per-tenant series (over METRICS_TENANT_TOP_K).",
            value=fleet.left_out,
        ),
    ]


def worker_families(raw: dict[bytes, bytes], tenants: set[str] | None = None) -> list[Metric]:
    """The workers' series from the hash they flush into (`worker.metrics`);
    with `tenants`, only theirs (every series is labelled by tenant first)."""
    counters: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in SERIES}
    histograms: dict[str, dict[tuple[str, ...], dict[str, float]]] = {n: {} for n in SERIES}
    for field, value in raw.items():
        key = decode_field(field)
        if key is None:
            continue
        name, labels, part = key[0], key[1:-1], key[-1]
        if tenants is not None and labels and labels[0] not in tenants:
            continue
        if SERIES[name].kind == "counter":
            counters[name][labels] = float(value)
        else:
            histograms[name].setdefault(labels, {})[part] = float(value)
    families: list[Metric] = []
    for name, series in SERIES.items():
        if series.kind == "counter":
            counter = CounterMetricFamily(PREFIX + name, series.help, labels=series.labels)
            for labels, total in sorted(counters[name].items()):
                counter.add_metric(labels, total)
            families.append(counter)
            continue
        histogram = HistogramMetricFamily(PREFIX + name, series.help, labels=series.labels)
        bounds = [repr(float(b)) for b in series.buckets]
        for labels, parts in sorted(histograms[name].items()):
            histogram.add_metric(labels, _cumulate(bounds, parts), parts.get("sum", 0.0))
        families.append(histogram)
    return families


def _cumulate(bounds: Sequence[str], parts: dict[str, float]) -> list[tuple[str, float]]:
    running = 0.0
    buckets = []
    for bound in bounds:
        running += parts.get(bound, 0.0)
        buckets.append((bound, running))
    buckets.append(("+Inf", max(running, parts.get("count", 0.0))))
    return buckets


class _Scrape(Collector):
    """One scrape: the process's families (collected on the loop), and the
    store's and workers' built from what was read, when it was."""

    def __init__(self, own: list[Metric], figures: StoreFigures | None) -> None:
        self._own = own
        self._figures = figures

    def collect(self) -> Iterator[Metric]:
        yield from self._own
        if self._figures is not None:
            yield from store_families(self._figures)
            shown = {t.tenant for t in self._figures.tenants}
            yield from worker_families(self._figures.worker, shown)
        up = 0 if self._figures is None else 1
        yield GaugeMetricFamily(
            PREFIX + "redis_up", "1 when this scrape could read Redis.", value=up
        )


async def render_metrics(
    requests: RequestMetrics,
    redis: Redis,
    queue: Redis | None = None,
    *,
    top_k: int = DEFAULT_TOP_K,
    group: tuple[str, str] | None = None,
) -> bytes:
    """The whole `/metrics` body; never raises for a Redis outage. `top_k`:
    tenants with work given per-tenant series at most (`read_store`);
    `group`: (group, index) of a process sharing its port with others, whose
    request series are summed with theirs (`share_requests`)."""
    # The process's own series are read on the event loop that writes them.
    if group is None:
        own = list(requests.registry.collect())
    else:
        own = await _group_requests(requests, redis, *group)
    figures: StoreFigures | None = None
    with contextlib.suppress(RedisError, OSError, TimeoutError):
        async with asyncio.timeout(STORE_READ_TIMEOUT_S):
            figures = await read_store(redis, queue, top_k=top_k)
    # Thousands of tenants make tens of thousands of lines: build and render
    # them off the event loop (from data no one else touches).
    return await asyncio.to_thread(generate_latest, _Scrape(own, figures))
