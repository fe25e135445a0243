"""Fast recovery (worker/liveness.py): a worker killed mid-job has its jobs
run again, and its users' locks broken, within seconds, with the sweep
turned off so only the live workers' hand-back can do it."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.cluster import (
    Cluster,
    ClusterFactory,
    entra_user,
    make_cluster_fixture,  # noqa: F401  (the `make_cluster` fixture)
)

pytestmark = pytest.mark.e2e

#: No sweep within the test: a sweep every 10 minutes, a grace of an hour.
NO_SWEEP = {"WORKER_SWEEP_INTERVAL": "600", "WORKER_SWEEP_GRACE": "3600"}


async def synced(cluster: Cluster, slug: str, users: int) -> bool:
    counts = await cluster.sync_counts(slug)
    assert (counts.synced, counts.failed) == (users, 0), counts
    return True


async def test_a_killed_workers_jobs_run_again_within_seconds_without_the_sweep(
    make_cluster: ClusterFactory,
) -> None:
    # Slow LMS calls keep jobs in flight, so the kill interrupts some mid-call
    # (their locks taken) and the worker's claims of others are left behind.
    cluster = await make_cluster(
        workers=2, knobs={"latency_ms": 400}, worker_env={"WORKER_JOB_TIMEOUT": "30", **NO_SWEEP}
    )
    tenant = await cluster.add_tenant("contoso")
    users = 30
    await asyncio.gather(
        *(tenant.scim.post("/Users", entra_user(f"k{i:02d}@contoso.example")) for i in range(users))
    )
    await cluster.wait_until(lambda: len(cluster.jobs_in_flight(0)) >= 2, 20, message="jobs")
    interrupted = cluster.jobs_in_flight(0)
    cluster.kill_worker(0)
    killed_at = time.monotonic()

    await cluster.wait_until(
        lambda: synced(cluster, tenant.slug, users),
        25,
        message=f"every user synced after the kill ({len(interrupted)} jobs interrupted)",
        require_alive=[cluster.workers[1]],
    )
    # Locks lasted 35 s and the sweep never ran: only the hand-back can be this fast.
    assert time.monotonic() - killed_at < 20
    assert "is gone" in cluster.worker_log(1)
