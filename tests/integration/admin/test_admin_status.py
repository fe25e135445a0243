"""Status, failed users, one user's timeline and replay, through the admin
API, with the real worker job run against the sandbox LMS."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.support.api import OP, ScimClient
from tests.support.worker_fixtures import (
    ORG,
    SandboxLms,
    record_of,
    run_sync,
)
from worker.deps import WorkerDeps

# Every test runs with the sandbox tenant `ORG` (tests.support.worker_fixtures).
# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = [pytest.mark.also_on_cluster, pytest.mark.usefixtures("tenant")]


async def create(scim: ScimClient, email: str, named: bool = True) -> str:
    body: dict[str, Any] = {"emails": [{"value": email, "type": "work", "primary": True}]}
    if named:
        return str((await scim.create_user(email, **body))["id"])
    response = await scim.post(
        "/Users",
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email, **body},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_status_failed_users_timeline_and_replay(
    http: AsyncTestClient[Any], scim: ScimClient, deps: WorkerDeps, lms: SandboxLms
) -> None:
    ada = await create(scim, "ada@example.com")
    nameless = await create(scim, "bob@example.com", named=False)
    clash = await create(scim, "carol@example.com")
    queued = (await http.get(f"/admin/v1/tenants/{ORG}/status", headers=OP)).json()
    assert (queued["pending"], queued["synced"], queued["failed"]) == (3, 0, 0)
    assert queued["oldest_pending_seconds"] >= 0
    assert queued["queue_depth"] >= 3

    assert await run_sync(deps, ada) == "synced"
    assert await run_sync(deps, nameless) == "failed"  # no first or last name
    # Carol's email is taken by Ada's learner, held by a live user: a conflict.
    lms.insert(email="carol@example.com", first_name="C", last_name="X", external_ref=ada + "-x")
    await deps.resources.write(ORG, "u", ada + "-x", "create", {"userName": "x@example.com"})
    assert await run_sync(deps, clash) == "failed"

    status = (await http.get(f"/admin/v1/tenants/{ORG}/status", headers=OP)).json()
    assert (status["pending"], status["synced"], status["failed"], status["held"]) == (1, 1, 2, 0)
    assert status["breaker"]["tripped"] is False
    # Ada's POST, Carol's POST (409) and the GET of the learner it named. The
    # 409 is the LMS's answer that a learner exists: expected, not an error.
    assert status["lms"]["calls"] == 2
    assert status["lms"]["errors"] == 0
    assert status["lms"]["expected"] == 1
    assert status["lms"]["by_status"] == {"200": 1, "201": 1}
    assert status["lms"]["error_rate"] == 0
    assert {e["user_id"] for e in status["last_errors"]} == {nameless, clash}

    first = (await http.get(f"/admin/v1/tenants/{ORG}/users/failed?limit=1", headers=OP)).json()
    assert (first["total"], first["next_offset"]) == (2, 1)
    second = (
        await http.get(f"/admin/v1/tenants/{ORG}/users/failed?offset=1&limit=1", headers=OP)
    ).json()
    assert second["next_offset"] is None
    failed = {u["user_id"]: u for u in first["users"] + second["users"]}
    assert set(failed) == {nameless, clash}
    assert failed[nameless]["error"].startswith("first_name: required")
    assert "LMS 409 email_taken" in failed[clash]["error"]
    bad_page = await http.get(f"/admin/v1/tenants/{ORG}/users/failed?limit=x", headers=OP)
    assert bad_page.status_code == 400

    timeline = (await http.get(f"/admin/v1/tenants/{ORG}/users/{ada}", headers=OP)).json()
    assert timeline["state"] == "synced"
    assert timeline["shadow"]["version"] == 1
    [learner] = [lr for lr in lms.learners() if lr.external_ref == ada]
    assert timeline["learner_id"] == learner.id
    assert [e["event"] for e in reversed(timeline["events"])] == [
        "scim_create",
        "job_started",
        "lms",
        "synced",
    ]
    assert timeline["events"][1]["call"] == "POST /learners"
    for nobody in ("nobody", "ids", f"{ada}:groups", "00000000-0000-0000-0000-000000000000"):
        unknown = await http.get(f"/admin/v1/tenants/{ORG}/users/{nobody}", headers=OP)
        assert unknown.status_code == 404, unknown.text

    # Replay one user, then every failed one.
    one = await http.post(f"/admin/v1/tenants/{ORG}/replay", json={"user_id": clash}, headers=OP)
    assert one.json()["replayed"] == 1
    assert (await record_of(deps, clash)).state == "pending"
    assert (
        await http.post(f"/admin/v1/tenants/{ORG}/replay", json={"user_id": "nobody"}, headers=OP)
    ).status_code == 404
    every = await http.post(f"/admin/v1/tenants/{ORG}/replay", headers=OP)
    assert every.json()["replayed"] == 1  # only the nameless one is still failed
    assert (await record_of(deps, nameless)).state == "pending"
