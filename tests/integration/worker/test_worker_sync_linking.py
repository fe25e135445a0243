"""One person, one learner: adoption on 409, conflicts, and deletes (docs/architecture.md,
invariant 4 and "Sync rules")."""

from __future__ import annotations

import pytest
from arq.worker import Retry

from tests.support.worker_fixtures import (
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


async def test_adopts_a_learner_made_by_hand_with_the_same_email(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    old = lms.insert(
        email="ADA@example.com", first_name="Ada", last_name="Byron", job_role="Countess"
    )

    assert await run_sync(deps, "u-1") == "absent"  # nothing in the shadow yet
    await put_user(deps, "u-1", scim_user())
    assert await run_sync(deps, "u-1") == "synced"

    assert lms.routes() == [
        "POST /api/v1/learners",
        f"GET /api/v1/learners/{old.id}",
        f"PATCH /api/v1/learners/{old.id}",
    ]
    # Only what differs, plus the link; the email's case is SCIM's.
    assert lms.calls[2].body == {
        "email": "ada@example.com",
        "last_name": "Lovelace",
        "job_role": None,
        "external_ref": "u-1",
    }
    [learner] = lms.learners()
    assert (learner.id, learner.external_ref, learner.last_name) == (old.id, "u-1", "Lovelace")
    record = await record_of(deps, "u-1")
    assert record.learner_id == old.id


async def test_adopting_a_deactivated_learner_reactivates_it(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    old = lms.insert(
        status="deactivated", email="ada@example.com", first_name="Ada", last_name="Lovelace"
    )
    await put_user(deps, "u-1", scim_user())

    await run_sync(deps, "u-1")

    assert lms.routes()[-1] == f"POST /api/v1/learners/{old.id}/reactivate"
    assert lms.learner(old.id).status == "active"


async def test_lost_answer_to_a_create_adopts_its_own_learner(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())
    lms.drop_next_write()

    assert await run_sync(deps, "u-1") == "synced"

    [learner] = lms.learners()  # no second learner
    assert learner.external_ref == "u-1"
    # POST applied but answer lost, retried POST meets 409, GET shows our own
    # learner with every field right: nothing more to send.
    assert lms.routes() == [
        "POST /api/v1/learners",
        "POST /api/v1/learners",
        f"GET /api/v1/learners/{learner.id}",
    ]
    record = await record_of(deps, "u-1")
    assert (record.state, record.learner_id) == ("synced", learner.id)


async def test_entra_delete_and_recreate_under_a_new_id_adopts(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "old-id", scim_user())
    await run_sync(deps, "old-id")
    await put_user(deps, "old-id", None, "delete")
    await run_sync(deps, "old-id")
    [learner] = lms.learners()
    assert (learner.external_ref, learner.status) == ("old-id", "deactivated")
    lms.calls.clear()

    await put_user(deps, "new-id", scim_user())
    assert await run_sync(deps, "new-id") == "synced"

    [learner] = lms.learners()
    assert (learner.external_ref, learner.status) == ("new-id", "active")
    assert lms.routes() == [
        "POST /api/v1/learners",
        f"GET /api/v1/learners/{learner.id}",
        f"PATCH /api/v1/learners/{learner.id}",
        f"POST /api/v1/learners/{learner.id}/reactivate",
    ]
    assert lms.calls[2].body == {"external_ref": "new-id"}


async def test_conflict_with_a_live_user_fails_naming_both(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())
    await run_sync(deps, "u-1")
    [learner] = lms.learners()
    # Another SCIM user (another userName) given the same work email.
    await put_user(deps, "u-2", scim_user(userName="ada2@example.com"))

    assert await run_sync(deps, "u-2") == "failed"

    record = await record_of(deps, "u-2")
    assert record.state == "failed"
    assert record.error == (
        f"LMS 409 email_taken: learner {learner.id} is linked to user u-1 of this tenant, "
        "so user u-2 cannot take it over; tried again when user u-1 changes or goes"
    )
    assert [x.external_ref for x in lms.learners()] == ["u-1"]


async def test_delete_deactivates_the_linked_learner_and_drops_the_shadow(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())
    await run_sync(deps, "u-1")
    [learner] = lms.learners()
    lms.calls.clear()

    await put_user(deps, "u-1", None, "delete")
    assert await run_sync(deps, "u-1") == "synced (deleted)"

    assert lms.routes() == [f"POST /api/v1/learners/{learner.id}/deactivate"]
    assert lms.learner(learner.id).status == "deactivated"
    assert (await deps.sync.read(ORG, "u-1")).exists is False
    assert await deps.sync.record(ORG, "u-1") is None
    counts = await deps.sync.counts(ORG)
    assert (counts.pending, counts.synced, counts.failed) == (0, 0, 0)


async def test_delete_before_any_sync_never_creates(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())
    await put_user(deps, "u-1", None, "delete")

    assert await run_sync(deps, "u-1") == "synced (deleted)"

    assert lms.learners() == []
    assert lms.routes() == [
        "GET /api/v1/learners",  # by external_ref
        "GET /api/v1/learners",  # by the newest email
    ]
    assert (await deps.sync.read(ORG, "u-1")).exists is False


async def test_delete_deactivates_an_unlinked_learner_with_the_newest_email(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    by_hand = lms.insert(email="ada@example.com", first_name="Ada", last_name="Lovelace")
    someone_elses = lms.insert(
        email="bob@example.com", first_name="Bob", last_name="B", external_ref="other"
    )
    await put_user(deps, "u-1", scim_user())
    await put_user(deps, "u-1", None, "delete")
    await put_user(deps, "u-2", scim_user("bob@example.com"))
    await put_user(deps, "u-2", None, "delete")

    await run_sync(deps, "u-1")
    await run_sync(deps, "u-2")

    assert lms.learner(by_hand.id).status == "deactivated"
    assert lms.learner(someone_elses.id).status == "active"  # linked elsewhere: not ours


async def test_delete_with_a_stale_link_finds_the_learner_by_external_ref(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await put_user(deps, "u-1", scim_user())
    await run_sync(deps, "u-1")
    [learner] = lms.learners()
    await deps.sync.record_link(ORG, "u-1", 999, {"active": True})  # a link gone stale
    await put_user(deps, "u-1", None, "delete")

    await run_sync(deps, "u-1")

    assert lms.learner(learner.id).status == "deactivated"
    assert lms.learners() == [lms.learner(learner.id)]


async def test_adoption_waits_while_the_deleted_users_job_runs(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    """Entra deletes a user and re-creates it under a new id; the old id's
    delete job is still running when the new id's job meets the learner. The
    new job waits for it (so the delete cannot deactivate the learner after
    the takeover); the delete that runs after the takeover finds no learner
    of its own and leaves the adopted one active."""
    await put_user(deps, "old-id", scim_user())
    await run_sync(deps, "old-id")
    await put_user(deps, "old-id", None, "delete")  # its delete job not yet run
    await put_user(deps, "new-id", scim_user())

    busy = await deps.sync.lock(ORG, "old-id", 30)  # the old id's job, running
    assert busy is not None
    with pytest.raises(Retry):
        await run_sync(deps, "new-id")
    [learner] = lms.learners()
    assert (learner.external_ref, learner.status) == ("old-id", "active")  # untouched
    await deps.sync.unlock(ORG, "old-id", busy)

    assert await run_sync(deps, "new-id") == "synced"
    assert await run_sync(deps, "old-id") == "synced (deleted)"
    [learner] = lms.learners()
    assert (learner.external_ref, learner.status) == ("new-id", "active")
    assert (await record_of(deps, "new-id")).learner_id == learner.id
    events = [e["event"] for e in await deps.sync.events(ORG, "old-id")]
    assert "no_learner" in events
