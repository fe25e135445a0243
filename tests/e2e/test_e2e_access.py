"""Access follows the IdP, and rules are state too, end to end: real API,
workers, sandbox LMS and Redis processes (docs/architecture.md, invariants 8, 9 and 10).

Leavers whose other fields are broken, learners edited by hand on the LMS
side, odd `external_ref` values a pre-existing learner carries, and a
mapping change in the middle of a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import (
    Cluster,
    TenantHandle,
    cluster_fixture,  # noqa: F401  (the `cluster` fixture)
    duplicate_learners,
    entra_user,
    make_cluster_fixture,  # noqa: F401  (the `make_cluster` fixture)
    patch_ops,
)

pytestmark = pytest.mark.e2e
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


async def _create(tenant: TenantHandle, body: dict[str, Any]) -> str:
    response = await tenant.scim.post("/Users", body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _by_ref(cluster: Cluster, org: str) -> dict[str, dict[str, Any]]:
    learners = await cluster.sandbox_learners(org)
    assert not duplicate_learners(learners), duplicate_learners(learners)
    return {str(lr["external_ref"]): lr for lr in learners if lr.get("external_ref")}


async def test_leavers_lose_access_whatever_else_fails_and_whoever_edits_the_lms(
    cluster: Cluster,
) -> None:
    tenant = await cluster.add_tenant("northwind")
    org = tenant.org
    # A learner made by hand whose external_ref would name one of our keys.
    odd = await cluster.insert_learner(
        org, email="odd@northwind.example", first_name="O", last_name="D", external_ref="ids"
    )
    ada = await _create(tenant, entra_user("ada@northwind.example"))
    bob = await _create(tenant, entra_user("bob@northwind.example", given="Bob"))
    cy = await _create(tenant, entra_user("cy@northwind.example", given="Cy"))
    odd_user = await _create(tenant, entra_user("odd@northwind.example", given="Odd"))

    async def all_linked() -> bool:
        found = await _by_ref(cluster, org)
        return all(uid in found for uid in (ada, bob, cy, odd_user))

    await cluster.wait_until(all_linked, 30, message="every user to get its learner")
    assert (await _by_ref(cluster, org))[odd_user]["id"] == odd["id"]  # adopted, no WRONGTYPE

    # Ada leaves; the same PATCH removes her given name (first_name is required).
    response = await tenant.scim.patch(
        f"/Users/{ada}", patch_ops(("Remove", "name.givenName", None), ("Replace", "active", False))
    )
    assert response.status_code == 200, response.text
    # Bob leaves; the same PATCH takes Cy's address, which Cy still holds.
    response = await tenant.scim.patch(
        f"/Users/{bob}",
        patch_ops(
            ("Replace", 'emails[type eq "work"].value', "cy@northwind.example"),
            ("Replace", "active", False),
        ),
    )
    assert response.status_code == 200, response.text

    async def leavers_deactivated() -> bool:
        found = await _by_ref(cluster, org)
        return found[ada]["status"] == found[bob]["status"] == "deactivated"

    await cluster.wait_until(leavers_deactivated, 30, message="both leavers deactivated")
    ada_record = await cluster.sync_record(tenant.slug, ada)
    assert ada_record is not None
    assert ada_record.state == "failed"
    assert "deactivated; not synced: first_name" in ada_record.error

    # Cy is disabled (soft delete), an LMS admin turns the learner back on by
    # hand, then Entra deletes Cy for good: the learner ends deactivated.
    response = await tenant.scim.patch(f"/Users/{cy}", patch_ops(("Replace", "active", False)))
    assert response.status_code == 200, response.text

    async def cy_off() -> bool:
        return (await _by_ref(cluster, org))[cy]["status"] == "deactivated"

    await cluster.wait_until(cy_off, 30, message="Cy deactivated")
    cy_learner = (await _by_ref(cluster, org))[cy]
    await cluster.edit_learner(org, cy_learner["id"], status="active")
    assert (await tenant.scim.delete(f"/Users/{cy}")).status_code == 204

    async def cy_off_again() -> bool:
        return (await _by_ref(cluster, org))[cy]["status"] == "deactivated"

    await cluster.wait_until(cy_off_again, 30, message="the deleted Cy deactivated again")

    # Cy's delete let go of the address Bob asked for: Bob's change applies
    # by itself (no replay), still deactivated.
    async def bob_synced() -> bool:
        record = await cluster.sync_record(tenant.slug, bob)
        return record is not None and record.state == "synced"

    await cluster.wait_until(bob_synced, 60, message="Bob to sync once Cy let go")
    bob_learner = (await _by_ref(cluster, org))[bob]
    assert (bob_learner["email"], bob_learner["status"]) == ("cy@northwind.example", "deactivated")
    # Nothing is pending for ever.
    counts = await cluster.sync_counts(tenant.slug)
    assert counts.pending == 0, counts


async def test_a_mapping_change_mid_run_reaches_every_learner(
    cluster: Cluster, tmp_path: Path
) -> None:
    await cluster.set_knobs(latency_ms=5)
    tenant = await cluster.add_tenant("tailspin", rate=100, burst=100)
    org = tenant.org
    ids = [
        await _create(tenant, entra_user(f"p{i}@tailspin.example", given=f"P{i}"))
        for i in range(20)
    ]
    foxtrot = {
        "schemas": [GROUP],
        "displayName": "Team Foxtrot",
        "externalId": "0f3e1d2c-aaaa-4bbb-8ccc-123456789abc",
        "members": [{"value": uid} for uid in ids[:10]],
    }
    response = await tenant.scim.post("/Groups", foxtrot)
    assert response.status_code == 201, response.text
    # More users arrive while the rule changes.
    late = [
        await _create(tenant, entra_user(f"q{i}@tailspin.example", given=f"Q{i}")) for i in range(5)
    ]
    rules = tmp_path / "mapping.toml"
    rules.write_text(
        '[team_from_groups]\npatterns = ["0F3E1D2C-AAAA-4BBB-8CCC-123456789ABC"]\n'
        '[fields.company]\nconstant = "Tailspin Toys"\n'
    )
    result = await cluster.cli("mapping", "set", tenant.slug, str(rules), "--json")
    assert result["resync"]["state"] == "running"

    async def teams_right() -> bool:
        found = await _by_ref(cluster, org)
        if len(found) != 25:
            return False
        for uid in ids + late:
            want = "Team Foxtrot" if uid in ids[:10] else None
            if (found[uid]["team"], found[uid]["company"]) != (want, "Tailspin Toys"):
                return False
        return True

    await cluster.wait_until(teams_right, 60, message="every learner under the new rules")
    status = await cluster.status(tenant.slug)
    assert status["rules_resync"]["state"] == "done"
    assert status["failed"] == 0
