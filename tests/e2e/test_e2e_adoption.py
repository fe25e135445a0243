"""Learners who exist before the bridge, or before a user's re-creation, are adopted.

docs/architecture.md, "Linking": a create meeting `409 email_taken` reads the learner
and adopts it when its `external_ref` is empty, ours, or names a user of
this tenant that no longer exists (Entra deletes and re-creates users under
a new id). Invariant 4: one person, one learner.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shadow import keys
from tests.support.cluster import (
    Cluster,
    TenantHandle,
    cluster_fixture,  # noqa: F401  (the `cluster` fixture)
    duplicate_learners,
    entra_user,
    learner_view,
    make_cluster_fixture,  # noqa: F401  (the `make_cluster` fixture)
)

pytestmark = pytest.mark.e2e


def expected(body: dict[str, Any], scim_id: str, status: str = "active") -> dict[str, Any]:
    """The default mapping (docs/architecture.md) of an `entra_user` body."""
    enterprise = body.get("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", {})
    return {
        "first_name": body["name"]["givenName"],
        "last_name": body["name"]["familyName"],
        "email": body["emails"][0]["value"],
        "job_role": body.get("title"),
        "company": enterprise.get("organization"),
        "business_unit": enterprise.get("department"),
        "team": body.get("urn:ietf:params:scim:schemas:extension:lms:2.0:User", {}).get("team"),
        "external_ref": scim_id,
        "status": status,
    }


async def create(tenant: TenantHandle, body: dict[str, Any]) -> str:
    response = await tenant.scim.post("/Users", body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def learners_by_email(cluster: Cluster, org: str) -> dict[str, dict[str, Any]]:
    learners = await cluster.sandbox_learners(org)
    assert not duplicate_learners(learners), duplicate_learners(learners)
    return {str(learner["email"]).lower(): learner for learner in learners}


async def test_learners_made_before_the_bridge_are_adopted_not_duplicated(
    cluster: Cluster,
) -> None:
    tenant = await cluster.add_tenant("contoso")
    org = tenant.org
    # Made by hand in the LMS years ago: no external_ref, other values.
    before = {
        "ada@contoso.example": await cluster.insert_learner(
            org, email="ada@contoso.example", first_name="A.", last_name="L.", job_role="Old"
        ),
        "bob@contoso.example": await cluster.insert_learner(
            org, email="BOB@Contoso.Example", first_name="Bob", last_name="B.", team="Red"
        ),
        "cy@contoso.example": await cluster.insert_learner(
            org, email="cy@contoso.example", first_name="Cy", last_name="C.", status="deactivated"
        ),
        "di@contoso.example": await cluster.insert_learner(
            org, email="di@contoso.example", first_name="Di", last_name="D."
        ),
    }
    bystander = await cluster.insert_learner(
        org, email="eve@contoso.example", first_name="Eve", last_name="E."
    )
    bodies = {
        "ada@contoso.example": entra_user(
            "ada@contoso.example", title="Engineer", department="R&D", company="Contoso"
        ),
        # Entra's case differs from the LMS's: the LMS compares lower-cased,
        # and the bridge then writes SCIM's spelling.
        "bob@contoso.example": entra_user("bob@contoso.example", given="Bob", family="Builder"),
        # Deactivated in the LMS, active in Entra: adopted and reactivated.
        "cy@contoso.example": entra_user("cy@contoso.example", given="Cy", team="Blue"),
        # Active in the LMS, disabled in Entra: adopted and deactivated.
        "di@contoso.example": entra_user("di@contoso.example", given="Di", active=False),
        # Not in the LMS yet: created.
        "fay@contoso.example": entra_user("fay@contoso.example", given="Fay"),
    }
    created = await asyncio.gather(*(create(tenant, b) for b in bodies.values()))
    ids = dict(zip(bodies, created, strict=True))

    async def adopted() -> bool:
        found = await learners_by_email(cluster, org)
        for email, body in bodies.items():
            status = "active" if body["active"] else "deactivated"
            assert email in found, f"no learner for {email}"
            assert learner_view(found[email]) == expected(body, ids[email], status), email
        return True

    await cluster.wait_until(adopted, 30, message="the learners to be adopted")
    found = await learners_by_email(cluster, org)
    # Adopted: the very learners that were there, not new ones.
    for email, learner in before.items():
        assert found[email]["id"] == learner["id"], email
    # The learner nobody in Entra claims is left as it was.
    assert found["eve@contoso.example"] == bystander
    assert len(found) == len(bodies) + 1
    stats = (await cluster.sandbox_stats())["orgs"][org]["by_route"]
    # Di, disabled in Entra, is found by email and adopted without a create.
    assert stats["POST /api/v1/learners"] == len(bodies) - 1, stats


async def synced_learner(cluster: Cluster, tenant: TenantHandle, email: str) -> dict[str, Any]:
    async def linked() -> dict[str, Any] | None:
        learner = (await learners_by_email(cluster, tenant.org)).get(email)
        return learner if learner and learner["external_ref"] else None

    found: dict[str, Any] = await cluster.wait_until(linked, 30, message=f"a learner for {email}")
    return found


@pytest.mark.parametrize("wait_for_delete", [True, False], ids=["applied", "racing"])
async def test_a_user_deleted_and_recreated_in_entra_keeps_its_learner(
    cluster: Cluster, wait_for_delete: bool
) -> None:
    """Entra deletes a user and creates it again (a new SCIM id, the same
    email): the learner is adopted by the new user and ends active, linked
    to the new id, with the new values; no second learner."""
    tenant = await cluster.add_tenant("contoso")
    emails = [f"again{i}@contoso.example" for i in range(6)]
    first = await asyncio.gather(*(create(tenant, entra_user(e, title="Before")) for e in emails))
    originals = [await synced_learner(cluster, tenant, e) for e in emails]
    assert [o["external_ref"] for o in originals] == list(first)

    for old_id in first:
        response = await tenant.scim.delete(f"/Users/{old_id}")
        assert response.status_code == 204, response.text
    if wait_for_delete:

        async def deactivated() -> bool:
            found = await learners_by_email(cluster, tenant.org)
            return all(found[e]["status"] == "deactivated" for e in emails)

        await cluster.wait_until(deactivated, 30, message="the deletes to deactivate")

    bodies = [entra_user(e, given="Again", title="After", team="Green") for e in emails]
    second = await asyncio.gather(*(create(tenant, b) for b in bodies))
    assert not set(first) & set(second)

    async def readopted() -> bool:
        found = await learners_by_email(cluster, tenant.org)
        for email, body, new_id in zip(emails, bodies, second, strict=True):
            assert learner_view(found[email]) == expected(body, new_id), email
        counts = await cluster.sync_counts(tenant.slug)
        assert (counts.pending, counts.failed) == (0, 0), counts
        return True

    await cluster.wait_until(readopted, 30, message="the re-created users to adopt")
    found = await learners_by_email(cluster, tenant.org)
    assert [found[e]["id"] for e in emails] == [o["id"] for o in originals]
    assert len(found) == len(emails)


async def test_a_late_delete_does_not_deactivate_the_learner_a_recreated_user_adopted(
    cluster: Cluster,
) -> None:
    """The delete of the old id runs late (here: its lock is still held, as
    after a worker died mid-job), after the re-created user adopted the
    learner. The learner belongs to the new user by then and must stay active."""
    tenant = await cluster.add_tenant("contoso")
    email = "late@contoso.example"
    old_id = await create(tenant, entra_user(email))
    await synced_learner(cluster, tenant, email)

    # A worker that died mid-job for the old id leaves its lock behind.
    await cluster.redis.set(keys.user_lock(tenant.slug, old_id), "dead-worker", px=4000)
    assert (await tenant.scim.delete(f"/Users/{old_id}")).status_code == 204
    body = entra_user(email, given="Again")
    new_id = await create(tenant, body)

    async def adopted() -> bool:
        learner = (await learners_by_email(cluster, tenant.org))[email]
        return learner["external_ref"] == new_id

    await cluster.wait_until(adopted, 30, message="the new user to adopt the learner")

    async def old_delete_done() -> bool:
        counts = await cluster.sync_counts(tenant.slug)
        return (counts.pending, counts.failed) == (0, 0)

    await cluster.wait_until(old_delete_done, 30, message="the old id's delete to run")
    learner = (await learners_by_email(cluster, tenant.org))[email]
    assert learner_view(learner) == expected(body, new_id)
