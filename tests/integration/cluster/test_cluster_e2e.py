"""The bridge as real processes with its shadow store on a Redis Cluster.

API and worker processes (tests/support/cluster.py) run with
`REDIS_URL=redis+cluster://...` and `QUEUE_REDIS_URL` on the harness's own
plain redis-server. Entra-shaped lives of two tenants' users (creates,
attribute and email changes, disables, re-enables, deletes: the helpers of
tests/e2e/test_e2e_sync.py) and a third tenant's groups driving learners'
teams must end in exactly the expected learners in the sandbox LMS; the CLI
(`breaker set`, `status`) works against the cluster too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from core.connect import connect
from mappings import MappingOverrides, TeamFromGroups, encode_overrides
from shadow import keys
from tests.e2e.test_e2e_sync import run_lives, two_tenants
from tests.integration.cluster.servers import RedisClusterServers
from tests.support.cluster import Cluster, ClusterOptions, entra_user, patch_ops

pytestmark = pytest.mark.e2e

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


class ShadowOnCluster(Cluster):
    """The harness with the shadow store on a Redis Cluster; the harness's
    own redis-server serves as the queue's Redis (QUEUE_REDIS_URL)."""

    def __init__(self, workdir: Path, options: ClusterOptions, shadow_url: str) -> None:
        super().__init__(workdir, options)
        self.shadow_url = shadow_url

    def _env(self, **extra: str) -> dict[str, str]:
        env = super()._env(**extra)
        env["REDIS_URL"] = self.shadow_url
        env["QUEUE_REDIS_URL"] = self.redis_url
        return env

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = connect(self.shadow_url)
        return self._redis


@pytest.fixture
async def on_cluster(
    tmp_path: Path, redis_cluster: RedisClusterServers, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[..., Awaitable[ShadowOnCluster]]]:
    started: list[ShadowOnCluster] = []
    failed_before = request.session.testsfailed
    flush = connect(redis_cluster.url)
    await flush.flushall()
    await flush.aclose()

    async def make(**options: Any) -> ShadowOnCluster:
        bridge = ShadowOnCluster(
            tmp_path / f"bridge-{len(started)}", ClusterOptions(**options), redis_cluster.url
        )
        started.append(bridge)
        await bridge.start()
        return bridge

    try:
        yield make
    finally:
        for bridge in started:
            await bridge.stop()
            if request.session.testsfailed > failed_before:
                bridge.dump_logs()


async def test_entra_lives_end_in_exactly_the_expected_learners_on_a_cluster(
    on_cluster: Callable[..., Awaitable[ShadowOnCluster]],
) -> None:
    bridge = await on_cluster(workers=2, apis=2, knobs={"rate": 50, "burst": 50})
    population = await two_tenants(bridge, users=30)
    await run_lives(bridge, population, settle_s=90)
    for slug in population:
        status = await bridge.status(slug)
        assert (status["pending"], status["failed"]) == (0, 0), status


async def test_groups_drive_teams_on_a_cluster(
    on_cluster: Callable[..., Awaitable[ShadowOnCluster]],
) -> None:
    bridge = await on_cluster(workers=2)
    tenant = await bridge.add_tenant("groupco", rate=50, burst=50)
    overrides = MappingOverrides(team_from_groups=TeamFromGroups(patterns=("Team *",)))
    await bridge.redis.set(keys.mapping("groupco"), encode_overrides(overrides))
    emails = [f"member{i}@groupco.example" for i in range(6)]
    ids = []
    for email in emails:
        created = await tenant.scim.post("/Users", entra_user(email))
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])

    async def group(name: str, *members: str) -> str:
        body = {
            "schemas": [GROUP_SCHEMA],
            "displayName": name,
            "members": [{"value": m} for m in members],
        }
        response = await tenant.scim.post("/Groups", body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def teams_are(expected: dict[str, str | None]) -> bool:
        """Teams of the learners named (a deleted user's learner keeps what
        it last had, deactivated: docs/architecture.md, "Status")."""
        learners = await bridge.sandbox_learners(tenant.org)
        got = {x["email"]: x.get("team") for x in learners if x["email"] in expected}
        assert got == expected, got
        counts = await bridge.sync_counts("groupco")
        assert (counts.pending, counts.failed) == (0, 0), counts
        return True

    def teams(*names: str | None) -> dict[str, str | None]:
        return dict(zip(emails[: len(names)], names, strict=True))

    async def wait_for_teams(expected: dict[str, str | None], what: str) -> None:
        async def reached() -> bool:
            return await teams_are(expected)

        # (mypy cannot solve wait_until's `T | Awaitable[T]` for a coroutine function)
        await bridge.wait_until(reached, 60, message=what)  # type: ignore[arg-type]

    blue = await group("Team Blue", *ids[:3])
    red = await group("Team Red", *ids[3:5])
    blue3, red2 = ["Team Blue"] * 3, ["Team Red"] * 2
    await wait_for_teams(teams(*blue3, *red2, None), "group teams to reach the LMS")
    move = patch_ops(("Remove", f'members[value eq "{ids[0]}"]', None))
    assert (await tenant.scim.patch(f"/Groups/{blue}", move)).status_code == 200
    add = patch_ops(("Add", "members", [{"value": ids[0]}, {"value": ids[5]}]))
    assert (await tenant.scim.patch(f"/Groups/{red}", add)).status_code == 200
    rename = patch_ops(("Replace", "displayName", "Team Green"))
    assert (await tenant.scim.patch(f"/Groups/{blue}", rename)).status_code == 200
    green2 = ["Team Green"] * 2
    await wait_for_teams(
        teams("Team Red", *green2, *red2, "Team Red"),
        "membership changes and the rename to reach the LMS",
    )
    assert (await tenant.scim.delete(f"/Groups/{red}")).status_code == 204
    deleted = await tenant.scim.delete(f"/Users/{ids[5]}")
    assert deleted.status_code == 204
    after = teams(None, *green2, None, None)
    await wait_for_teams(after, "the group's deletion to clear its teams")
    learners = {x["email"]: x for x in await bridge.sandbox_learners(tenant.org)}
    assert len(learners) == len(emails)
    assert learners[emails[5]]["status"] == "deactivated"
    await asyncio.sleep(0.5)
    assert await teams_are(after)
