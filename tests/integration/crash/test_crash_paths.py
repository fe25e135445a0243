"""Every multi-step path, failed or killed at each of its Redis commands and
LMS calls in turn, then recovered as production would (Entra retries, locks
lapse, the sweep, workers): each ends as the fault-free run does, with no
duplicate learner and nobody pending (docs/architecture.md, "Crash safety").
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from mappings import MappingOverrides, TeamFromGroups, encode_overrides
from shadow import keys
from shadow.breaker import BreakerConfig, set_config
from shadow.reconcile import progress_of
from tests.support.api import GROUP_SCHEMA, PATCH_OP, USER_SCHEMA
from tests.support.crash import (
    Coverage,
    Lab,
    Outcome,
    Request,
    crash_points,
    request_then_workers,
)
from tests.support.worker_fixtures import ORG
from worker import rules as worker_rules
from worker.queue import QUEUE_NAME

#: Filled by the tests, printed at the end of the run (conftest.py).
COVERED: list[Coverage] = []


def _user(name: str, given: str = "Ada", **extra: Any) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA],
        "userName": name,
        "active": True,
        "name": {"givenName": given, "familyName": "Lovelace"},
        "emails": [{"value": name, "type": "work", "primary": True}],
        **extra,
    }


def _patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def _members(*ids: str) -> list[dict[str, str]]:
    return [{"value": i} for i in ids]


async def _users(lab: Lab, *names: str) -> list[str]:
    scim, _ = lab.api()
    ids = []
    for name in names:
        created = await scim.post("/Users", _user(name))
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
        lab.names[ids[-1]] = name
    await lab.settle()
    return ids


def _learners(outcome: Outcome) -> dict[str, tuple[Any, ...]]:
    """email -> (userName linked, given name, job role, team, status)."""
    return {row[1]: (row[0], row[2], row[4], row[5], row[6]) for row in outcome.learners}


def _states(outcome: Outcome) -> dict[str, str]:
    return {name: state for name, state, _ in outcome.users}


async def _sweep(lab: Lab, name: str, request: Request) -> Outcome:
    reference, coverage = await crash_points(
        lab, name, partial(request_then_workers, request=request)
    )
    COVERED.append(coverage)
    return reference


# -- users ---------------------------------------------------------------------


async def test_user_create(lab: Lab) -> None:
    ref = await _sweep(lab, "user create", Request("POST", "/Users", _user("ada@example.com")))
    assert _learners(ref) == {"ada@example.com": ("ada@example.com", "Ada", None, None, "active")}
    assert _states(ref) == {"ada@example.com": "synced"}


async def test_user_update(lab: Lab) -> None:
    [uid] = await _users(lab, "ada@example.com")
    body = _patch(
        {"op": "Replace", "path": "name.givenName", "value": "Augusta"},
        {"op": "Replace", "path": "title", "value": "Analyst"},
    )
    ref = await _sweep(lab, "user update", Request("PATCH", f"/Users/{uid}", body))
    assert _learners(ref) == {
        "ada@example.com": ("ada@example.com", "Augusta", "Analyst", None, "active")
    }


async def test_user_deactivate(lab: Lab) -> None:
    [uid] = await _users(lab, "ada@example.com")
    body = _patch({"op": "Replace", "path": "active", "value": False})
    ref = await _sweep(lab, "user deactivate", Request("PATCH", f"/Users/{uid}", body))
    assert _learners(ref)["ada@example.com"][-1] == "deactivated"


async def test_user_delete(lab: Lab) -> None:
    [uid] = await _users(lab, "ada@example.com")
    ref = await _sweep(lab, "user delete", Request("DELETE", f"/Users/{uid}"))
    assert _learners(ref)["ada@example.com"][-1] == "deactivated"
    assert _states(ref) == {}


async def test_adoption_on_409(lab: Lab) -> None:
    lab.lms.insert(email="ada@example.com", first_name="Old", last_name="Name")
    ref = await _sweep(lab, "adoption on 409", Request("POST", "/Users", _user("ada@example.com")))
    assert _learners(ref) == {"ada@example.com": ("ada@example.com", "Ada", None, None, "active")}


# -- groups --------------------------------------------------------------------


@pytest.fixture
async def team_group(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[str]]:
    """Teams from groups "Team *"; three users, "Team Blue" with the first
    two. Pages of one member, so a change spans pages and the worker's
    follow-up job."""
    monkeypatch.setattr(worker_rules, "PAGE_SIZE", 1)
    overrides = MappingOverrides(team_from_groups=TeamFromGroups(patterns=("Team *",)))
    await lab.redis.set(keys.mapping(ORG), encode_overrides(overrides))
    users = await _users(lab, "u0@example.com", "u1@example.com", "u2@example.com")
    scim, _ = lab.api()
    body = {"schemas": [GROUP_SCHEMA], "displayName": "Team Blue", "members": _members(*users[:2])}
    created = await scim.post("/Groups", body)
    assert created.status_code == 201, created.text
    await lab.settle()
    return created.json()["id"], users


def _teams(outcome: Outcome) -> dict[str, Any]:
    return {email: row[3] for email, row in _learners(outcome).items()}


async def test_group_create_with_members(lab: Lab, team_group: tuple[str, list[str]]) -> None:
    _, users = team_group
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Team Red",
        "externalId": "5f0c8d1e-0000-4000-8000-00000000red0",  # Entra's object id
        "members": _members(users[2]),
    }
    ref = await _sweep(lab, "group create", Request("POST", "/Groups", body))
    assert _teams(ref)["u2@example.com"] == "Team Red"


async def test_group_member_add(lab: Lab, team_group: tuple[str, list[str]]) -> None:
    gid, users = team_group
    body = _patch({"op": "Add", "path": "members", "value": _members(users[2])})
    ref = await _sweep(lab, "group member add", Request("PATCH", f"/Groups/{gid}", body))
    assert set(_teams(ref).values()) == {"Team Blue"}


async def test_group_member_remove(lab: Lab, team_group: tuple[str, list[str]]) -> None:
    gid, users = team_group
    body = _patch({"op": "Remove", "path": f'members[value eq "{users[1]}"]'})
    ref = await _sweep(lab, "group member remove", Request("PATCH", f"/Groups/{gid}", body))
    assert _teams(ref) == {
        "u0@example.com": "Team Blue",
        "u1@example.com": None,
        "u2@example.com": None,
    }


async def test_group_member_replace(lab: Lab, team_group: tuple[str, list[str]]) -> None:
    gid, users = team_group
    body = _patch({"op": "Replace", "path": "members", "value": _members(users[1], users[2])})
    ref = await _sweep(lab, "group member replace", Request("PATCH", f"/Groups/{gid}", body))
    assert _teams(ref) == {
        "u0@example.com": None,
        "u1@example.com": "Team Blue",
        "u2@example.com": "Team Blue",
    }


async def test_group_rename(lab: Lab, team_group: tuple[str, list[str]]) -> None:
    gid, _ = team_group
    body = _patch({"op": "Replace", "path": "displayName", "value": "Team Green"})
    ref = await _sweep(lab, "group rename", Request("PATCH", f"/Groups/{gid}", body))
    assert _teams(ref) == {
        "u0@example.com": "Team Green",
        "u1@example.com": "Team Green",
        "u2@example.com": None,
    }


async def test_group_delete(lab: Lab, team_group: tuple[str, list[str]]) -> None:
    gid, _ = team_group
    ref = await _sweep(lab, "group delete", Request("DELETE", f"/Groups/{gid}"))
    assert set(_teams(ref).values()) == {None}


async def test_user_delete_in_a_team_group(lab: Lab, team_group: tuple[str, list[str]]) -> None:
    gid, users = team_group
    ref = await _sweep(lab, "user delete, in a group", Request("DELETE", f"/Users/{users[0]}"))
    assert _learners(ref)["u0@example.com"][-1] == "deactivated"
    assert _teams(ref)["u1@example.com"] == "Team Blue"
    assert gid


# -- operators -------------------------------------------------------------------


@pytest.fixture
async def tripped(lab: Lab) -> list[str]:
    """Four users; the breaker lets one deactivation in four through, and
    three deletes leave two of them held."""
    config = BreakerConfig(share=0.25, min_learners=0)
    await set_config(lab.redis, ORG, config)
    users = await _users(lab, *(f"u{i}@example.com" for i in range(4)))
    scim, _ = lab.api()
    for uid in users[:3]:
        assert (await scim.delete(f"/Users/{uid}")).status_code == 204
    await lab.settle()
    assert await lab.redis.zcard(keys.breaker_held(ORG)) == 2
    return users


def _admin(action: str, body: Any = None, **kw: Any) -> Request:
    return Request("POST", f"/admin/v1/tenants/{ORG}/{action}", body, admin=True, **kw)


async def _reconciled(lab: Lab) -> bool:
    return (await progress_of(lab.redis, ORG)).get("state") == "done"


async def test_breaker_approve(lab: Lab, tripped: list[str]) -> None:
    ref = await _sweep(lab, "breaker approve", _admin("breaker/approve"))
    statuses = [row[-1] for row in _learners(ref).values()]
    assert sorted(statuses) == ["active", "deactivated", "deactivated", "deactivated"]
    assert _states(ref) == {"u3@example.com": "synced"}  # the deleted are gone


async def test_breaker_cancel(lab: Lab, tripped: list[str]) -> None:
    ref = await _sweep(lab, "breaker cancel", _admin("breaker/cancel"))
    statuses = [row[-1] for row in _learners(ref).values()]
    assert sorted(statuses) == ["active", "active", "active", "deactivated"]
    assert _states(ref) == {"u3@example.com": "synced"}  # the deleted are gone


async def test_replay(lab: Lab) -> None:
    """Two users whose sync the LMS refused (recorded as the worker records
    it): one never created, one whose update failed. Replay retries both."""
    [changed] = await _users(lab, "b@example.com")
    scim, _ = lab.api()
    created = await scim.post("/Users", _user("a@example.com"))
    assert created.status_code == 201, created.text
    fresh = created.json()["id"]
    lab.names[fresh] = "a@example.com"
    update = _patch({"op": "Replace", "path": "name.givenName", "value": "Bea"})
    assert (await scim.patch(f"/Users/{changed}", update)).status_code == 200
    sync = lab.worker().sync
    for uid in (fresh, changed):
        state = await sync.read(ORG, uid)
        await sync.finish(ORG, uid, state.version, "failed", error="LMS 422: refused")
    await lab.redis.delete(keys.queued(ORG), QUEUE_NAME)  # the jobs ran and failed
    ref = await _sweep(lab, "replay", _admin("replay"))
    assert _learners(ref) == {
        "a@example.com": ("a@example.com", "Ada", None, None, "active"),
        "b@example.com": ("b@example.com", "Bea", None, None, "active"),
    }


async def test_reconcile_repair(lab: Lab) -> None:
    """Learners changed by hand in the LMS; reconcile puts them right."""
    users = await _users(lab, "a@example.com", "b@example.com")
    for learner in lab.lms.learners():
        if learner.email == "a@example.com":
            org = lab.lms.sandbox.store.get(ORG)
            assert org is not None
            org.update(learner.id, {"first_name": "Changed"})
        else:
            lab.lms.set_status_by_hand(learner.id, "deactivated")
    ref = await _sweep(
        lab, "reconcile repair", _admin("reconcile", {"repair": True}, done=_reconciled)
    )
    assert _learners(ref) == {
        "a@example.com": ("a@example.com", "Ada", None, None, "active"),
        "b@example.com": ("b@example.com", "Ada", None, None, "active"),
    }
    assert len(users) == 2
