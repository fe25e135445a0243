"""Rules are state too (docs/architecture.md, invariant 9): a change of a tenant's mapping
reaches every learner without any SCIM change, and the preview agrees with
what the worker does."""

from __future__ import annotations

from typing import Any

import msgspec
from arq.worker import Retry

from mappings import MappingOverrides, TeamFromGroups, encode_overrides
from shadow import MappingStore
from tests.support.worker_fixtures import ORG, SandboxLms, put_user, record_of, run_sync, scim_user
from worker import rules as rules_module
from worker.deps import WorkerDeps
from worker.rules import resync_rules
from worker.sweep import sweep_tenant

FOXTROT_OBJECT_ID = "9c2b7a4e-1f3d-4c55-9a0e-6b1d2c3e4f50"


def _team_rule(*patterns: str) -> bytes:
    return encode_overrides(MappingOverrides(team_from_groups=TeamFromGroups(patterns=patterns)))


async def _group(deps: WorkerDeps, gid: str, name: str, members: list[str]) -> None:
    doc = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name,
        "externalId": FOXTROT_OBJECT_ID if name == "Team Foxtrot" else f"ext-{gid}",
    }
    await deps.resources.write(ORG, "g", gid, "create", doc)
    await deps.resources.change_members(ORG, gid, add=members)


async def _drain(deps: WorkerDeps) -> None:
    """Run every pending user's job, as the workers would."""
    for _ in range(5):
        pending = await deps.sync.users_in(ORG, "pending", limit=10_000)
        if not pending:
            return
        for uid in pending:
            await run_sync(deps, uid)


async def _run_resync(deps: WorkerDeps) -> str:
    return await resync_rules({"deps": deps}, ORG)


async def _setup(deps: WorkerDeps, users: int = 6) -> None:
    for n in range(users):
        await put_user(deps, f"u-{n}", scim_user(f"user{n}@example.com"))
    await _drain(deps)
    await _group(deps, "g-1", "Team Foxtrot", [f"u-{n}" for n in range(0, users, 2)])
    await _group(deps, "g-2", "Team Golf", [f"u-{n}" for n in range(1, users, 2)])


def _teams(lms: SandboxLms) -> dict[str | None, str | None]:
    return {lr.external_ref: lr.team for lr in lms.learners()}


async def test_setting_team_from_groups_after_the_groups_exist_reaches_every_learner(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await _setup(deps)
    assert set(_teams(lms).values()) == {None}

    store = MappingStore(deps.redis)
    await store.replace(ORG, _team_rule("Team *"))
    assert (await store.progress(ORG)).state == "running"
    assert (await _run_resync(deps)).startswith("rules re-sync of acme: done")
    await _drain(deps)

    assert _teams(lms) == {
        f"u-{n}": ("Team Foxtrot" if n % 2 == 0 else "Team Golf") for n in range(6)
    }
    progress = await store.progress(ORG)
    assert (progress.state, progress.done, progress.total) == ("done", 6, 6)


async def test_changing_then_removing_the_rule_reaches_every_learner_each_time(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await _setup(deps)
    store = MappingStore(deps.redis)
    await store.replace(ORG, _team_rule("Team *"))
    await _run_resync(deps)
    await _drain(deps)

    # An admin pastes Entra's object id of one group.
    await store.replace(ORG, _team_rule(FOXTROT_OBJECT_ID))
    await _run_resync(deps)
    await _drain(deps)
    assert _teams(lms) == {f"u-{n}": ("Team Foxtrot" if n % 2 == 0 else None) for n in range(6)}

    await store.replace(ORG, None)  # back to the defaults: team from the attribute
    await _run_resync(deps)
    await _drain(deps)
    assert set(_teams(lms).values()) == {None}


async def test_a_constant_rule_reaches_learners_with_one_patch_each(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await _setup(deps, users=3)
    calls_before = len(lms.calls)
    overrides = b'{"fields": {"company": {"constant": "Acme Ltd"}}}'
    await MappingStore(deps.redis).replace(ORG, overrides)
    await _run_resync(deps)
    await _drain(deps)

    assert {lr.company for lr in lms.learners()} == {"Acme Ltd"}
    assert [c.method for c in lms.calls[calls_before:]] == ["PATCH"] * 3


async def test_a_rule_change_in_the_middle_of_a_resync_starts_it_over(
    deps: WorkerDeps, lms: SandboxLms, tenant: object, monkeypatch: Any
) -> None:
    await _setup(deps)
    store = MappingStore(deps.redis)
    monkeypatch.setattr(rules_module, "PAGE_SIZE", 2)
    await store.replace(ORG, _team_rule("Team Golf"))
    page = await store.next_page(ORG, 2)
    assert page is not None
    assert await store.advance(ORG, page)  # one page done under the first rules

    await store.replace(ORG, _team_rule("Team *"))  # the admin changes them again
    assert not await store.advance(ORG, page)  # a stale page does not move the cursor
    assert (await store.progress(ORG)).done == 0
    await _run_resync(deps)
    await _drain(deps)

    assert _teams(lms) == {
        f"u-{n}": ("Team Foxtrot" if n % 2 == 0 else "Team Golf") for n in range(6)
    }


async def test_a_resync_whose_job_was_lost_is_restarted_by_the_sweep(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    """The API stored the rules and died before it enqueued the job."""
    await _setup(deps, users=2)
    await MappingStore(deps.redis).replace(ORG, _team_rule("Team *"))

    await sweep_tenant(deps, ORG)

    job = await deps.queue.exists("arq:job:" + rules_module.resync_job_id(ORG))
    assert job == 1
    await _run_resync(deps)
    await _drain(deps)
    assert set(_teams(lms).values()) == {"Team Foxtrot", "Team Golf"}


async def test_a_long_resync_hands_its_slot_back_and_keeps_its_place(
    deps: WorkerDeps, lms: SandboxLms, tenant: object, monkeypatch: Any
) -> None:
    await _setup(deps, users=4)
    monkeypatch.setattr(rules_module, "PAGE_SIZE", 1)
    monkeypatch.setattr(rules_module, "_BUDGET_S", 0.0)
    await MappingStore(deps.redis).replace(ORG, _team_rule("Team *"))

    done = []
    for _ in range(10):
        try:
            done.append(await _run_resync(deps))
            break
        except Retry:
            continue
    assert done
    progress = await MappingStore(deps.redis).progress(ORG)
    assert (progress.state, progress.done) == ("done", 4)


async def test_preview_uses_the_stored_users_groups(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    await _setup(deps, users=2)
    store = MappingStore(deps.redis)
    await store.replace(ORG, _team_rule("Team Foxtrot"))
    await _run_resync(deps)
    await _drain(deps)
    [learner] = [lr for lr in lms.learners() if lr.external_ref == "u-0"]
    assert learner.team == "Team Foxtrot"

    shown = await store.preview(ORG, {**scim_user("user0@example.com"), "id": "u-0"})
    assert shown["learner"]["team"] == learner.team
    by_body = await store.preview(ORG, {**scim_user(), "groups": [{"value": "g-1"}]})
    assert by_body["learner"]["team"] == "Team Foxtrot"
    alone = await store.preview(ORG, scim_user())
    assert alone["learner"]["team"] is None
    assert msgspec.json.encode(shown)  # JSON-ready


async def test_status_shows_the_resync(deps: WorkerDeps, lms: SandboxLms, tenant: object) -> None:
    from cli.ops import tenant_status

    await _setup(deps, users=2)
    await MappingStore(deps.redis).replace(ORG, _team_rule("Team *"))
    status = await tenant_status(deps.redis, deps.queue, ORG)
    assert status["rules_resync"]["state"] == "running"
    assert status["rules_resync"]["total"] == 2
    await _run_resync(deps)
    status = await tenant_status(deps.redis, deps.queue, ORG)
    assert (status["rules_resync"]["state"], status["rules_resync"]["done"]) == ("done", 2)
    assert (await record_of(deps, "u-0")).state == "pending"
