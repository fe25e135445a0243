"""OneLogin, JumpCloud and PingOne / PingFederate traffic, replayed in the
order each IdP's documentation gives: its connection test, create, update,
deactivate, delete and group push. Entra and Okta have their own suites
(test_api_entra.py, test_api_okta.py).

The bodies follow the vendors' published shapes (sources beside each
step); the quirks they rely on are unit-tested in
tests/unit/scim/test_quirks_vendors.py. Every answer is also read by the
strict client (scim2-models), as a customer's tooling would.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.api import ENTERPRISE, GROUP_SCHEMA, PATCH_OP, USER_SCHEMA, running_api
from tests.support.strict import StrictClient

SCIM_1_CORE = "urn:scim:schemas:core:1.0"


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


class Replay:
    """A tenant's SCIM client whose every answer a strict client reads too."""

    def __init__(self, scim: Any, strict: StrictClient) -> None:
        self.scim = scim
        self.strict = strict

    async def send(
        self, method: str, path: str, status: int, json: Any = None, **kw: Any
    ) -> dict[str, Any]:
        response: httpx.Response = await self.scim.request(method, path, json=json, **kw)
        assert response.status_code == status, (method, path, response.text)
        self.strict.check(response, search=path.endswith(".search"))
        return response.json() if response.content else {}


@pytest.fixture
async def replay(redis: Redis, redis_url: str) -> AsyncIterator[Replay]:
    async with running_api(redis, redis_url, "idp") as clients:
        scim = clients["idp"]
        schemas = await scim.get("/Schemas")
        yield Replay(scim, StrictClient(schemas.json()["Resources"]))


def member_ids(group: dict[str, Any]) -> list[str]:
    return sorted(m["value"] for m in group.get("members", []))


async def test_onelogin_sequence(replay: Replay) -> None:
    """OneLogin's "SCIM Provisioner with SAML" apps: on Enable the app makes an
    initial connection to the SCIM base URL, then pushes the admin's JSON
    template, filled in per user, for every create and update (a whole user,
    so by PUT), with `active` as the string of {$user.active}. Templates:
    https://scim.dev/guide/applications/onelogin (Core Schema, SCIM 1.1 URN)
    and https://doc.keepnetlabs.com/.../onelogin-scim-integration (v2
    Enterprise: "id": null, meta, managerId, "" for unset parameters);
    OneLogin KB0013904 (SCIM custom connectors, parameters)."""

    def template(login: str, active: str, title: str = "") -> dict[str, Any]:
        return {
            ENTERPRISE: {
                "department": "Tours",
                "manager": {"managerId": "", "displayName": " "},
            },
            "active": active,
            "emails": [{"value": login, "type": "work", "primary": True}],
            "meta": {"resourceType": "User"},
            "name": {"familyName": "Doe", "givenName": "Jane", "formatted": "Jane Doe"},
            "userName": login,
            "title": title,
            "id": None,
            "schemas": [USER_SCHEMA],
        }

    login = f"jane.{uuid.uuid4().hex[:8]}@onelogin.example"
    # Connection test, then the lookup before a create.
    await replay.send("GET", "/Users?count=1", 200)
    lookup = await replay.send("GET", f'/Users?filter=userName eq "{login}"', 200)
    assert lookup["totalResults"] == 0
    created = await replay.send("POST", "/Users", 201, template(login, "true"))
    uid = created["id"]
    assert created["active"] is True
    assert created[ENTERPRISE] == {"department": "Tours"}  # managerId "" is no manager
    # Update: the whole template again, by PUT.
    updated = await replay.send("PUT", f"/Users/{uid}", 200, template(login, "true", "Guide"))
    assert updated["title"] == "Guide"
    # Deactivate: the template with {$user.active} = "false".
    off = await replay.send("PUT", f"/Users/{uid}", 200, template(login, "false", "Guide"))
    assert off["active"] is False
    # The Core Schema app's template carries SCIM 1.1's core URN.
    core = await replay.send(
        "POST",
        "/Users",
        201,
        {
            "schemas": [SCIM_1_CORE],
            "userName": f"core.{login}",
            "name": {"givenName": "Core", "familyName": "Doe", "formatted": "Core Doe"},
        },
    )
    assert core["schemas"] == [USER_SCHEMA]
    # Group push: create the group, then members by PATCH.
    group = await replay.send(
        "POST", "/Groups", 201, {"schemas": [GROUP_SCHEMA], "displayName": "OneLogin Role"}
    )
    gid = group["id"]
    added = await replay.send(
        "PATCH",
        f"/Groups/{gid}",
        200,
        ops({"op": "add", "path": "members", "value": [{"value": uid}, {"value": core["id"]}]}),
    )
    assert member_ids(added) == sorted([uid, core["id"]])
    removed = await replay.send(
        "PATCH", f"/Groups/{gid}", 200, ops({"op": "remove", "path": f'members[value eq "{uid}"]'})
    )
    assert member_ids(removed) == [core["id"]]
    # Delete the user and the group.
    await replay.send("DELETE", f"/Users/{uid}", 204)
    await replay.send("GET", f"/Users/{uid}", 404)
    await replay.send("DELETE", f"/Groups/{gid}", 204)


async def test_jumpcloud_sequence(replay: Replay) -> None:
    """JumpCloud's Custom SCIM Identity Management integration: Test
    Connection creates a test user and a test group and deletes both when
    DELETE is supported (https://jumpcloud.com/support/provision-and-manage-
    users-and-groups-in-apps-using-custom-scim-identity-management-integration);
    its events are user create, update, deprovision (made inactive) and
    delete, group create, update and delete
    (https://jumpcloud.com/support, Directory Insights SCIM events). Group
    members are removed Azure AD style, a value list without a filter
    (https://app.uni-moni.com/en/kb/sso-setup-jumpcloud)."""
    # Test Connection: a test user and a test group, created then deleted.
    test_user = await replay.send(
        "POST",
        "/Users",
        201,
        {"schemas": [USER_SCHEMA], "userName": "jc-test@jumpcloud.example", "active": True},
    )
    test_group = await replay.send(
        "POST", "/Groups", 201, {"schemas": [GROUP_SCHEMA], "displayName": "JumpCloud test group"}
    )
    await replay.send("DELETE", f"/Users/{test_user['id']}", 204)
    await replay.send("DELETE", f"/Groups/{test_group['id']}", 204)

    # A user bound to the app: looked up, then created.
    login = "rita.jc@jumpcloud.example"
    lookup = await replay.send("GET", f'/Users?filter=userName eq "{login}"', 200)
    assert lookup["totalResults"] == 0
    user = await replay.send(
        "POST",
        "/Users",
        201,
        {
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "userName": login,
            "externalId": "5f1e0c4b8d3a2b0012345678",
            "name": {"givenName": "Rita", "familyName": "Jones"},
            "displayName": "Rita Jones",
            "emails": [{"value": login, "type": "work", "primary": True}],
            "active": True,
            ENTERPRISE: {"department": "Ops"},
        },
    )
    uid = user["id"]
    peer = await replay.send(
        "POST", "/Users", 201, {"schemas": [USER_SCHEMA], "userName": "sam.jc@jumpcloud.example"}
    )
    # Update and deprovision (inactive).
    updated = await replay.send(
        "PATCH",
        f"/Users/{uid}",
        200,
        ops({"op": "replace", "value": {"title": "Lead", "displayName": "Rita J."}}),
    )
    assert (updated["title"], updated["displayName"]) == ("Lead", "Rita J.")
    off = await replay.send(
        "PATCH", f"/Users/{uid}", 200, ops({"op": "replace", "path": "active", "value": False})
    )
    assert off["active"] is False
    # Group push: create with members, add one not provisioned yet, remove by value list.
    group = await replay.send(
        "POST",
        "/Groups",
        201,
        {"schemas": [GROUP_SCHEMA], "displayName": "Engineering", "members": [{"value": uid}]},
    )
    gid = group["id"]
    assert group["members"][0]["display"] == "Rita J."
    added = await replay.send(
        "PATCH",
        f"/Groups/{gid}",
        200,
        ops(
            {
                "op": "add",
                "path": "members",
                "value": [{"value": peer["id"]}, {"value": "5f1e0c4b8d3a2b00deadbeef"}],
            }
        ),
    )
    assert member_ids(added) == sorted([uid, peer["id"]])  # the unknown one left out
    removed = await replay.send(
        "PATCH",
        f"/Groups/{gid}",
        200,
        ops({"op": "remove", "path": "members", "value": [{"value": uid}]}),
    )
    assert member_ids(removed) == [peer["id"]]
    renamed = await replay.send(
        "PATCH",
        f"/Groups/{gid}",
        200,
        ops({"op": "replace", "value": {"displayName": "Engineering Team"}}),
    )
    assert renamed["displayName"] == "Engineering Team"
    # Delete.
    await replay.send("DELETE", f"/Users/{uid}", 204)
    await replay.send("DELETE", f"/Groups/{gid}", 204)
    await replay.send("GET", f"/Groups/{gid}", 404)


async def test_pingone_pingfederate_sequence(replay: Replay) -> None:
    """PingOne's and PingFederate's SCIM provisioners: the connection check
    reads `GET /Users/0` and takes its 404 as success
    (https://docs.pingidentity.com/integrations/github/github_emu_provisioner/
    pf_github_emu_connector_user_and_group_management.html); users are
    matched on userName (the Unique User Identifier / filter expression,
    pf_scim_connector_user_and_group_management.html); PUT replaces a whole
    user and PATCH changes multi-valued attributes such as group membership
    (https://developer.pingidentity.com/p14e-directory-api/directory-actions.html);
    the Remove User Action disables or deletes
    (https://docs.pingidentity.com/pingone/integrations/p1_scim_provisioning_features.html);
    a client may POST to a user with X-HTTP-Method-Override: PUT or DELETE
    (https://docs.pingidentity.com/pingfederate/latest/developers_reference_guide/
    pf_scim_inbound_provis_endpoints.html)."""
    # Connection check: a user id nobody has, answered 404 with a SCIM error.
    await replay.send("GET", "/Users/0", 404)
    login = "jsmith"
    lookup = await replay.send("GET", f'/Users?filter=userName eq "{login}"', 200)
    assert lookup["totalResults"] == 0

    def user(title: str, active: bool) -> dict[str, Any]:
        return {
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "userName": login,
            "name": {"givenName": "Janet", "familyName": "Smith"},
            "emails": [{"value": "janet.smith@ping.example", "type": "work", "primary": True}],
            "title": title,
            "active": active,
            ENTERPRISE: {"employeeNumber": "4711"},
        }

    created = await replay.send("POST", "/Users", 201, user("Analyst", True))
    uid = created["id"]
    found = await replay.send("GET", "/Users?filter=userName eq jsmith", 200)
    assert [r["id"] for r in found["Resources"]] == [uid]
    updated = await replay.send("PUT", f"/Users/{uid}", 200, user("Architect", True))
    assert updated["title"] == "Architect"
    # Disable (Remove User Action: Disable), by a POST overridden to PUT.
    disabled = await replay.send(
        "POST",
        f"/Users/{uid}",
        200,
        user("Architect", False),
        headers={"X-HTTP-Method-Override": "PUT"},
    )
    assert disabled["active"] is False
    # Group push: create, members by PATCH, rename by PUT.
    group = await replay.send(
        "POST", "/Groups", 201, {"schemas": [GROUP_SCHEMA], "displayName": "Ping Admins"}
    )
    gid = group["id"]
    added = await replay.send(
        "PATCH",
        f"/Groups/{gid}",
        200,
        ops({"op": "add", "path": "members", "value": [{"value": uid}]}),
    )
    assert member_ids(added) == [uid]
    put = await replay.send(
        "PUT",
        f"/Groups/{gid}",
        200,
        {"schemas": [GROUP_SCHEMA], "displayName": "Ping Admins 2", "members": [{"value": uid}]},
    )
    assert (put["displayName"], member_ids(put)) == ("Ping Admins 2", [uid])
    # Delete (Remove User Action: Delete), by a POST overridden to DELETE.
    await replay.send("POST", f"/Users/{uid}", 204, headers={"X-HTTP-Method-Override": "DELETE"})
    await replay.send("GET", f"/Users/{uid}", 404)
    assert member_ids(await replay.send("GET", f"/Groups/{gid}", 200)) == []
    await replay.send("DELETE", f"/Groups/{gid}", 204)
    # A POST to a resource without the override is still a 405.
    await replay.send("POST", f"/Groups/{gid}", 405, {})
