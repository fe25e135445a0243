"""Metrics follow the work: a created user is pending, then synced with its
lag observed, as a worker runs the job and flushes into Redis; the API's
`/metrics` shows it all in parseable Prometheus text."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from api.app import create_app
from core.settings import Settings
from shadow import Tenant, TenantStore
from shadow.metrics import METRICS_KEY
from tests.support.api import SCRAPE, ScimClient, api_settings
from tests.support.metrics import Labels, samples, value
from tests.support.worker_fixtures import (
    BASE,
    FAST,
    KEY,
    ORG,
    SandboxLms,
    lms,
    queue,
    worker_settings,
)
from worker.deps import WorkerDeps
from worker.metrics import WorkerMetrics
from worker.sync import sync_user

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster

__all__ = ["lms", "queue", "worker_settings"]


@pytest.fixture
async def scim(redis: Redis, redis_url: str) -> AsyncIterator[ScimClient]:
    """The real app, and a tenant whose LMS is the in-process sandbox."""
    store = TenantStore(redis)
    await store.create(Tenant(slug=ORG, name="Acme", lms_url=BASE, lms_api_key=KEY))
    token = (await store.issue_token(ORG)).token
    async with AsyncTestClient(
        app=create_app(api_settings(redis_url)), base_url="https://bridge.test"
    ) as http:
        yield ScimClient(http, ORG, token)


@pytest.fixture
async def observed(
    worker_settings: Settings, queue: ArqRedis, lms: SandboxLms
) -> AsyncIterator[tuple[WorkerDeps, WorkerMetrics]]:
    metrics = WorkerMetrics()
    deps = WorkerDeps.open(worker_settings, queue, http=lms.http, retry=FAST, metrics=metrics)
    try:
        yield deps, metrics
    finally:
        await deps.aclose()
        await lms.http.aclose()


async def scrape(scim: ScimClient) -> dict[tuple[str, Labels], float]:
    response = await scim.http.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_a_user_shows_pending_then_synced_with_its_lag_observed(
    scim: ScimClient, observed: tuple[WorkerDeps, WorkerMetrics], redis: Redis
) -> None:
    deps, metrics = observed
    before = await scrape(scim)
    assert value(before, "scim_bridge_users", tenant=ORG, state="pending") == 0
    assert value(before, "scim_bridge_sync_lag_seconds_count", tenant=ORG) is None

    user = await scim.create_user("ada@example.com")

    pending = await scrape(scim)
    assert value(pending, "scim_bridge_users", tenant=ORG, state="pending") == 1
    assert value(pending, "scim_bridge_users", tenant=ORG, state="synced") == 0
    assert value(pending, "scim_bridge_queue_depth", tenant=ORG) == 1
    assert value(pending, "scim_bridge_arq_queue_depth") == 1
    oldest = value(pending, "scim_bridge_oldest_pending_seconds", tenant=ORG)
    assert oldest is not None
    assert 0 <= oldest < 10
    assert value(pending, "scim_bridge_tenants") == 1
    assert value(pending, "scim_bridge_redis_up") == 1

    assert await sync_user({"deps": deps}, ORG, user["id"]) == "synced"
    # The job wrote no metric to Redis: the worker counts in memory ...
    assert not await redis.exists(METRICS_KEY)
    unflushed = await scrape(scim)
    assert value(unflushed, "scim_bridge_users", tenant=ORG, state="synced") == 1
    assert value(unflushed, "scim_bridge_sync_lag_seconds_count", tenant=ORG) is None
    # ... and a flush carries it to the scrape.
    assert await metrics.flush(deps.redis) > 0

    synced = await scrape(scim)
    assert value(synced, "scim_bridge_users", tenant=ORG, state="pending") == 0
    assert value(synced, "scim_bridge_users", tenant=ORG, state="synced") == 1
    assert value(synced, "scim_bridge_oldest_pending_seconds", tenant=ORG) == 0
    assert value(synced, "scim_bridge_queue_depth", tenant=ORG) == 0
    assert value(synced, "scim_bridge_sync_lag_seconds_count", tenant=ORG) == 1
    lag = value(synced, "scim_bridge_sync_lag_seconds_sum", tenant=ORG)
    assert lag is not None
    assert 0 <= lag < 10
    assert value(synced, "scim_bridge_sync_lag_seconds_bucket", tenant=ORG, le="+Inf") == 1
    assert value(synced, "scim_bridge_sync_lag_seconds_bucket", tenant=ORG, le="3600.0") == 1
    calls = "scim_bridge_lms_calls_total"
    assert value(synced, calls, tenant=ORG, endpoint="POST /learners", outcome="201") == 1
    assert (
        value(
            synced,
            "scim_bridge_lms_call_duration_seconds_count",
            tenant=ORG,
            endpoint="POST /learners",
        )
        == 1
    )

    # A second change of the same user: the histogram count rises again.
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "Engineer"}],
    }
    assert (await scim.patch(f"/Users/{user['id']}", patch)).status_code == 200
    assert value(await scrape(scim), "scim_bridge_users", tenant=ORG, state="pending") == 1
    assert await sync_user({"deps": deps}, ORG, user["id"]) == "synced"
    await metrics.flush(deps.redis)
    after = await scrape(scim)
    assert value(after, "scim_bridge_sync_lag_seconds_count", tenant=ORG) == 2
    assert value(after, "scim_bridge_users", tenant=ORG, state="synced") == 1


async def test_a_failed_user_shows_in_the_failed_gauge(
    scim: ScimClient, observed: tuple[WorkerDeps, WorkerMetrics]
) -> None:
    deps, _ = observed
    # No family name: a required learner field is missing, so the user fails.
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "nofamily@example.com",
        "name": {"givenName": "Only"},
    }
    response = await scim.post("/Users", body)
    assert response.status_code == 201

    assert await sync_user({"deps": deps}, ORG, response.json()["id"]) == "failed"

    found = await scrape(scim)
    assert value(found, "scim_bridge_users", tenant=ORG, state="failed") == 1
    assert value(found, "scim_bridge_users", tenant=ORG, state="pending") == 0


async def test_two_workers_flushes_add_up(redis: Redis, redis_url: str) -> None:
    one, two = WorkerMetrics(), WorkerMetrics()
    one.sync_lag("acme", 0.3)
    two.sync_lag("acme", 7.0)
    two.sync_lag("globex", 0.05)
    await one.flush(redis)
    await two.flush(redis)
    one.sync_lag("acme", 0.2)
    await one.flush(redis)

    async with AsyncTestClient(
        app=create_app(api_settings(redis_url)), base_url="https://bridge.test"
    ) as http:
        found = samples((await http.get("/metrics", headers=SCRAPE)).text)

    assert value(found, "scim_bridge_sync_lag_seconds_count", tenant="acme") == 3
    assert value(found, "scim_bridge_sync_lag_seconds_sum", tenant="acme") == pytest.approx(7.5)
    assert value(found, "scim_bridge_sync_lag_seconds_bucket", tenant="acme", le="0.25") == 1
    assert value(found, "scim_bridge_sync_lag_seconds_bucket", tenant="acme", le="0.5") == 2
    assert value(found, "scim_bridge_sync_lag_seconds_bucket", tenant="acme", le="5.0") == 2
    assert value(found, "scim_bridge_sync_lag_seconds_bucket", tenant="acme", le="10.0") == 3
    assert value(found, "scim_bridge_sync_lag_seconds_count", tenant="globex") == 1
    assert value(found, "scim_bridge_sync_lag_seconds_bucket", tenant="globex", le="0.1") == 1


async def test_metrics_text_is_valid_prometheus_with_the_documented_names(
    scim: ScimClient,
) -> None:
    await scim.create_user("grace@example.com")
    await scim.get("/Users")
    text = (await scim.http.get("/metrics", headers=SCRAPE)).text

    families = {f.name: f for f in text_string_to_metric_families(text)}

    expected = {
        "scim_bridge_queue_depth": "gauge",
        "scim_bridge_users": "gauge",
        "scim_bridge_oldest_pending_seconds": "gauge",
        "scim_bridge_arq_queue_depth": "gauge",
        "scim_bridge_tenants": "gauge",
        "scim_bridge_redis_up": "gauge",
        "scim_bridge_sync_lag_seconds": "histogram",
        "scim_bridge_scim_requests": "counter",
        "scim_bridge_scim_request_duration_seconds": "histogram",
        "scim_bridge_lms_calls": "counter",
        "scim_bridge_lms_call_duration_seconds": "histogram",
        "scim_bridge_lms_retries": "counter",
        "scim_bridge_lms_rate_limited": "counter",
    }
    for name, kind in expected.items():
        assert name in families, name
        assert families[name].type == kind, name
    assert all(name.startswith("scim_bridge_") for name in families)
