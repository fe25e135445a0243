"""Fast recovery (worker/liveness.py): a worker killed mid-job has its jobs
run again, and its users' locks broken, within seconds, with the sweep
turned off so only the live workers' hand-back can do it."""

from __future__ import annotations

import asyncio
import json
import signal
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
    # Either worker may claim the whole batch in one poll (worker/claim.py).
    await cluster.wait_until(
        lambda: any(len(cluster.jobs_in_flight(i)) >= 2 for i in range(2)), 20, message="jobs"
    )
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


async def test_a_redis_restart_strands_no_user_and_each_worker_says_so_in_one_line(
    make_cluster: ClusterFactory,
) -> None:
    """Redis crashes (SIGKILL; AOF replayed) with jobs in flight: the locks
    and claims it restores belong to jobs that are gone. Each worker cancels
    its jobs, logs one JSON line, and its next run hands them back, so every
    user is synced within seconds, not when the locks (65 s) expire."""
    cluster = await make_cluster(
        workers=2, knobs={"latency_ms": 300}, worker_env={"WORKER_JOB_TIMEOUT": "60", **NO_SWEEP}
    )
    tenant = await cluster.add_tenant("contoso")
    users = 30
    await asyncio.gather(
        *(tenant.scim.post("/Users", entra_user(f"r{i:02d}@contoso.example")) for i in range(users))
    )
    # Either worker may claim the whole batch in one poll (worker/claim.py).
    await cluster.wait_until(
        lambda: any(len(cluster.jobs_in_flight(i)) >= 2 for i in range(2)), 20, message="jobs"
    )
    logged_before = [len(cluster.worker_log(i)) for i in range(2)]
    await asyncio.to_thread(cluster.restart_redis, signal.SIGKILL, 1.0)
    back_at = time.monotonic()

    await cluster.wait_until(
        lambda: synced(cluster, tenant.slug, users),
        25,
        message="every user synced after Redis came back",
        require_alive=cluster.workers,
    )
    assert time.monotonic() - back_at < 20
    for i in range(2):
        lines = cluster.worker_log(i)[logged_before[i] :].splitlines()
        records = [json.loads(line) for line in lines]  # every line is JSON
        problems = [r for r in records if r.get("level") in ("error", "critical")]
        assert not problems, problems
        assert sum("lost Redis" in str(r.get("msg")) for r in records) == 1, records
