"""LMS calls are counted by tenant, endpoint and outcome, with their latency,
the client's retries and the 429s received; the worker flushes its counts
into Redis in one transaction, and keeps them when a flush fails."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from arq.worker import Retry
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.metrics import RequestMetrics, render_metrics
from shadow.metrics import METRICS_KEY
from tests.support.metrics import Labels, samples, value
from tests.support.redis_server import free_port
from tests.support.worker_fixtures import (
    FAST,
    ORG,
    MockedLms,
    mock_learner,
    put_user,
    queue,
    scim_user,
    worker_settings,
)
from worker.metrics import MetricsFlusher, WorkerMetrics
from worker.sync import sync_user

__all__ = ["queue", "worker_settings"]


async def scrape(redis: Redis) -> dict[tuple[str, Labels], float]:
    return samples((await render_metrics(RequestMetrics(), redis)).decode())


async def test_429_then_success_counts_calls_retries_and_rate_limits(
    mocked: MockedLms, redis: Redis
) -> None:
    deps, metrics, router = mocked
    post = router.post("/api/v1/learners")
    post.side_effect = [
        httpx.Response(429, headers={"Retry-After": "0"}, json={"error": "rate_limited"}),
        httpx.Response(201, json=mock_learner(7)),
    ]
    await put_user(deps, "u-1", scim_user())

    assert await sync_user({"deps": deps}, ORG, "u-1") == "synced"
    assert post.call_count == 2
    await metrics.flush(deps.redis)

    found = await scrape(redis)
    endpoint = "POST /learners"
    calls = "scim_bridge_lms_calls_total"
    assert value(found, calls, tenant=ORG, endpoint=endpoint, outcome="429") == 1
    assert value(found, calls, tenant=ORG, endpoint=endpoint, outcome="201") == 1
    assert value(found, "scim_bridge_lms_retries_total", tenant=ORG, endpoint=endpoint) == 1
    assert value(found, "scim_bridge_lms_rate_limited_total", tenant=ORG, endpoint=endpoint) == 1
    duration = "scim_bridge_lms_call_duration_seconds"
    assert value(found, duration + "_count", tenant=ORG, endpoint=endpoint) == 2
    assert value(found, duration + "_bucket", tenant=ORG, endpoint=endpoint, le="+Inf") == 2
    assert value(found, "scim_bridge_sync_lag_seconds_count", tenant=ORG) == 1


async def test_exhausted_503s_count_every_attempt_and_each_retry(
    mocked: MockedLms, redis: Redis
) -> None:
    deps, metrics, router = mocked
    router.post("/api/v1/learners").mock(return_value=httpx.Response(503))
    router.get("/api/v1/learners").mock(
        return_value=httpx.Response(200, json={"count": 0, "next": None, "results": []})
    )
    await put_user(deps, "u-1", scim_user())

    with pytest.raises(Retry):
        await sync_user({"deps": deps}, ORG, "u-1")
    await metrics.flush(deps.redis)

    found = await scrape(redis)
    endpoint = "POST /learners"
    attempts = FAST.max_attempts
    assert (
        value(found, "scim_bridge_lms_calls_total", tenant=ORG, endpoint=endpoint, outcome="503")
        == attempts
    )
    assert (
        value(found, "scim_bridge_lms_retries_total", tenant=ORG, endpoint=endpoint) == attempts - 1
    )
    assert value(found, "scim_bridge_lms_rate_limited_total", tenant=ORG, endpoint=endpoint) is None
    # A fault is no outcome: no lag observed, the user is still pending.
    assert value(found, "scim_bridge_sync_lag_seconds_count", tenant=ORG) is None
    assert value(found, "scim_bridge_users", tenant=ORG, state="pending") == 1


async def test_a_failed_flush_keeps_its_counts_for_the_next(redis: Redis) -> None:
    metrics = WorkerMetrics()
    metrics.lms_call("acme", "POST /learners", "201", 0.04)
    metrics.sync_lag("acme", 1.5)
    down = Redis(port=free_port(), socket_connect_timeout=1)
    try:
        with pytest.raises((RedisError, OSError)):
            await metrics.flush(down)
    finally:
        await down.aclose()
    assert metrics.pending()
    assert not await redis.exists(METRICS_KEY)

    metrics.lms_call("acme", "POST /learners", "201", 0.06)
    assert await metrics.flush(redis) > 0

    assert not metrics.pending()
    found = await scrape(redis)
    assert (
        value(
            found,
            "scim_bridge_lms_calls_total",
            tenant="acme",
            endpoint="POST /learners",
            outcome="201",
        )
        == 2
    )
    assert value(
        found, "scim_bridge_lms_call_duration_seconds_sum", tenant="acme", endpoint="POST /learners"
    ) == pytest.approx(0.1)
    assert value(found, "scim_bridge_sync_lag_seconds_count", tenant="acme") == 1


async def test_the_flusher_flushes_periodically_and_once_more_on_stop(redis: Redis) -> None:
    metrics = WorkerMetrics()
    flusher = MetricsFlusher(metrics, redis, interval=0.05)
    flusher.start()
    try:
        metrics.sync_lag("acme", 0.2)
        for _ in range(100):
            if await redis.exists(METRICS_KEY):
                break
            await asyncio.sleep(0.02)
        assert not metrics.pending()
        metrics.sync_lag("acme", 0.3)
    finally:
        await flusher.stop()

    found = await scrape(redis)
    assert value(found, "scim_bridge_sync_lag_seconds_count", tenant="acme") == 2


async def test_unknown_fields_in_the_hash_are_ignored(redis: Redis) -> None:
    await redis.hset(  # type: ignore[misc]
        METRICS_KEY,
        mapping={"not json": "1", '["nope","x",""]': "2", '["lms_calls_total","a"]': "3"},
    )
    metrics = WorkerMetrics()
    metrics.lms_retry("acme")
    await metrics.flush(redis)

    found = await scrape(redis)

    assert value(found, "scim_bridge_lms_retries_total", tenant="acme", endpoint="unknown") == 1
    assert value(found, "scim_bridge_redis_up") == 1
