"""Entra team groups drive learners' teams, end to end: real API, worker,
sandbox LMS and Redis processes, with a fifth of the LMS's answers faults.

The tenant's mapping (set through the CLI) takes the team from groups named
"Team *"; users are added in Entra's batch shape, a group is renamed, a user
moves between groups with Entra's remove-by-filter, a group is deleted, and
a group that is no team changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import (
    Cluster,
    TenantHandle,
    cluster_fixture,  # noqa: F401  (the `cluster` fixture)
    make_cluster_fixture,  # noqa: F401  (the `make_cluster` fixture)
)

pytestmark = pytest.mark.e2e

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


async def _answered(tenant: TenantHandle, method: str, path: str, body: Any = None) -> Any:
    """The request, which must be answered 2xx; then the JSON body."""
    response = await tenant.scim.request(method, path, body)
    assert response.status_code in (200, 201, 204), response.text
    return response.json() if response.content else None


async def _teams(cluster: Cluster, tenant: TenantHandle) -> dict[str, str | None]:
    return {lr["email"]: lr["team"] for lr in await cluster.sandbox_learners(tenant.org)}


async def test_team_groups_drive_learners_teams_under_lms_faults(
    cluster: Cluster, tmp_path: Path
) -> None:
    await cluster.set_knobs(latency_ms=10, fault_rate=0.2, seed=7)  # seeded: faults do happen
    tenant = await cluster.add_tenant("fabrikam", rate=50, burst=50)
    rules = tmp_path / "mapping.toml"
    rules.write_text('[team_from_groups]\npatterns = ["Team *"]\n')
    await cluster.cli("mapping", "set", "fabrikam", str(rules), "--json")

    emails = [f"p{i}@fabrikam.example" for i in range(6)]
    ids = []
    for email in emails:
        user = {
            "schemas": [USER],
            "userName": email,
            "active": True,
            "name": {"givenName": "P", "familyName": email.split("@")[0]},
            "emails": [{"value": email, "type": "work", "primary": True}],
        }
        ids.append((await _answered(tenant, "POST", "/Users", user))["id"])

    async def group(name: str, *members: str) -> str:
        body = {"schemas": [GROUP], "displayName": name, "members": []}
        gid: str = (await _answered(tenant, "POST", "/Groups", body))["id"]
        for member in members:  # Entra adds members in batches after the create
            add = {"op": "Add", "path": "members", "value": [{"value": member}]}
            await _answered(tenant, "PATCH", f"/Groups/{gid}", _ops(add))
        return gid

    async def teams_become(expected: dict[str, str | None], what: str) -> None:
        async def check() -> bool:
            assert await _teams(cluster, tenant) == expected
            return True

        await cluster.wait_until(check, 60, message=what)

    red = await group("Team Red", ids[0], ids[1], ids[2])
    blue = await group("Team Blue", ids[3], ids[4])
    await group("Staff", ids[5], ids[0])  # no team group
    await teams_become(
        dict(zip(emails, ["Team Red"] * 3 + ["Team Blue"] * 2 + [None], strict=True)),
        "teams from the first groups",
    )

    rename = {"op": "Replace", "path": "displayName", "value": "Team Crimson"}
    await _answered(tenant, "PATCH", f"/Groups/{red}", _ops(rename))
    leave = {"op": "Remove", "path": f'members[value eq "{ids[2]}"]'}
    await _answered(tenant, "PATCH", f"/Groups/{red}", _ops(leave))
    join = {"op": "Add", "path": "members", "value": [{"value": ids[2]}]}
    await _answered(tenant, "PATCH", f"/Groups/{blue}", _ops(join))
    await teams_become(
        dict(zip(emails, ["Team Crimson"] * 2 + ["Team Blue"] * 3 + [None], strict=True)),
        "the rename and the move",
    )

    await _answered(tenant, "DELETE", f"/Groups/{blue}")
    await teams_become(
        dict(zip(emails, ["Team Crimson"] * 2 + [None] * 4, strict=True)),
        "the deleted group's members to lose their team",
    )
    stats = await cluster.sandbox_stats()
    assert sum(stats["by_status"].get(s, 0) for s in ("502", "503", "504")) > 0, stats
    status = await cluster.status("fabrikam")
    assert (status["failed"], status["pending"]) == (0, 0), status
