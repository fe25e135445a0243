"""Crash points with real processes: the API or the worker SIGKILLed at a
chosen Redis step (tests/support/redis_proxy.py), restarted, and the
request retried as Entra would. The in-process suite
(tests/integration/crash/) covers every step; this shows the same holds
when the process really dies (no `finally`, no answer, sockets closed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest

from mappings import MappingOverrides, TeamFromGroups, encode_overrides
from shadow import keys, scripts
from tests.support.cluster import (
    Cluster,
    ClusterOptions,
    duplicate_learners,
    entra_user,
    patch_ops,
)
from tests.support.redis_proxy import KillingProxy, evalsha_of

pytestmark = pytest.mark.e2e

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[tuple[Cluster, KillingProxy, KillingProxy]]:
    """One API and one worker, each reaching Redis through its own proxy."""
    cluster = Cluster(tmp_path, ClusterOptions(workers=1))
    api_proxy = KillingProxy(cluster.redis_port).start()
    worker_proxy = KillingProxy(cluster.redis_port).start()
    cluster.options.api_env["REDIS_URL"] = api_proxy.url
    cluster.options.worker_env["REDIS_URL"] = worker_proxy.url
    try:
        async with cluster:
            yield cluster, api_proxy, worker_proxy
    except BaseException:
        cluster.dump_logs()
        raise
    finally:
        api_proxy.stop()
        worker_proxy.stop()


async def _one_synced_learner_each(cluster: Cluster, slug: str, org: str, users: int) -> bool:
    counts = await cluster.sync_counts(slug)
    assert (counts.synced, counts.pending, counts.failed) == (users, 0, 0), counts
    learners = await cluster.sandbox_learners(org)
    assert len(learners) == users, learners
    assert not duplicate_learners(learners)
    return True


async def test_api_killed_after_storing_a_create_then_entra_retries(
    proxied: tuple[Cluster, KillingProxy, KillingProxy],
) -> None:
    cluster, api_proxy, _ = proxied
    tenant = await cluster.add_tenant("acme")
    api_proxy.arm(evalsha_of(scripts.PUT_RESOURCE), "after", lambda: cluster.kill_api(0))
    body = entra_user("ada@acme.example")
    try:
        answer = await tenant.scim.post("/Users", body)
        raise AssertionError(f"the API answered {answer.status_code} after it was killed")
    except Exception as exc:  # the connection dropped: no answer
        if isinstance(exc, AssertionError):
            raise
    assert api_proxy.fired.wait(10)
    await cluster.start_api(0)
    # Entra retries the create; the user exists, so it looks it up.
    retry = await tenant.scim.send_until_answered("POST", "/Users", body)
    assert retry.status_code == 409, retry.text
    assert await tenant.scim.find_user_id("ada@acme.example") is not None
    assert await cluster.wait_until(
        partial(_one_synced_learner_each, cluster, tenant.slug, tenant.org, 1), 30, message="synced"
    )


async def test_worker_killed_between_its_lms_write_and_recording_it(
    proxied: tuple[Cluster, KillingProxy, KillingProxy],
) -> None:
    cluster, _, worker_proxy = proxied
    tenant = await cluster.add_tenant("acme")
    worker_proxy.arm(evalsha_of(scripts.FINISH_SYNC), "before", lambda: cluster.kill_worker(0))
    created = await tenant.scim.post("/Users", entra_user("ada@acme.example"))
    assert created.status_code == 201, created.text
    assert await cluster.wait_until(
        worker_proxy.fired.is_set, 30, message="the worker reached its finish"
    )
    # The learner was made; the worker died before it recorded that.
    assert len(await cluster.sandbox_learners(tenant.org)) == 1
    cluster.start_worker(0)
    assert await cluster.wait_until(
        partial(_one_synced_learner_each, cluster, tenant.slug, tenant.org, 1), 40, message="synced"
    )


async def test_api_killed_after_storing_a_group_rename_then_entra_retries(
    proxied: tuple[Cluster, KillingProxy, KillingProxy],
) -> None:
    cluster, api_proxy, _ = proxied
    tenant = await cluster.add_tenant("acme")
    overrides = MappingOverrides(team_from_groups=TeamFromGroups(patterns=("Team *",)))
    await cluster.redis.set(keys.mapping(tenant.slug), encode_overrides(overrides))
    ids = []
    for i in range(3):
        created = await tenant.scim.post("/Users", entra_user(f"u{i}@acme.example"))
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    group = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Team Blue",
        "members": [{"value": uid} for uid in ids[:2]],
    }
    made = await tenant.scim.post("/Groups", group)
    assert made.status_code == 201, made.text
    gid = made.json()["id"]

    async def teams() -> dict[str, str | None]:
        learners = await cluster.sandbox_learners(tenant.org)
        return {learner["email"]: learner.get("team") for learner in learners}

    async def teams_are(want: dict[str, str | None]) -> bool:
        assert await teams() == want
        return True

    blue = {"u0@acme.example": "Team Blue", "u1@acme.example": "Team Blue", "u2@acme.example": None}
    assert await cluster.wait_until(partial(teams_are, blue), 30, message="teams from the group")

    api_proxy.arm(evalsha_of(scripts.PUT_RESOURCE), "after", lambda: cluster.kill_api(0))
    rename = patch_ops(("Replace", "displayName", "Team Green"))
    try:
        answer = await tenant.scim.patch(f"/Groups/{gid}", rename)
        raise AssertionError(f"the API answered {answer.status_code} after it was killed")
    except Exception as exc:
        if isinstance(exc, AssertionError):
            raise
    assert api_proxy.fired.wait(10)
    await cluster.start_api(0)
    retry = await tenant.scim.send_until_answered("PATCH", f"/Groups/{gid}", rename)
    assert retry.status_code == 200, retry.text
    green = {k: ("Team Green" if v else None) for k, v in blue.items()}
    assert await cluster.wait_until(
        partial(teams_are, green), 30, message="the rename reached the teams"
    )
    assert await cluster.wait_until(
        partial(_one_synced_learner_each, cluster, tenant.slug, tenant.org, 3), 30, message="synced"
    )
