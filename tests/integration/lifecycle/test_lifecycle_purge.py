"""Offboarding a tenant: it stops authenticating at once, its pending work
is dropped, and then no key or value of it is left anywhere in Redis; the
other tenant and the LMS's learners stay as they were."""

from __future__ import annotations

import json
import time

from redis.asyncio import Redis

from shadow import keys
from shadow.breaker import BreakerConfig, set_config
from shadow.lifecycle import begin_purge, purge_keys
from tests.integration.lifecycle.conftest import OP, World
from tests.support.cli import Run
from tests.support.keyscan import every_key_and_value, traces_of
from tests.support.worker_fixtures import SandboxLms, run_sync
from worker.deps import WorkerDeps
from worker.queue import QUEUE_NAME


def _needles(world: World) -> list[str]:
    found = ["acme", "sk-test-acme"]
    for p in world.people:
        found += [p.id, p.email, p.given, p.family]
    return found


async def _other_keys(redis: Redis) -> dict[bytes, list[bytes]]:
    """`other`'s keys and what they hold (its log entries carry times only)."""
    return {
        k: sorted(await every_key_and_value_of(redis, k))
        for k in await redis.keys(keys.prefix("other") + "*")
    }


async def every_key_and_value_of(redis: Redis, key: bytes) -> list[bytes]:
    kind = (await redis.type(key)).decode()
    if kind == "hash":
        return [f + b"=" + v for f, v in (await redis.hgetall(key)).items()]  # type: ignore[misc]
    if kind == "zset":
        return list(await redis.zrange(key, 0, -1))
    if kind == "set":
        return list(await redis.smembers(key))  # type: ignore[misc]
    if kind == "stream":
        return [b"%d" % await redis.xlen(key)]
    return [await redis.get(key) or b""]


async def test_a_deleted_tenant_leaves_no_key_or_value_and_the_other_tenant_stays(
    world: World, redis: Redis, deps: WorkerDeps, lms: SandboxLms
) -> None:
    assert await redis.zcard(QUEUE_NAME) > 0  # its jobs wait in the shared queue
    before_other = await _other_keys(redis)
    learners_before = [(lr.id, lr.status) for lr in lms.learners()]

    key_only = {"Authorization": f"Bearer {world.admin_key}"}
    refused = await world.http.delete("/admin/v1/tenants/acme", headers=key_only)
    assert refused.status_code == 403  # operator only

    answer = await world.http.delete("/admin/v1/tenants/acme", headers=OP)
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "deleted"
    assert answer.json()["removed"] > 10

    assert await traces_of(redis, *_needles(world)) == []
    assert await _other_keys(redis) == before_other
    assert (await world.other.get(f"/Users/{world.other_person.id}")).status_code == 200  # type: ignore[union-attr]
    # Nothing of it authenticates, and a job still queued somewhere does nothing.
    assert (await world.acme.get("/Users")).status_code == 401
    tenant_page = await world.http.get("/admin/v1/tenants/acme", headers=key_only)
    assert tenant_page.status_code == 401
    assert await run_sync(deps, world.people[2].id) == "tenant missing or disabled"
    assert await traces_of(redis, *_needles(world)) == []
    # The LMS's learners are left as they were.
    assert [(lr.id, lr.status) for lr in lms.learners()] == learners_before
    again = await world.http.delete("/admin/v1/tenants/acme", headers=OP)
    assert again.status_code == 404


async def test_an_interrupted_purge_is_finished_by_the_cli_and_waits_for_a_running_job(
    world: World, redis: Redis, run_cli: Run
) -> None:
    # A job holds a user's lock; the purge stops before the end (its budget).
    lock = keys.user_lock("acme", world.people[0].id)
    await redis.set(lock, "job", px=60_000)
    await begin_purge(redis, "acme")
    partial = await purge_keys(redis, "acme", deadline=time.monotonic() - 1, batch_size=2)
    assert partial.state == "deleting"
    assert (await world.acme.get("/Users")).status_code == 401  # stopped at once
    assert len(await redis.keys(keys.prefix("acme") + "*")) > 5  # more to do

    refused = run_cli(
        "tenant", "create", "acme", "--lms-url", "https://x.test", "--lms-api-key", "k"
    )
    assert refused.returncode == 1
    assert "being deleted" in refused.stderr
    usage = run_cli("tenant", "delete", "acme", "--json")
    assert usage.returncode == 2
    assert "--purge --yes" in json.loads(usage.stdout)["error"]

    waiting = await purge_keys(redis, "acme", lock_wait_s=0.3)
    assert (waiting.state, waiting.running_jobs) == ("deleting", 1)
    await redis.delete(lock)  # the job ends
    done = run_cli("tenant", "delete", "acme", "--purge", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "deleted"
    assert await traces_of(redis, *_needles(world)) == []
    # One audit record of the deletion, with no personal data.
    audit = [line for line in done.stderr.splitlines() if '"tenant delete"' in line]
    assert len(audit) == 1
    assert not any(n.lower() in audit[0].lower() for n in _needles(world)[2:])
    gone = run_cli("tenant", "delete", "acme", "--purge", "--yes")
    assert gone.returncode == 1
    assert "no tenant" in gone.stderr


async def test_the_scan_reads_every_type(redis: Redis) -> None:
    await redis.xadd("s", {"f": "needle"})
    await redis.zadd("z", {"needle": 1})
    assert len(await traces_of(redis, "needle")) == 2
    assert len(await every_key_and_value(redis)) >= 4


async def test_deactivate_learners_goes_through_the_breaker_then_purges(
    world: World, redis: Redis, deps: WorkerDeps, lms: SandboxLms, run_cli: Run
) -> None:
    await set_config(redis, "acme", BreakerConfig(share=0.2, min_learners=1))
    synced = [p.id for p in world.people[:2]]
    first = await world.http.delete(
        "/admin/v1/tenants/acme", params={"deactivate_learners": "true"}, headers=OP
    )
    assert first.status_code == 202, first.text
    assert first.json()["queued"] == 3
    assert (await world.acme.get("/Users")).status_code == 401  # stopped at once
    for uid in [p.id for p in world.people]:
        await run_sync(deps, uid)
    waiting = run_cli("tenant", "delete", "acme", "--purge", "--yes", "--deactivate-learners")
    assert waiting.returncode == 1
    assert "breaker approve acme" in waiting.stdout
    assert {lr.status for lr in lms.learners()} == {"active"}  # held, not yet withdrawn

    approved = run_cli("breaker", "approve", "acme", "--json")
    assert json.loads(approved.stdout)["released"] >= 1
    for uid in [p.id for p in world.people]:
        await run_sync(deps, uid)
    done = run_cli("tenant", "delete", "acme", "--purge", "--yes", "--deactivate-learners")
    assert done.returncode == 0, done.stdout + done.stderr
    assert {lr.external_ref: lr.status for lr in lms.learners()} == dict.fromkeys(
        synced, "deactivated"
    )
    assert await traces_of(redis, *_needles(world)) == []
