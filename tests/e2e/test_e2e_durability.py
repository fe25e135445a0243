"""Acknowledged is durable (invariant 1), and only delayed by crashes (invariant 2).

A 2xx from the SCIM API means the change and its pending mark are in Redis
together; killing the API process right after it answered, or restarting
Redis (AOF on) in the middle of a run, must not lose any acknowledged
change on its way to the LMS.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import httpx
import pytest
from arq.constants import in_progress_key_prefix
from arq.worker import Worker

from core.settings import Settings
from tests.support.cluster import (
    Cluster,
    ClusterFactory,
    TenantHandle,
    cluster_fixture,  # noqa: F401  (the `cluster` fixture)
    duplicate_learners,
    entra_user,
    make_cluster_fixture,  # noqa: F401  (the `make_cluster` fixture)
    patch_ops,
)
from worker.queue import QUEUE_NAME
from worker.settings import worker_options

pytestmark = pytest.mark.e2e


async def create_like_entra(tenant: TenantHandle, body: dict[str, Any]) -> str:
    """POST until answered; a 409 on a retry means an earlier attempt landed
    (its answer was lost), so Entra looks the user up by userName."""
    response = await tenant.scim.send_until_answered("POST", "/Users", body)
    if response.status_code == 409:
        found = await tenant.scim.find_user_id(body["userName"])
        assert found, f"409 for {body['userName']} but no such user"
        return found
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def lms_has(cluster: Cluster, tenant: TenantHandle, want: dict[str, dict[str, Any]]) -> bool:
    """Raises AssertionError until the LMS holds, for each SCIM id in `want`,
    one learner with those field values, and no duplicates."""
    learners = await cluster.sandbox_learners(tenant.org)
    assert not duplicate_learners(learners), duplicate_learners(learners)
    by_ref = {learner["external_ref"]: learner for learner in learners}
    missing = [uid for uid in want if uid not in by_ref]
    wrong = {
        uid: {k: by_ref[uid].get(k) for k in fields}
        for uid, fields in want.items()
        if uid in by_ref and any(by_ref[uid].get(k) != v for k, v in fields.items())
    }
    assert not missing, f"{len(missing)} acknowledged users have no learner: {missing[:5]}"
    assert not wrong, f"learners not at the acknowledged values: {wrong}"
    return True


async def test_every_acknowledged_create_survives_the_api_killed_mid_burst(
    cluster: Cluster,
) -> None:
    """Eight creates in flight at a time; the API process gets SIGKILL the
    moment the 25th 201 reaches the client, so others die mid-request. Every
    201 is in the shadow after the restart and reaches the LMS; Entra's
    retries of the unanswered ones find what had landed (409) instead of
    creating it twice."""
    tenant = await cluster.add_tenant("contoso")
    total, kill_at = 80, 25
    acknowledged: dict[str, str] = {}  # email -> SCIM id, answered 201
    unanswered: list[str] = []
    gate = asyncio.Semaphore(8)
    killed = False

    async def create(i: int) -> None:
        nonlocal killed
        email = f"burst{i:03d}@contoso.example"
        async with gate:
            try:
                response = await tenant.scim.post("/Users", entra_user(email, title="Burst"))
            except httpx.TransportError:
                unanswered.append(email)
                return
        assert response.status_code == 201, response.text
        acknowledged[email] = response.json()["id"]
        if len(acknowledged) == kill_at and not killed:
            killed = True
            cluster.kill_api(0, signal.SIGKILL)  # right after this 2xx reached us

    await asyncio.gather(*(create(i) for i in range(total)))
    assert killed
    assert unanswered, "the kill interrupted nothing; the burst was too short"

    await cluster.start_api(0)
    # Every acknowledged create is in the shadow, and reaches the LMS.
    for email, uid in acknowledged.items():
        response = await tenant.scim.get(f"/Users/{uid}")
        assert response.status_code == 200, (email, response.text)
    want = {uid: {"email": email, "status": "active"} for email, uid in acknowledged.items()}
    await cluster.wait_until(lambda: lms_has(cluster, tenant, want), 30, message="acked users")

    # Entra retries what went unanswered; whatever had landed is found, not doubled.
    for email in unanswered:
        want[await create_like_entra(tenant, entra_user(email, title="Burst"))] = {"email": email}
    await cluster.wait_until(lambda: lms_has(cluster, tenant, want), 30, message="every user")
    assert len(await cluster.sandbox_learners(tenant.org)) == total


@pytest.mark.parametrize("down_s", [1.0])
async def test_every_acknowledged_change_survives_a_redis_restart(
    make_cluster: ClusterFactory, down_s: float
) -> None:
    """Redis is killed (SIGKILL: a crash; AOF with fsync always) and comes back
    after `down_s` while creates and changes stream in; Entra retries what
    failed. The workers ride it out, and every acknowledged change reaches
    the LMS."""
    # Jobs cut off by the crash hold their user's lock for WORKER_JOB_TIMEOUT + 5 s.
    cluster = await make_cluster(
        workers=2, knobs={"latency_ms": 10}, worker_env={"WORKER_JOB_TIMEOUT": "6"}
    )
    tenant = await cluster.add_tenant("contoso")
    users = 40
    ids: dict[int, str] = {}
    titles: dict[int, str] = {}  # the newest acknowledged title of each user
    gate = asyncio.Semaphore(6)

    async def life(i: int) -> None:
        email = f"steady{i:03d}@contoso.example"
        async with gate:
            ids[i] = await create_like_entra(tenant, entra_user(email, title="v0"))
        titles[i] = "v0"
        for version in range(1, 4):
            await asyncio.sleep(0.1)
            async with gate:
                response = await tenant.scim.send_until_answered(
                    "PATCH", f"/Users/{ids[i]}", patch_ops(("Replace", "title", f"v{version}"))
                )
            assert response.status_code == 200, response.text
            titles[i] = f"v{version}"

    async def crash_redis() -> None:
        await cluster.wait_until(lambda: len(ids) >= users // 3, 30, message="a third created")
        await asyncio.to_thread(cluster.restart_redis, signal.SIGKILL, down_s)

    await asyncio.gather(crash_redis(), *(life(i) for i in range(users)))

    # Every acknowledged change is in the shadow: the API serves it.
    for i in range(users):
        response = await tenant.scim.get(f"/Users/{ids[i]}")
        assert response.status_code == 200, response.text
        assert response.json()["title"] == titles[i]
    want = {ids[i]: {"job_role": titles[i], "status": "active"} for i in range(users)}
    await cluster.wait_until(
        lambda: lms_has(cluster, tenant, want),
        60,
        message="every acknowledged change to reach the LMS",
        require_alive=cluster.workers,
    )
    assert len(await cluster.sandbox_learners(tenant.org)) == users

    # The LMS can be current before the shadow says so: a job whose LMS call
    # landed just before the crash could not record it, and the user's next
    # job waits out the dead job's lock (WORKER_JOB_TIMEOUT + 5 s) first.
    async def settled() -> bool:
        counts = await cluster.sync_counts(tenant.slug)
        return counts.pending == 0 and counts.failed == 0

    alive = cluster.workers
    await cluster.wait_until(settled, 60, message="every user synced", require_alive=alive)
    counts = await cluster.sync_counts(tenant.slug)
    assert (counts.pending, counts.failed, counts.synced) == (0, 0, users), counts
    assert all("lost Redis" in cluster.worker_log(i) for i in range(2)), "no restart seen"


def arq_claim_ttl(job_timeout_s: float) -> float:
    """How long arq's in-progress claim of a job lives (`Worker.in_progress_timeout_s`:
    the longest function timeout + 10 s), for the bridge's real worker options."""
    options = worker_options(Settings(job_timeout_s=job_timeout_s))
    return float(Worker(**options, handle_signals=False).in_progress_timeout_s)


async def test_a_job_claimed_by_a_worker_that_died_runs_again(
    make_cluster: ClusterFactory,
) -> None:
    """A worker claims a job (arq's in-progress key) and dies before the job
    body ran (SIGKILL, OOM, a node lost). The change must still be applied
    within a sweep or a job timeout, not when the claim expires in an hour."""
    cluster = await make_cluster(workers=0, worker_env={"WORKER_JOB_TIMEOUT": "6"})
    tenant = await cluster.add_tenant("contoso")
    uid = await create_like_entra(tenant, entra_user("claimed@contoso.example"))
    (job_id,) = [
        job.decode()
        for job in await cluster.redis.zrange(QUEUE_NAME, 0, -1)
        if job.decode().startswith(f"sync:{tenant.slug}:{uid}:")
    ]
    # What the dead worker left: its claim, for as long as arq makes claims last.
    ttl = arq_claim_ttl(6.0)
    await cluster.redis.set(in_progress_key_prefix + job_id, b"1", px=int(ttl * 1000))

    cluster.start_worker()
    want = {uid: {"email": "claimed@contoso.example", "status": "active"}}
    await cluster.wait_until(
        lambda: lms_has(cluster, tenant, want),
        25,
        message=f"the user of a job claimed by a dead worker (claim ttl {ttl}s) to sync",
    )
