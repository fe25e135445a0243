"""Entra groups drive learners' teams: SCIM group changes through the real
API, the sync job body against the sandbox LMS, one path to the LMS."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

import api.endpoints.groups as group_endpoint
from api.app import create_app
from mappings import MappingOverrides, TeamFromGroups, encode_overrides
from shadow import ResourceStore, Tenant, keys
from tests.support.api import GROUP_SCHEMA, PATCH_OP, ScimClient, api_settings
from tests.support.worker_fixtures import ORG, SandboxLms, run_sync
from worker import rules as worker_rules
from worker.deps import WorkerDeps
from worker.sweep import sweep_tenant

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster


async def _drain(redis: Redis, deps: WorkerDeps) -> int:
    """Run the sync job for every user the bridge queued (as workers would)."""
    runs = 0
    while queued := await redis.zrange(keys.queued(ORG), 0, -1):
        for uid in queued:
            await run_sync(deps, uid.decode())
            runs += 1
    return runs


def _teams(lms: SandboxLms) -> dict[str, str | None]:
    return {learner.email: learner.team for learner in lms.learners()}


def _members(*ids: str) -> list[dict[str, str]]:
    return [{"value": i} for i in ids]


async def _teams_from_team_groups(redis: Redis, deps: WorkerDeps) -> str:
    """The tenant takes teams from groups named "Team *"; a SCIM token."""
    overrides = MappingOverrides(team_from_groups=TeamFromGroups(patterns=("Team *",)))
    await redis.set(keys.mapping(ORG), encode_overrides(overrides))
    return (await deps.tenants.issue_token(ORG)).token


async def _users(scim: ScimClient, prefix: str, count: int) -> list[str]:
    """`count` users with work emails `<prefix><i>@example.com`; their ids."""
    ids = []
    for i in range(count):
        email = f"{prefix}{i}@example.com"
        work = [{"value": email, "type": "work", "primary": True}]
        ids.append((await scim.create_user(email, emails=work))["id"])
    return ids


async def test_group_membership_rename_moves_and_deletion_drive_teams(
    redis: Redis, redis_url: str, deps: WorkerDeps, tenant: Tenant, lms: SandboxLms
) -> None:
    token = await _teams_from_team_groups(redis, deps)
    async with AsyncTestClient(app=create_app(api_settings(redis_url))) as http:
        scim = ScimClient(http, ORG, token)
        users = await _users(scim, "u", 4)
        await _drain(redis, deps)
        assert set(_teams(lms).values()) == {None}

        async def group(name: str, *member_ids: str) -> str:
            body = {
                "schemas": [GROUP_SCHEMA],
                "displayName": name,
                "members": _members(*member_ids),
            }
            response = await scim.post("/Groups", body)
            assert response.status_code == 201, response.text
            gid: str = response.json()["id"]
            return gid

        blue = await group("Team Blue", users[0], users[1])
        other = await group("Project X", users[2])  # not a team group
        await _drain(redis, deps)
        assert _teams(lms) == {
            "u0@example.com": "Team Blue",
            "u1@example.com": "Team Blue",
            "u2@example.com": None,
            "u3@example.com": None,
        }

        # Entra adds members in batches: two PATCHes, one sync per user.
        calls_before = len(lms.calls)
        for member in (users[2], users[3]):
            ops: dict[str, Any] = {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "Add", "path": "members", "value": _members(member)}],
            }
            assert (await scim.patch(f"/Groups/{blue}", ops)).status_code == 200
        assert await _drain(redis, deps) == 2
        assert len(lms.calls) - calls_before == 2  # one PATCH of `team` per user
        assert set(_teams(lms).values()) == {"Team Blue"}

        rename = {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "Replace", "path": "displayName", "value": "Team Green"}],
        }
        assert (await scim.patch(f"/Groups/{blue}", rename)).status_code == 200
        await _drain(redis, deps)
        assert set(_teams(lms).values()) == {"Team Green"}

        red = await group("Team Red")
        move = {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "Remove", "path": f'members[value eq "{users[0]}"]'}],
        }
        assert (await scim.patch(f"/Groups/{blue}", move)).status_code == 200
        add = {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "Add", "path": "members", "value": _members(users[0])}],
        }
        assert (await scim.patch(f"/Groups/{red}", add)).status_code == 200
        await _drain(redis, deps)
        assert _teams(lms)["u0@example.com"] == "Team Red"
        assert _teams(lms)["u1@example.com"] == "Team Green"

        assert (await scim.delete(f"/Groups/{blue}")).status_code == 204
        await _drain(redis, deps)
        assert _teams(lms) == {
            "u0@example.com": "Team Red",
            "u1@example.com": None,
            "u2@example.com": None,
            "u3@example.com": None,
        }
        assert (await scim.get(f"/Groups/{other}")).status_code == 200


async def test_group_changes_cost_nothing_when_teams_come_from_an_attribute(
    redis: Redis, redis_url: str, deps: WorkerDeps, tenant: Tenant, lms: SandboxLms
) -> None:
    token = (await deps.tenants.issue_token(ORG)).token
    async with AsyncTestClient(app=create_app(api_settings(redis_url))) as http:
        scim = ScimClient(http, ORG, token)
        uid = (await scim.create_user("solo@example.com"))["id"]
        await _drain(redis, deps)
        body = {"schemas": [GROUP_SCHEMA], "displayName": "Team Blue", "members": _members(uid)}
        assert (await scim.post("/Groups", body)).status_code == 201
        assert await _drain(redis, deps) == 0


async def test_a_renamed_groups_members_are_resynced_a_page_at_a_time(
    redis: Redis,
    redis_url: str,
    deps: WorkerDeps,
    tenant: Tenant,
    lms: SandboxLms,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = await _teams_from_team_groups(redis, deps)
    async with AsyncTestClient(app=create_app(api_settings(redis_url))) as http:
        scim = ScimClient(http, ORG, token)
        users = await _users(scim, "r", 5)
        body = {"schemas": [GROUP_SCHEMA], "displayName": "Team A", "members": _members(*users)}
        created = await scim.post("/Groups", body)
        assert created.status_code == 201, created.text
        await _drain(redis, deps)
        assert set(_teams(lms).values()) == {"Team A"}

        async def whole_set(*args: Any, **kwargs: Any) -> list[str]:
            raise AssertionError("the rename read the whole member set")

        monkeypatch.setattr(group_endpoint, "_MEMBER_PAGE", 2)  # three pages of five
        monkeypatch.setattr(worker_rules, "PAGE_SIZE", 2)
        monkeypatch.setattr(ResourceStore, "member_ids", whole_set)
        monkeypatch.setattr(group_endpoint, "STREAM_MEMBERS_OVER", 0)  # the answer streams too
        rename = {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "Replace", "path": "displayName", "value": "Team B"}],
        }
        assert (await scim.patch(f"/Groups/{created.json()['id']}", rename)).status_code == 200
        # The API re-queued two pages at once and left the rest to a worker.
        queued = {uid.decode() for uid in await redis.zrange(keys.queued(ORG), 0, -1)}
        assert len(queued) == 4
        assert await deps.queue.exists("arq:job:" + worker_rules.followup_job_id(ORG))
        await worker_rules.followups_job({"deps": deps}, ORG)
        queued = {uid.decode() for uid in await redis.zrange(keys.queued(ORG), 0, -1)}
        assert queued == set(users)
        assert await _drain(redis, deps) == 5
        assert set(_teams(lms).values()) == {"Team B"}


@pytest.mark.parametrize("change", ["add member", "remove member", "rename", "delete"])
async def test_a_crash_after_a_group_change_only_delays_the_teams(
    redis: Redis,
    redis_url: str,
    deps: WorkerDeps,
    tenant: Tenant,
    lms: SandboxLms,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    """The API dies (here: its Redis calls fail) right after the group change
    was stored and before any member was re-queued. Entra's retry finds
    nothing left to do; the change itself carried the follow-up, and the
    sweep carries it to the learners."""
    token = await _teams_from_team_groups(redis, deps)
    async with AsyncTestClient(app=create_app(api_settings(redis_url))) as http:
        scim = ScimClient(http, ORG, token)
        users = await _users(scim, "c", 2)
        body = {"schemas": [GROUP_SCHEMA], "displayName": "Team A", "members": _members(users[0])}
        created = await scim.post("/Groups", body)
        assert created.status_code == 201, created.text
        gid = created.json()["id"]
        await _drain(redis, deps)
        assert _teams(lms) == {"c0@example.com": "Team A", "c1@example.com": None}

        async def dies(*args: Any, **kwargs: Any) -> bool:
            raise ConnectionError("the process died here")

        monkeypatch.setattr(group_endpoint, "drain_group_followups", dies)
        ops = {
            "add member": {"op": "Add", "path": "members", "value": _members(users[1])},
            "remove member": {"op": "Remove", "path": f'members[value eq "{users[0]}"]'},
            "rename": {"op": "Replace", "path": "displayName", "value": "Team B"},
        }
        if change == "delete":
            assert (await scim.delete(f"/Groups/{gid}")).status_code == 204
        else:
            patch = {"schemas": [PATCH_OP], "Operations": [ops[change]]}
            assert (await scim.patch(f"/Groups/{gid}", patch)).status_code == 200
        assert await _drain(redis, deps) == 0  # nothing was re-queued
        monkeypatch.undo()

        await sweep_tenant(deps, ORG)
        await _drain(redis, deps)
        want = {
            "add member": {"c0@example.com": "Team A", "c1@example.com": "Team A"},
            "remove member": {"c0@example.com": None, "c1@example.com": None},
            "rename": {"c0@example.com": "Team B", "c1@example.com": None},
            "delete": {"c0@example.com": None, "c1@example.com": None},
        }[change]
        assert _teams(lms) == want


async def test_a_group_change_during_a_drain_keeps_its_follow_up(
    redis: Redis, deps: WorkerDeps, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change that names the same user again while a drain re-queues it
    must not have its follow-up dropped with the drained one."""
    await _teams_from_team_groups(redis, deps)
    for uid in ("u-1", "u-2"):
        await deps.resources.write(ORG, "u", uid, "create", {"userName": f"{uid}@x.example"})
    await deps.resources.write(ORG, "g", "g-1", "create", {"displayName": "Team A"})
    await deps.resources.change_members(ORG, "g-1", add=["u-1"])
    requeue = ResourceStore.requeue_changed_groups

    async def change_meanwhile(self: ResourceStore, *args: Any, **kwargs: Any) -> Any:
        found = await requeue(self, *args, **kwargs)
        monkeypatch.setattr(ResourceStore, "requeue_changed_groups", requeue)
        await deps.resources.change_members(ORG, "g-1", remove=["u-1"], add=["u-2"])
        return found

    monkeypatch.setattr(ResourceStore, "requeue_changed_groups", change_meanwhile)
    assert not await worker_rules.drain_group_followups(redis, deps.queue, tenant)
    left = {m.decode() for m in await redis.smembers(keys.followup_users(ORG))}
    assert left == {"u-1", "u-2"}  # the second change's follow-up survived
    assert await worker_rules.drain_group_followups(redis, deps.queue, tenant)
    assert await redis.scard(keys.followup_users(ORG)) == 0
