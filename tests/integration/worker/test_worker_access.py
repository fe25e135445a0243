"""Access follows the IdP (docs/architecture.md, invariant 8), LMS data is untrusted
(invariant 10), and conflicts resolve themselves (docs/architecture.md, "Linking").

Each test is a sequence an Entra tenant, its admins or the LMS's admins
really produce; each fails on a bridge that lets a leaver keep access.
"""

from __future__ import annotations

import pytest
from arq.worker import Retry

from shadow import keys
from shadow.breaker import breaker_state
from tests.support.worker_fixtures import (
    ORG,
    SandboxLms,
    break_every_pass,
    put_user,
    record_of,
    run_sync,
    scim_user,
)
from worker import sync as sync_module
from worker.deps import WorkerDeps
from worker.reconcile import reconcile_tenant


def _with_work_email(doc: dict[str, object], email: str) -> dict[str, object]:
    """The same user (same userName) with another work address."""
    return {**doc, "emails": [{"value": email, "type": "work", "primary": True}]}


async def _synced(deps: WorkerDeps, uid: str, doc: dict[str, object]) -> int:
    await put_user(deps, uid, doc)
    assert await run_sync(deps, uid) == "synced"
    record = await record_of(deps, uid)
    assert record.learner_id is not None
    return record.learner_id


# -- a withdrawal is applied whatever else fails ------------------------------


async def test_a_leaver_whose_name_is_removed_in_the_same_change_loses_access(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    learner_id = await _synced(deps, "u-1", scim_user())

    # One PATCH: givenName removed and active false.
    await put_user(deps, "u-1", scim_user(given=None, active=False), "update")
    assert await run_sync(deps, "u-1") == "failed"

    assert lms.learner(learner_id).status == "deactivated"
    record = await record_of(deps, "u-1")
    assert record.error.startswith(f"learner {learner_id} deactivated; not synced: first_name")
    # Replay changes nothing more: the deactivation is recorded as applied.
    before = len(lms.calls)
    await deps.sync.finish(ORG, "u-1", 0, "failed")  # no-op: an old version
    assert await run_sync(deps, "u-1") == "up to date"
    assert len(lms.calls) == before


async def test_a_leaver_taking_an_address_another_user_holds_loses_access(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    learner_id = await _synced(deps, "u-1", scim_user())
    await _synced(deps, "u-2", scim_user("bob@example.com", "Bob", "Byron"))

    await put_user(
        deps, "u-1", _with_work_email(scim_user(active=False), "bob@example.com"), "update"
    )
    assert await run_sync(deps, "u-1") == "failed"

    assert lms.learner(learner_id).status == "deactivated"
    record = await record_of(deps, "u-1")
    assert record.error.startswith(f"learner {learner_id} deactivated; not synced: LMS 409")


async def test_a_leaver_is_deactivated_even_when_the_tenants_rules_are_broken(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    learner_id = await _synced(deps, "u-1", scim_user())
    # Rules stored under an older bridge that no longer build.
    await deps.redis.set(keys.mapping(ORG), b'{"fields": {"nonsense": {}}}')

    await put_user(deps, "u-1", scim_user(active=False), "update")
    assert await run_sync(deps, "u-1") == "failed"

    assert lms.learner(learner_id).status == "deactivated"
    assert "mapping rules" in (await record_of(deps, "u-1")).error


async def test_a_delete_deactivates_a_learner_an_lms_admin_turned_back_on(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    """Entra's soft delete (disable) then hard delete, with an LMS admin
    reactivating the learner by hand in between."""
    learner_id = await _synced(deps, "u-1", scim_user())
    await put_user(deps, "u-1", scim_user(active=False), "update")
    assert await run_sync(deps, "u-1") == "synced"
    assert lms.learner(learner_id).status == "deactivated"
    lms.set_status_by_hand(learner_id, "active")

    await put_user(deps, "u-1", None, "delete")
    assert await run_sync(deps, "u-1") == "synced (deleted)"

    assert lms.learner(learner_id).status == "deactivated"
    assert await deps.sync.was_deleted(ORG, "u-1")


# -- no safeguard grants access -----------------------------------------------


async def test_disabled_accounts_assigned_to_the_app_get_no_learner_and_do_not_trip_the_breaker(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    for n in range(30):
        await _synced(deps, f"a-{n}", scim_user(f"a{n}@example.com"))
    for n in range(20):
        await put_user(deps, f"d-{n}", scim_user(f"d{n}@example.com", active=False))
        assert await run_sync(deps, f"d-{n}") == "synced"

    assert not [lr for lr in lms.learners() if lr.email.startswith("d")]
    state = await breaker_state(deps.redis, ORG)
    assert (state.tripped, state.held, state.window_count) == (False, 0, 0)
    # The tenant's real leavers still go through.
    await put_user(deps, "a-0", scim_user("a0@example.com", active=False), "update")
    assert await run_sync(deps, "a-0") == "synced"


async def test_an_inactive_user_adopts_and_deactivates_an_existing_learner(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    old = lms.insert(email="ada@example.com", first_name="Ada", last_name="Lovelace")

    await put_user(deps, "u-1", scim_user(active=False))
    assert await run_sync(deps, "u-1") == "synced"

    assert lms.learner(old.id).status == "deactivated"
    assert lms.learner(old.id).external_ref == "u-1"
    assert len(lms.learners()) == 1


# -- LMS data is untrusted ----------------------------------------------------


@pytest.mark.parametrize("ref", ["ids", "u-9:groups", "gone", "{t:other}:u:x"])
async def test_an_external_ref_that_would_name_a_key_is_never_used_as_one(
    deps: WorkerDeps, lms: SandboxLms, tenant: object, ref: str
) -> None:
    await _synced(deps, "u-9", scim_user("zed@example.com", "Zed", "Zulu"))  # keys exist
    old = lms.insert(email="ada@example.com", first_name="Ada", last_name="L", external_ref=ref)

    await put_user(deps, "u-1", scim_user())
    assert await run_sync(deps, "u-1") == "synced"  # no WRONGTYPE, not pending for ever

    learner = lms.learner(old.id)
    assert learner.external_ref == "u-1"  # not a user of ours: free to adopt
    report = await reconcile_tenant(deps, ORG, repair=False, sleep=_no_sleep)
    assert report.error == ""
    assert report.skipped.get("error", 0) == 0


async def test_reconcile_reports_a_learner_with_an_odd_ref_and_goes_on(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await _synced(deps, "u-1", scim_user())
    odd = lms.insert(email="x@example.com", first_name="X", last_name="Y", external_ref="ids")

    report = await reconcile_tenant(deps, ORG, repair=True, sleep=_no_sleep)

    assert report.error == ""
    assert report.in_sync == 1
    assert [(d.kind, d.learner_id) for d in report.drift] == [("unknown_ref", odd.id)]


async def test_a_job_that_keeps_failing_unexpectedly_ends_its_user_failed(
    deps: WorkerDeps, lms: SandboxLms, tenant: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put_user(deps, "u-1", scim_user())
    break_every_pass(monkeypatch)
    for _ in range(sync_module.MAX_FAULTS - 1):
        with pytest.raises(Retry):
            await run_sync(deps, "u-1")
        assert (await record_of(deps, "u-1")).state == "pending"

    assert (await run_sync(deps, "u-1")).startswith("failed: unexpected error: KeyError")
    record = await record_of(deps, "u-1")
    assert record.state == "failed"
    assert record.error == "unexpected error: KeyError: 'a bug'"
    assert not await deps.sync.is_locked(ORG, "u-1")
    # A new change gives it fresh tries.
    monkeypatch.undo()
    await put_user(deps, "u-1", scim_user(title="Engineer"), "update")
    assert await run_sync(deps, "u-1") == "synced"


# -- conflicts resolve themselves ---------------------------------------------


async def test_a_user_failed_on_a_taken_address_syncs_once_the_holder_lets_go(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await _synced(deps, "u-1", scim_user())
    bob = await _synced(deps, "u-2", scim_user("bob@example.com", "Bob", "Byron"))
    await put_user(
        deps,
        "u-2",
        _with_work_email(scim_user("bob@example.com", "Bob", "Byron"), "ada@example.com"),
        "update",
    )
    assert await run_sync(deps, "u-2") == "failed"  # Ada still holds it

    await put_user(deps, "u-1", _with_work_email(scim_user(), "ada.l@example.com"), "update")
    assert await run_sync(deps, "u-1") == "synced"

    # Ada's sync put Bob back in line, with a job.
    assert (await record_of(deps, "u-2")).state == "pending"
    assert await deps.sync.queued_due(ORG, "u-2") is not None
    assert await run_sync(deps, "u-2") == "synced"
    assert lms.learner(bob).email == "ada@example.com"


async def test_a_user_failed_on_a_taken_address_syncs_once_the_holder_is_deleted(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    ada = await _synced(deps, "u-1", scim_user())
    bob = await _synced(deps, "u-2", scim_user("bob@example.com", "Bob", "Byron"))
    await put_user(
        deps,
        "u-2",
        _with_work_email(scim_user("bob@example.com", "Bob", "Byron"), "ada@example.com"),
        "update",
    )
    assert await run_sync(deps, "u-2") == "failed"

    await put_user(deps, "u-1", None, "delete")
    assert await run_sync(deps, "u-1") == "synced (deleted)"

    assert await run_sync(deps, "u-2") == "synced"
    assert lms.learner(bob).email == "ada@example.com"
    retired = lms.learner(ada)
    assert retired.status == "deactivated"
    assert retired.email == f"released-{ada}@scim-bridge.invalid"


async def test_two_users_who_swap_emails_both_converge(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    ada = await _synced(deps, "u-1", scim_user("a@example.com"))
    bob = await _synced(deps, "u-2", scim_user("b@example.com", "Bob", "Byron"))
    await put_user(
        deps, "u-1", _with_work_email(scim_user("a@example.com"), "b@example.com"), "update"
    )
    bob_doc = _with_work_email(scim_user("b@example.com", "Bob", "Byron"), "a@example.com")
    await put_user(deps, "u-2", bob_doc, "update")

    for _ in range(6):  # as the workers would: whoever is pending runs again
        pending = await deps.sync.users_in(ORG, "pending")
        if not pending:
            break
        for uid in pending:
            await run_sync(deps, uid)

    assert (lms.learner(ada).email, lms.learner(bob).email) == ("b@example.com", "a@example.com")
    assert (await record_of(deps, "u-1")).state == "synced"
    assert (await record_of(deps, "u-2")).state == "synced"


async def test_adoptions_expected_409_is_not_counted_as_an_lms_error(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    from ops.views import lms_error_rate

    lms.insert(email="ada@example.com", first_name="Ada", last_name="Lovelace")
    await put_user(deps, "u-1", scim_user())
    assert await run_sync(deps, "u-1") == "synced"

    rate = await lms_error_rate(deps.redis, ORG)
    assert rate["errors"] == 0
    assert rate["expected"] == 1


# -- reconcile repairs what the IdP withdrew ----------------------------------


async def test_reconcile_repair_deactivates_a_deleted_users_learner_turned_on_by_hand(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    learner_id = await _synced(deps, "u-1", scim_user())
    await put_user(deps, "u-1", None, "delete")
    assert await run_sync(deps, "u-1") == "synced (deleted)"
    lms.set_status_by_hand(learner_id, "active")

    report = await reconcile_tenant(deps, ORG, repair=False, sleep=_no_sleep)
    assert [(d.kind, d.repaired) for d in report.drift] == [("active_after_delete", False)]
    assert lms.learner(learner_id).status == "active"

    report = await reconcile_tenant(deps, ORG, repair=True, sleep=_no_sleep)
    assert [(d.kind, d.repaired) for d in report.drift] == [("active_after_delete", True)]
    assert lms.learner(learner_id).status == "deactivated"


async def _no_sleep(seconds: float) -> None:
    return None
