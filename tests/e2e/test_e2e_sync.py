"""Entra-shaped traffic through real processes ends in exactly the expected learners.

Two tenants (whose users share email addresses: each has its own LMS
organisation) send each user through a life of creates, attribute changes,
email changes, disables, re-enables and deletes, the way Entra's
provisioning does. The LMS must end holding one learner per person with
every mapped field equal to the newest SCIM state (docs/architecture.md, "Sync rules"),
also when the LMS fails, drops answers or goes down, and when a worker is
killed mid-run (invariants 2, 3 and 4).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.cluster import (
    ENTERPRISE,
    Cluster,
    ClusterFactory,
    TenantHandle,
    cluster_fixture,  # noqa: F401  (the `cluster` fixture)
    duplicate_learners,
    entra_user,
    learner_view,
    make_cluster_fixture,  # noqa: F401  (the `make_cluster` fixture)
    patch_ops,
)

pytestmark = pytest.mark.e2e

#: Concurrent SCIM requests, as Entra's provisioning service sends them.
CLIENT_CONCURRENCY = 8


@dataclass
class Person:
    """One Entra user as the test last told the bridge, and the learner it implies."""

    email: str
    given: str
    family: str
    title: str | None
    department: str | None
    company: str | None
    team: str | None
    active: bool = True
    deleted: bool = False
    scim_id: str = ""

    def body(self) -> dict[str, Any]:
        return entra_user(
            self.email,
            given=self.given,
            family=self.family,
            title=self.title,
            department=self.department,
            company=self.company,
            team=self.team,
            active=self.active,
        )

    def expected(self) -> dict[str, Any]:
        """The default mapping (docs/architecture.md) of this user, and the status it asks for."""
        return {
            "first_name": self.given,
            "last_name": self.family,
            "email": self.email,
            "job_role": self.title,
            "company": self.company,
            "business_unit": self.department,
            "team": self.team,
            "external_ref": self.scim_id,
            "status": "active" if self.active and not self.deleted else "deactivated",
        }


def people_of(tenant: str, count: int) -> list[Person]:
    """The same addresses in every tenant, with tenant-specific values."""
    return [
        Person(
            email=f"user{i:03d}@contoso.example",
            given=f"Given{i}",
            family=f"{tenant.title()}Family{i}",
            title=f"Engineer {i % 5}",
            department=f"Dept {i % 3}",
            company=f"{tenant.title()} Ltd",
            team=f"Team {i % 4}" if i % 7 else None,
        )
        for i in range(count)
    ]


async def create_all(tenant: TenantHandle, people: list[Person]) -> None:
    gate = asyncio.Semaphore(CLIENT_CONCURRENCY)

    async def create(person: Person) -> None:
        async with gate:
            response = await tenant.scim.post("/Users", person.body())
        assert response.status_code == 201, response.text
        person.scim_id = response.json()["id"]

    await asyncio.gather(*(create(p) for p in people))


async def _send(tenant: TenantHandle, person: Person, body: dict[str, Any]) -> None:
    response = await tenant.scim.patch(f"/Users/{person.scim_id}", body)
    assert response.status_code == 200, response.text


async def change_attributes(tenant: TenantHandle, person: Person) -> None:
    """Entra's default dialect: one capitalised op per attribute; a cleared attribute."""
    person.title, person.department, person.team = f"Senior {person.title}", "Research", None
    await _send(
        tenant,
        person,
        patch_ops(
            ("Replace", "title", person.title),
            ("Replace", f"{ENTERPRISE}:department", person.department),
            ("Remove", "urn:ietf:params:scim:schemas:extension:lms:2.0:User:team", None),
        ),
    )


async def change_email(tenant: TenantHandle, person: Person) -> None:
    local, _, domain = person.email.partition("@")
    person.email = f"{local}.renamed@{domain}"
    await _send(
        tenant,
        person,
        patch_ops(
            ("Replace", "userName", person.email),
            ("Replace", 'emails[type eq "work"].value', person.email),
        ),
    )
    person.family = person.family + "-Moved"
    await _send(tenant, person, patch_ops(("Replace", "name.familyName", person.family)))


async def disable(tenant: TenantHandle, person: Person) -> None:
    person.active = False
    await _send(tenant, person, patch_ops(("Replace", "active", "False")))


async def disable_then_enable(tenant: TenantHandle, person: Person) -> None:
    await disable(tenant, person)
    person.active = True
    await _send(tenant, person, patch_ops(("Replace", None, {"active": "True"})))
    person.company = "Fabrikam"
    await _send(tenant, person, patch_ops(("Replace", f"{ENTERPRISE}:organization", "Fabrikam")))


async def delete(tenant: TenantHandle, person: Person) -> None:
    person.title = "Leaver"
    await _send(tenant, person, patch_ops(("Replace", "title", person.title)))
    person.deleted = True
    response = await tenant.scim.delete(f"/Users/{person.scim_id}")
    assert response.status_code == 204, response.text


async def case_and_name(tenant: TenantHandle, person: Person) -> None:
    """A change of letter case is a change; aadOptscim062020's path-less replace."""
    person.email = person.email.upper().replace("@CONTOSO.EXAMPLE", "@contoso.example")
    person.given = person.given + "-Jr"
    await _send(
        tenant,
        person,
        patch_ops(
            ("replace", 'emails[type eq "work"].value', person.email),
            ("replace", None, {"userName": person.email, "name.givenName": person.given}),
        ),
    )


Population = dict[str, tuple[TenantHandle, list[Person]]]
"""Each tenant's handle and people, by slug."""

LIVES: tuple[Callable[[TenantHandle, Person], Awaitable[None]], ...] = (
    change_attributes,
    change_email,
    disable,
    disable_then_enable,
    delete,
    case_and_name,
)


async def live_their_lives(tenant: TenantHandle, people: list[Person]) -> None:
    """Each user's changes in order, users side by side, without waiting for the LMS."""
    gate = asyncio.Semaphore(CLIENT_CONCURRENCY)

    async def live(i: int, person: Person) -> None:
        async with gate:
            await LIVES[i % len(LIVES)](tenant, person)

    await asyncio.gather(*(live(i, p) for i, p in enumerate(people)))


def mismatches(learners: list[dict[str, Any]], people: list[Person]) -> list[tuple[str, str]]:
    """What differs between the org's learners and the people's newest state:
    (SCIM id, problem) pairs, the id "" for what concerns no one person."""
    problems = [
        ("", f"duplicate {key}: learners {ids}")
        for key, ids in duplicate_learners(learners).items()
    ]
    if len(learners) > len(people):
        problems.append(("", f"{len(learners)} learners for {len(people)} people"))
    by_ref = {learner["external_ref"]: learner for learner in learners}
    for person in people:
        learner = by_ref.get(person.scim_id)
        if learner is None:
            # No learner is right for someone whose access was withdrawn
            # before any job ran: a user inactive from the start gets none.
            if person.deleted or not person.active:
                continue
            problems.append((person.scim_id, f"{person.email}: no learner linked to it"))
            continue
        got, want = learner_view(learner), person.expected()
        if person.deleted:
            # Deleted: only deactivated; its fields stay what was last applied.
            got, want = {"status": got["status"]}, {"status": "deactivated"}
        if got != want:
            diff = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
            problems.append((person.scim_id, f"{person.email}: (got, want) {diff}"))
    return problems


async def settled(cluster: Cluster, population: Population) -> bool:
    """Raises AssertionError until every tenant's LMS matches and nothing is
    pending; names each mismatched user's sync state to say why."""
    problems: list[str] = []
    for slug, (tenant, people) in population.items():
        learners = await cluster.sandbox_learners(tenant.org)
        for uid, problem in mismatches(learners, people):
            record = await cluster.sync_record(slug, uid) if uid else None
            why = f" [sync: {record.state} {record.error!r}]" if record else ""
            problems.append(f"{slug}: {problem}{why}")
        counts = await cluster.sync_counts(slug)
        if counts.pending or counts.failed:
            problems.append(f"{slug}: {counts.pending} pending, {counts.failed} failed")
    assert not problems, "\n".join(problems[:20]) + f"\n({len(problems)} problems)"
    return True


async def two_tenants(cluster: Cluster, users: int) -> Population:
    population = {}
    for slug in ("contoso", "fabrikam"):
        tenant = await cluster.add_tenant(slug, rate=20, burst=40)
        # A third of these users leave or are disabled on purpose: more than
        # the mass-deactivation breaker lets through unasked (20% of 25+).
        await cluster.cli("breaker", "set", slug, "--share", "0.5", "--json")
        population[slug] = (tenant, people_of(slug, users))
    return population


async def run_lives(
    cluster: Cluster,
    population: Population,
    *,
    during_changes: Callable[[], Awaitable[None]] | None = None,
    settle_s: float = 60.0,
) -> None:
    """Create everyone and wait for the LMS; then every other change, racing the workers."""
    await asyncio.gather(*(create_all(t, people) for t, people in population.values()))
    await cluster.wait_until(
        lambda: settled(cluster, population), settle_s, message="the creates to reach the LMS"
    )
    changes = asyncio.gather(*(live_their_lives(t, p) for t, p in population.values()))
    if during_changes is not None:
        await during_changes()
    await changes
    await cluster.wait_until(
        lambda: settled(cluster, population), settle_s, message="the LMS to match every change"
    )
    # Still so a moment later (an observation window, not a wait for a
    # condition): no stale or late job comes along and undoes a change.
    await asyncio.sleep(1.0)
    assert await settled(cluster, population)


async def test_entra_lives_of_two_tenants_end_in_exactly_the_expected_learners(
    make_cluster: ClusterFactory,
) -> None:
    """A realistic LMS limit (20 requests a second, bursts of 40, per org) and
    more creates than one burst: the workers pace themselves under it."""
    users = 60
    cluster = await make_cluster(workers=2, knobs={"rate": 20, "burst": 40})
    population = await two_tenants(cluster, users=users)

    await run_lives(cluster, population)

    stats = await cluster.sandbox_stats()
    for slug, (tenant, _) in population.items():
        org = stats["orgs"][tenant.org]
        # Paced across both workers: few or no 429s, and no other refusal.
        assert org["by_status"].get("429", 0) <= 2, (slug, org["by_status"])
        assert set(org["by_status"]) <= {"200", "201", "429"}, (slug, org["by_status"])
        # One POST per person: nothing created twice.
        assert org["by_route"]["POST /api/v1/learners"] == users, (slug, org["by_route"])


FAULTS = {
    "5xx": {"fault_rate": 0.1},
    "dropped_writes": {"drop_after_write_rate": 0.15},
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_entra_lives_survive_lms_faults(make_cluster: ClusterFactory, fault: str) -> None:
    """10% 502/503/504, or writes applied but their answers lost: no duplicate
    learner (a lost POST answer meets its own learner on retry), none stale."""
    cluster = await make_cluster(workers=2, knobs={"seed": 7, "latency_ms": 5, **FAULTS[fault]})
    population = await two_tenants(cluster, users=24)

    await run_lives(cluster, population, settle_s=90)

    stats = await cluster.sandbox_stats()
    seen = stats["by_status"]
    if fault == "5xx":
        assert sum(seen.get(s, 0) for s in ("502", "503", "504")) > 0, seen
    else:
        assert seen.get("dropped", 0) > 0, seen


@pytest.mark.parametrize("outage_s", [6.0])
async def test_entra_lives_survive_an_lms_outage(
    make_cluster: ClusterFactory, outage_s: float
) -> None:
    """The LMS answers 503 (Retry-After) to everything for `outage_s` seconds
    while the changes arrive: they wait, then all reach it."""
    cluster = await make_cluster(workers=2)
    population = await two_tenants(cluster, users=18)

    async def outage() -> None:
        await cluster.set_knobs(outage_seconds=outage_s)

    await run_lives(cluster, population, during_changes=outage, settle_s=outage_s + 60)

    stats = await cluster.sandbox_stats()
    assert stats["by_status"].get("503", 0) > 0, stats["by_status"]


@pytest.mark.parametrize("restart", [False, True], ids=["left_dead", "restarted"])
async def test_entra_lives_survive_a_worker_killed_mid_run(
    make_cluster: ClusterFactory, restart: bool
) -> None:
    """SIGKILL one of two workers while it runs sync jobs (whichever claimed
    them: a worker claims a poll's due jobs in one go); the other (and the
    restarted one) finish its users once the dead worker's per-user locks
    expire (WORKER_JOB_TIMEOUT + 5 s, shortened here)."""
    cluster = await make_cluster(
        workers=2, knobs={"latency_ms": 60}, worker_env={"WORKER_JOB_TIMEOUT": "6"}
    )
    population = await two_tenants(cluster, users=18)
    interrupted: set[str] = set()
    victims: list[int] = []

    def a_worker_running_syncs() -> tuple[int, set[str]] | None:
        for i in range(len(cluster.workers)):
            syncs = {j for j in cluster.jobs_in_flight(i) if j.startswith("sync:")}
            if syncs:
                return i, syncs
        return None

    async def kill_mid_job() -> None:
        victim, syncs = await cluster.wait_until(
            a_worker_running_syncs,
            20,
            message="a worker to run sync jobs of the changes",
            interval=0.01,
        )
        cluster.kill_worker(victim, signal.SIGKILL)
        victims.append(victim)
        interrupted.update(syncs)
        if restart:
            cluster.start_worker(victim)
            await cluster.wait_worker(victim)

    await run_lives(cluster, population, during_changes=kill_mid_job, settle_s=90)
    assert interrupted
    [victim] = victims
    assert cluster.workers[victim].alive is restart


async def test_create_rename_deactivate_in_quick_succession(cluster: Cluster) -> None:
    """Three changes back to back, before any job ran: the learner ends
    deactivated and carries the new name (newest wins, one learner)."""
    await cluster.set_knobs(latency_ms=20)
    tenant = await cluster.add_tenant("contoso")
    people = people_of("contoso", 20)
    gate = asyncio.Semaphore(CLIENT_CONCURRENCY)

    async def quick(person: Person) -> None:
        async with gate:
            created = await tenant.scim.post("/Users", person.body())
            assert created.status_code == 201, created.text
            person.scim_id = created.json()["id"]
            person.given, person.family = "Renamed", person.family + "-Renamed"
            await _send(
                tenant,
                person,
                patch_ops(
                    ("Replace", "name.givenName", person.given),
                    ("Replace", "name.familyName", person.family),
                    ("Replace", "displayName", f"{person.given} {person.family}"),
                ),
            )
            person.active = False
            await _send(tenant, person, patch_ops(("Replace", "active", False)))

    await asyncio.gather(*(quick(p) for p in people))
    population = {"contoso": (tenant, people)}
    await cluster.wait_until(lambda: settled(cluster, population), 60, message="the LMS to settle")
    # Whoever got a learner before the deactivation ran has it deactivated and
    # renamed; whoever was inactive by their first sync got none.
    learners = await cluster.sandbox_learners(tenant.org)
    assert {learner["status"] for learner in learners} <= {"deactivated"}
    assert all(learner["first_name"] == "Renamed" for learner in learners)
