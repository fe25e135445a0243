"""A scrape stays cheap with many tenants: a fixed handful of Redis round
trips, however many tenants there are, and per-tenant series only for the
tenants with work (the `top_k` most in need of a look), fleet totals always."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from redis.asyncio.connection import Connection

from api.metrics import RequestMetrics, group_key, render_metrics, share_requests
from shadow import keys
from tests.support.cluster import wait_until
from worker.metrics import WorkerMetrics

TENANTS = 1000


class CountingConnection(Connection):
    """Counts writes to the socket: one per command, one per pipeline."""

    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        await super().send_packed_command(command, check_health)


async def test_a_scrape_of_1000_tenants_costs_two_round_trips(redis: Redis, redis_url: str) -> None:
    now_ms = int(time.time() * 1000)
    slugs = [f"t{i:04d}" for i in range(TENANTS)]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.sadd(keys.TENANTS, *slugs)
        pipe.zadd(keys.TENANTS_WORK, dict.fromkeys(slugs, 1))  # as their writes touch it
        for i, slug in enumerate(slugs):
            pipe.zadd(keys.state_set(slug, "pending"), {"u-1": now_ms - 60_000, "u-2": now_ms})
            pipe.zadd(
                keys.state_set(slug, "synced"), {f"u-{n}": now_ms for n in range(3, 4 + i % 5)}
            )
            pipe.zadd(keys.queued(slug), {"u-2": now_ms})
        await pipe.execute()
    worker = WorkerMetrics()
    for slug in slugs:
        worker.sync_lag(slug, 0.4)
        worker.lms_call(slug, "POST /learners", "201", 0.05)
    await worker.flush(redis)

    counted = Redis.from_url(redis_url, connection_class=CountingConnection)
    try:
        await counted.ping()  # connect (and its handshake) outside the count
        CountingConnection.sends = 0
        started = time.perf_counter()
        text = (await render_metrics(RequestMetrics(), counted, top_k=TENANTS)).decode()
        elapsed = time.perf_counter() - started
        round_trips = CountingConnection.sends
    finally:
        await counted.aclose()

    assert round_trips == 2
    assert elapsed < 5.0  # generous: a shared CI machine; typically well under 0.5 s
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("scim_bridge_tenants", ())] == TENANTS
    depths = [v for (name, _), v in samples.items() if name == "scim_bridge_queue_depth"]
    assert len(depths) == TENANTS
    assert set(depths) == {1}
    assert samples[("scim_bridge_users", (("state", "pending"), ("tenant", "t0007")))] == 2
    assert samples[("scim_bridge_users", (("state", "synced"), ("tenant", "t0007")))] == 3
    oldest = samples[("scim_bridge_oldest_pending_seconds", (("tenant", "t0999"),))]
    assert 59 <= oldest < 120
    assert samples[("scim_bridge_sync_lag_seconds_count", (("tenant", "t0500"),))] == 1


async def test_a_scrape_reads_a_separate_queue_redis_in_one_more_round_trip(
    redis: Redis, redis_url: str
) -> None:
    await redis.sadd(keys.TENANTS, "acme")  # type: ignore[misc]
    await redis.zadd(keys.TENANTS_WORK, {"acme": 1})  # its figures: the second round trip
    counted = Redis.from_url(redis_url, connection_class=CountingConnection)
    try:
        await counted.ping()
        CountingConnection.sends = 0
        text = (await render_metrics(RequestMetrics(), counted, counted)).decode()
        assert CountingConnection.sends == 3
    finally:
        await counted.aclose()
    assert "scim_bridge_arq_queue_depth 0.0" in text


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_idle_tenants_have_no_series_and_top_k_keeps_those_most_in_need(
    redis: Redis,
) -> None:
    """3,000 idle tenants and five with work: the idle ones are counted, not
    listed; with top_k 2 the two with most failures are listed, and the
    fleet totals still count all five."""
    now_ms = int(time.time() * 1000)
    idle = [f"idle-{i:04d}" for i in range(3000)]
    busy = {"b-1": 1, "b-2": 5, "b-3": 0, "b-4": 9, "b-5": 2}  # failed users each
    async with redis.pipeline(transaction=False) as pipe:
        pipe.sadd(keys.TENANTS, *idle, *busy)
        for slug in idle:
            pipe.zadd(keys.state_set(slug, "synced"), {"u": now_ms})
        for slug, failed in busy.items():
            pipe.zadd(keys.TENANTS_WORK, {slug: 1})
            pipe.zadd(keys.state_set(slug, "pending"), {"p": now_ms - 30_000})
            if failed:
                pipe.zadd(keys.state_set(slug, "failed"), {f"f{n}": now_ms for n in range(failed)})
        await pipe.execute()
    worker = WorkerMetrics()
    for slug in ["idle-0001", *busy]:
        worker.sync_lag(slug, 0.4)
    await worker.flush(redis)

    every = parse((await render_metrics(RequestMetrics(), redis)).decode())
    listed = {dict(labels)["tenant"] for name, labels in every if name == "scim_bridge_queue_depth"}
    assert listed == set(busy)
    assert every[("scim_bridge_tenants", ())] == 3005
    assert every[("scim_bridge_tenants_with_work", ())] == 5
    lagged = {
        dict(labels)["tenant"]
        for name, labels in every
        if name == "scim_bridge_sync_lag_seconds_count"
    }
    assert lagged == set(busy)  # an idle tenant's worker series wait for its next work

    top = parse((await render_metrics(RequestMetrics(), redis, top_k=2)).decode())
    listed = {dict(labels)["tenant"] for name, labels in top if name == "scim_bridge_queue_depth"}
    assert listed == {"b-4", "b-2"}
    assert top[("scim_bridge_fleet_users", (("state", "failed"),))] == 17
    assert top[("scim_bridge_fleet_users", (("state", "pending"),))] == 5
    assert top[("scim_bridge_tenants_unlisted", ())] == 3
    assert 29 <= top[("scim_bridge_fleet_oldest_pending_seconds", ())] < 120


async def test_processes_sharing_a_port_report_the_sum_of_their_requests(redis: Redis) -> None:
    """A scrape reaches one process of a group (`api --processes N`): it
    reports its own request series plus the others' last snapshots."""
    mine, other = RequestMetrics(), RequestMetrics()
    for _ in range(3):
        mine.observe("/scim/{tenant}/v2/Users", "GET", 200, 0.004)
    for _ in range(2):
        other.observe("/scim/{tenant}/v2/Users", "GET", 200, 0.3)
    other.throttled("acme")
    sharing = asyncio.create_task(share_requests(other, redis, "g", "1"))
    try:
        await wait_until(
            lambda: redis.hexists(group_key("g"), "1"), message="the snapshot", interval=0.01
        )
    finally:
        sharing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sharing
    text = (await render_metrics(mine, redis, group=("g", "0"))).decode()
    found = parse(text)
    route = (("method", "GET"), ("route", "/scim/{tenant}/v2/Users"), ("status", "200"))
    assert found[("scim_bridge_scim_requests_total", route)] == 5
    timing = (("le", "0.005"), ("method", "GET"), ("route", "/scim/{tenant}/v2/Users"))
    assert found[("scim_bridge_scim_request_duration_seconds_bucket", timing)] == 3
    assert found[("scim_bridge_scim_throttled_total", (("tenant", "acme"),))] == 1
    alone = parse((await render_metrics(mine, redis)).decode())
    assert alone[("scim_bridge_scim_requests_total", route)] == 3


async def test_a_restarted_process_carries_on_its_predecessors_counts(redis: Redis) -> None:
    """`api --processes N` restarts a child that died under the same index:
    the port's summed counters must not drop, or rate() reads a reset."""
    before, after = RequestMetrics(), RequestMetrics()
    for _ in range(4):
        before.observe("/scim/{tenant}/v2/Users", "GET", 200, 0.004)
    await redis.hset(group_key("g"), "1", before.snapshot())  # type: ignore[misc]
    after.observe("/scim/{tenant}/v2/Users", "GET", 200, 0.004)
    sharing = asyncio.create_task(share_requests(after, redis, "g", "1"))
    try:
        await wait_until(
            lambda: _shared_count(redis), message="the restarted snapshot", interval=0.01
        )
    finally:
        sharing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sharing
    found = parse((await render_metrics(after, redis, group=("g", "1"))).decode())
    route = (("method", "GET"), ("route", "/scim/{tenant}/v2/Users"), ("status", "200"))
    assert found[("scim_bridge_scim_requests_total", route)] == 5


async def _shared_count(redis: Redis) -> bool:
    raw = await redis.hget(group_key("g"), "1")  # type: ignore[misc]
    return raw is not None and b'"counts":[["/scim/{tenant}/v2/Users","GET",200,5]]' in raw
