"""Create, update, no-op, status and mapping failures against the sandbox LMS."""

from __future__ import annotations

import pytest

from shadow import keys
from tests.support.worker_fixtures import (
    LEARNERS,
    ORG,
    SandboxLms,
    put_user,
    record_of,
    run_sync,
    scim_user,
)
from worker.deps import WorkerDeps

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def test_create_is_one_post_carrying_external_ref(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user(title="Engineer"))

    assert await run_sync(deps, "u-1") == "synced"

    assert lms.routes() == ["POST /api/v1/learners"]
    assert lms.calls[0].body == {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "job_role": "Engineer",
        "external_ref": "u-1",
    }
    [learner] = lms.learners()
    assert (learner.external_ref, learner.status) == ("u-1", "active")
    record = await record_of(deps, "u-1")
    assert (record.state, record.learner_id, record.applied_version) == ("synced", learner.id, 1)
    events = [e["event"] for e in reversed(await deps.sync.events(ORG, "u-1"))]
    assert events == ["scim_create", "job_started", "lms", "synced"]


async def test_update_is_one_patch_of_the_changed_fields(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user(title="Engineer"))
    await run_sync(deps, "u-1")
    lms.calls.clear()

    doc = scim_user()  # title gone, department new
    doc[ENTERPRISE] = {"department": "R&D"}
    await put_user(deps, "u-1", doc, "update")
    assert await run_sync(deps, "u-1") == "synced"

    [patch] = lms.calls
    assert patch.method == "PATCH"
    assert patch.path.startswith(LEARNERS + "/")
    assert patch.body == {"job_role": None, "business_unit": "R&D"}
    [learner] = lms.learners()
    assert (learner.job_role, learner.business_unit) == (None, "R&D")


async def test_email_case_change_is_a_change(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())
    await run_sync(deps, "u-1")
    lms.calls.clear()

    await put_user(deps, "u-1", scim_user("Ada@Example.com"), "update")
    await run_sync(deps, "u-1")

    assert [c.body for c in lms.calls] == [{"email": "Ada@Example.com"}]


async def test_nothing_to_change_costs_no_call(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())
    await run_sync(deps, "u-1")
    lms.calls.clear()

    # The same version again (a duplicate job): nothing to do.
    assert await run_sync(deps, "u-1") == "up to date"
    # A new version that maps to the same learner (displayName is not mapped).
    await put_user(deps, "u-1", scim_user(displayName="Ada L."), "update")
    assert await run_sync(deps, "u-1") == "synced"

    assert lms.calls == []
    record = await record_of(deps, "u-1")
    assert (record.state, record.applied_version) == ("synced", 2)


async def test_deactivate_then_reactivate_one_action_each(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())
    await run_sync(deps, "u-1")
    [learner] = lms.learners()
    lms.calls.clear()

    await put_user(deps, "u-1", scim_user(active=False), "update")
    await run_sync(deps, "u-1")
    assert lms.routes() == [f"POST /api/v1/learners/{learner.id}/deactivate"]
    assert lms.learner(learner.id).status == "deactivated"
    lms.calls.clear()

    await put_user(deps, "u-1", scim_user(active=False, title="Chef"), "update")
    await run_sync(deps, "u-1")
    assert lms.routes() == [f"PATCH /api/v1/learners/{learner.id}"]  # status unchanged
    lms.calls.clear()

    await put_user(deps, "u-1", scim_user(title="Chef"), "update")
    await run_sync(deps, "u-1")
    assert lms.routes() == [f"POST /api/v1/learners/{learner.id}/reactivate"]
    assert lms.learner(learner.id).status == "active"


async def test_a_user_created_inactive_gets_no_learner_until_it_is_active(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user(active=False))
    assert await run_sync(deps, "u-1") == "synced"

    assert lms.learners() == []  # never an active learner, not even for a moment
    # It looks for a learner to adopt (and deactivate), and makes none.
    assert lms.routes() == ["GET /api/v1/learners", "GET /api/v1/learners"]
    assert [c.query for c in lms.calls] == [
        {"external_ref": "u-1"},
        {"email": "ada@example.com"},
    ]
    record = await record_of(deps, "u-1")
    assert (record.state, record.learner_id) == ("synced", None)
    assert record.error.startswith("no learner: the user is inactive")

    await put_user(deps, "u-1", scim_user(active=True), "update")
    assert await run_sync(deps, "u-1") == "synced"
    [learner] = lms.learners()
    assert (learner.status, learner.external_ref) == ("active", "u-1")
    assert lms.routes()[2:] == ["POST /api/v1/learners"]


async def test_missing_required_field_fails_without_a_call_until_fixed(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user(family=None))

    assert await run_sync(deps, "u-1") == "failed"

    assert lms.calls == []
    record = await record_of(deps, "u-1")
    assert record.state == "failed"
    assert record.error.startswith("last_name: required")
    assert (await deps.sync.counts(ORG)).failed == 1

    await put_user(deps, "u-1", scim_user(), "update")
    assert await run_sync(deps, "u-1") == "synced"
    assert len(lms.learners()) == 1


async def test_truncated_value_syncs_and_the_status_says_so(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user(title="x" * 150))

    assert await run_sync(deps, "u-1") == "synced"

    [learner] = lms.learners()
    assert learner.job_role == "x" * 100
    record = await record_of(deps, "u-1")
    assert record.state == "synced"
    assert record.error == "job_role: 150 characters, cut to 100"


async def test_tenant_overrides_apply_and_broken_ones_fail_visibly(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await deps.redis.set(keys.mapping(ORG), b'{"fields": {"company": {"constant": "Acme"}}}')
    await put_user(deps, "u-1", scim_user())
    await run_sync(deps, "u-1")
    [learner] = lms.learners()
    assert learner.company == "Acme"

    await deps.redis.set(keys.mapping(ORG), b'{"fields": {"nickname": {}}}')
    await put_user(deps, "u-1", scim_user(title="Chef"), "update")
    assert await run_sync(deps, "u-1") == "failed"
    record = await record_of(deps, "u-1")
    assert record.error.startswith("mapping rules: nickname: not a learner field")

    # A delete needs no rules: the last applied state is enough.
    await put_user(deps, "u-1", None, "delete")
    assert await run_sync(deps, "u-1") == "synced (deleted)"
    assert lms.learner(learner.id).status == "deactivated"
