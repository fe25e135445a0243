"""Prometheus text for `/metrics`: the API's own request figures, the store's
gauges read at scrape time, and the workers' figures aggregated in Redis.

Three sources, one scrape:
- `RequestMetrics`: SCIM requests by route template, method and status, and
  their latency, counted in this process by `api.middleware`.
- Gauges per tenant read from Redis at scrape time: queue depth, users per
  sync state, age of the oldest pending change, the breaker (tripped, users
  held). One pipeline reads every tenant's figures (seven O(1)/O(log n)
  commands each), so a scrape costs
  two round trips whatever the number of tenants (three when the queue has
  a Redis of its own).
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
from worker.health import HEALTH_KEY as WORKER_HEALTH_KEY
from worker.queue import QUEUE_NAME

__all__ = [
    "PREFIX",
    "SCIM_DURATION_BUCKETS",
    "RequestMetrics",
    "StoreFigures",
    "TenantFigures",
    "read_store",
    "render_metrics",
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


class TenantFigures(NamedTuple):
    tenant: str
    pending: int
    synced: int
    failed: int
    queued: int
    oldest_pending_ms: int | None
    breaker_tripped: bool = False
    held: int = 0


class StoreFigures(NamedTuple):
    tenants: list[TenantFigures]
    worker: dict[bytes, bytes]
    arq_queue_depth: int | None
    # Whether arq's health key exists: some worker's main loop ran lately.
    worker_alive: bool | None = None


async def read_store(redis: Redis, queue: Redis | None = None) -> StoreFigures:
    """Everything the scrape needs from Redis, in two round trips (three with
    `queue`, the arq queue's Redis when it is not `redis`)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.smembers(keys.TENANTS)
        pipe.hgetall(METRICS_KEY)
        if queue is None:
            pipe.zcard(QUEUE_NAME)
            pipe.exists(WORKER_HEALTH_KEY)
        first = await pipe.execute()
    slugs = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in first[0])
    async with redis.pipeline(transaction=False) as pipe:
        for slug in slugs:
            pipe.zcard(keys.state_set(slug, "pending"))
            pipe.zcard(keys.state_set(slug, "synced"))
            pipe.zcard(keys.state_set(slug, "failed"))
            pipe.zcard(keys.queued(slug))
            pipe.zrange(keys.state_set(slug, "pending"), 0, 0, withscores=True)
            pipe.hget(keys.breaker_state(slug), "tripped")
            pipe.zcard(keys.breaker_held(slug))
        rows = await pipe.execute() if slugs else []
    tenants = []
    for i, slug in enumerate(slugs):
        pending, synced, failed, queued, oldest, tripped, held = rows[i * 7 : i * 7 + 7]
        tenants.append(
            TenantFigures(
                slug,
                int(pending),
                int(synced),
                int(failed),
                int(queued),
                int(oldest[0][1]) if oldest else None,
                tripped in (b"1", "1"),
                int(held),
            )
        )
    if queue is None:
        depth, alive = int(first[2]), bool(first[3])
    else:
        async with queue.pipeline(transaction=False) as pipe:
            pipe.zcard(QUEUE_NAME)
            pipe.exists(WORKER_HEALTH_KEY)
            depth_raw, alive_raw = await pipe.execute()
        depth, alive = int(depth_raw), bool(alive_raw)
    return StoreFigures(tenants, first[1], depth, alive)


def store_families(figures: StoreFigures, now: float | None = None) -> list[Metric]:
    """The per-tenant gauges (and the arq queue's depth)."""
    now_ms = (time.time() if now is None else now) * 1000
    tenants = GaugeMetricFamily(
        PREFIX + "tenants", "Tenants configured.", value=len(figures.tenants)
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


def worker_families(raw: dict[bytes, bytes]) -> list[Metric]:
    """The workers' series from the hash they flush into (`worker.metrics`)."""
    counters: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in SERIES}
    histograms: dict[str, dict[tuple[str, ...], dict[str, float]]] = {n: {} for n in SERIES}
    for field, value in raw.items():
        key = decode_field(field)
        if key is None:
            continue
        name, labels, part = key[0], key[1:-1], key[-1]
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
            yield from worker_families(self._figures.worker)
        up = 0 if self._figures is None else 1
        yield GaugeMetricFamily(
            PREFIX + "redis_up", "1 when this scrape could read Redis.", value=up
        )


async def render_metrics(
    requests: RequestMetrics, redis: Redis, queue: Redis | None = None
) -> bytes:
    """The whole `/metrics` body; never raises for a Redis outage."""
    # The process's own series are read on the event loop that writes them.
    own = list(requests.registry.collect())
    figures: StoreFigures | None = None
    with contextlib.suppress(RedisError, OSError, TimeoutError):
        async with asyncio.timeout(STORE_READ_TIMEOUT_S):
            figures = await read_store(redis, queue)
    # Thousands of tenants make tens of thousands of lines: build and render
    # them off the event loop (from data no one else touches).
    return await asyncio.to_thread(generate_latest, _Scrape(own, figures))
