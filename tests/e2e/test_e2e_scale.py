"""Several API processes and several workers on one Redis (docs/architecture.md, "Scale
past one machine"): API processes are stateless, so the SCIM client spreads
its requests round-robin over two of them; three workers share the queue,
per-user locks and per-tenant pacing in Redis. Entra-shaped lives of three
tenants' users (tests/e2e/test_e2e_sync.py) must end in exactly the
expected learners, paced under each LMS organisation's limit; and losing one
API process and one worker (SIGKILL) midway only narrows the pool.
"""

from __future__ import annotations

import asyncio
import re
import signal

import pytest

from tests.e2e.test_e2e_sync import Population, people_of, run_lives
from tests.support.api import SCRAPE
from tests.support.cluster import (
    Cluster,
    ClusterFactory,
    make_cluster_fixture,  # noqa: F401  (the `make_cluster` fixture)
)

pytestmark = pytest.mark.e2e

APIS, WORKERS = 2, 3
# (the route label holds braces of its own: `/scim/{tenant}/v2/Users`)
_REQUESTS = re.compile(r"^scim_bridge_scim_requests_total\{.*\} ([0-9.e+]+)$", re.M)


async def requests_served(cluster: Cluster, i: int) -> float:
    """SCIM requests API process `i` answered (its own /metrics counter)."""
    response = await cluster.http.get(f"{cluster.api_urls[i]}/metrics", headers=SCRAPE)
    assert response.status_code == 200, response.text
    return sum(float(n) for n in _REQUESTS.findall(response.text))


async def three_tenants(cluster: Cluster, users: int) -> Population:
    population: Population = {}
    for slug in ("contoso", "fabrikam", "northwind"):
        tenant = await cluster.add_tenant(slug, rate=20, burst=40)
        await cluster.cli("breaker", "set", slug, "--share", "0.5", "--json")
        population[slug] = (tenant, people_of(slug, users))
    return population


async def test_two_apis_and_three_workers_end_in_exactly_the_expected_learners(
    make_cluster: ClusterFactory,
) -> None:
    users = 40
    cluster = await make_cluster(apis=APIS, workers=WORKERS, knobs={"rate": 20, "burst": 40})
    population = await three_tenants(cluster, users)

    await run_lives(cluster, population, settle_s=120)

    served = [await requests_served(cluster, i) for i in range(APIS)]
    total = sum(served)
    assert all(n > total / 4 for n in served), f"round robin should share the load: {served}"
    stats = await cluster.sandbox_stats()
    for slug, (tenant, _) in population.items():
        org = stats["orgs"][tenant.org]
        # Three workers pace one organisation together: no more than a few 429s.
        assert org["by_status"].get("429", 0) <= 3, (slug, org["by_status"])
        assert set(org["by_status"]) <= {"200", "201", "429"}, (slug, org["by_status"])
        # One POST per person, whichever worker ran it.
        assert org["by_route"]["POST /api/v1/learners"] == users, (slug, org["by_route"])
    for i in range(WORKERS):
        assert "sync_user" in cluster.worker_log(i) or "sync:" in cluster.worker_log(i), (
            f"worker {i} never ran a sync job"
        )


async def test_losing_an_api_and_a_worker_midway_only_narrows_the_pool(
    make_cluster: ClusterFactory,
) -> None:
    cluster = await make_cluster(
        apis=APIS,
        workers=WORKERS,
        knobs={"latency_ms": 30},
        worker_env={"WORKER_JOB_TIMEOUT": "6"},
    )
    population = await three_tenants(cluster, 24)

    async def lose_one_of_each() -> None:
        # Before the first change goes out (this runs before the changes'
        # tasks do): the client, like a load balancer after a failed health
        # check, sends only to the live API from then on.
        cluster.kill_api(1, signal.SIGKILL)
        await asyncio.sleep(0.5)  # the workers are busy with the changes now
        cluster.kill_worker(1, signal.SIGKILL)

    await run_lives(cluster, population, during_changes=lose_one_of_each, settle_s=120)
    assert not cluster.apis[1].alive
    assert not cluster.workers[1].alive
