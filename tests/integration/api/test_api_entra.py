"""Microsoft Entra ID's provisioning traffic, replayed request by request.

The requests are shaped after Microsoft's "Tutorial: Develop and plan
provisioning for a SCIM endpoint" (Test Connection, query before create,
create, get, the PATCH shapes, disable, delete, groups and their members)
and "Known issues and resolutions with SCIM 2.0 protocol compliance"
(the default dialect and the `aadOptscim062020` one: capitalised ops,
"False" strings, members removed by value list or by filter, several
attributes in one path-less replace).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.api import ENTERPRISE, GROUP_SCHEMA, PATCH_OP, USER_SCHEMA, running_api

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
MS_GROUP_SCHEMA = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
FLAG = "aadOptscim062020"  # Entra appends it to the tenant URL as a bare query parameter


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def entra_user(suffix: str, manager_id: str | None = None) -> dict[str, Any]:
    """Entra's create body: core + enterprise, emails/addresses/phoneNumbers, meta, empty roles."""
    enterprise: dict[str, Any] = {
        "employeeNumber": "100042",
        "department": "Sales",
        "organization": "Contoso",
        "costCenter": "CC-7",
        "division": "EMEA",
    }
    if manager_id:
        enterprise["manager"] = {"value": manager_id}
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": f"ext-{suffix}",
        "userName": f"Test_User_{suffix}@contoso.example",
        "active": True,
        "displayName": "Test User",
        "title": "Engineer",
        "preferredLanguage": "en-US",
        "emails": [
            {"primary": True, "type": "work", "value": f"Test_User_{suffix}@contoso.example"}
        ],
        "addresses": [
            {
                "type": "work",
                "formatted": "1 Microsoft Way\nRedmond, WA 98052",
                "streetAddress": "1 Microsoft Way",
                "locality": "Redmond",
                "region": "WA",
                "postalCode": "98052",
                "country": "US",
                "primary": False,
            }
        ],
        "phoneNumbers": [
            {"type": "work", "value": "+1 425 555 0100"},
            {"type": "mobile", "value": "+1 425 555 0101"},
        ],
        "meta": {"resourceType": "User"},
        "name": {
            "formatted": "givenName familyName",
            "familyName": "familyName",
            "givenName": "givenName",
        },
        "roles": [],
        ENTERPRISE: enterprise,
    }


def assert_list(response: httpx.Response, total: int) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [LIST_SCHEMA]
    assert body["totalResults"] == total
    assert body["startIndex"] == 1
    assert body["itemsPerPage"] == len(body["Resources"])
    resources: list[dict[str, Any]] = body["Resources"]
    return resources


def assert_error(response: httpx.Response, status: int, scim_type: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type
    assert body["detail"]


@pytest.fixture
async def entra(redis: Redis, redis_url: str) -> AsyncIterator[Any]:
    async with running_api(redis, redis_url, "contoso") as clients:
        yield clients["contoso"]


async def test_test_connection_probe_gets_an_empty_list(entra: Any) -> None:
    """Test Connection queries a non-existent user by the matching attribute."""
    for flt in (
        f'userName eq "{uuid.uuid4()}"',
        f'externalId eq "{uuid.uuid4()}"',
        'userName eq "non-existent user"',
    ):
        response = await entra.get("/Users", params={"filter": flt})
        assert assert_list(response, 0) == []
    groups = await entra.get(
        "/Groups",
        params={"excludedAttributes": "members", "filter": f'displayName eq "{uuid.uuid4()}"'},
    )
    assert assert_list(groups, 0) == []
    assert (await entra.get("/ServiceProviderConfig")).status_code == 200
    assert (await entra.get("/Schemas")).status_code == 200


async def test_user_lifecycle_in_the_default_dialect(entra: Any) -> None:
    suffix = uuid.uuid4().hex[:12]
    body = entra_user(suffix)
    user_name, external_id = body["userName"], body["externalId"]

    # Query before create: by the matching attribute, userName then externalId.
    assert_list(await entra.get("/Users", params={"filter": f'userName eq "{user_name}"'}), 0)
    assert_list(await entra.get("/Users", params={"filter": f'externalId eq "{external_id}"'}), 0)

    created = await entra.post("/Users", body)
    assert created.status_code == 201, created.text
    user = created.json()
    uid = user["id"]
    assert user["schemas"] == [USER_SCHEMA, ENTERPRISE]
    assert user["userName"] == user_name
    assert user["externalId"] == external_id
    assert user["active"] is True
    assert user["name"] == body["name"]
    assert user["emails"] == body["emails"]
    assert user["addresses"] == body["addresses"]
    assert user["phoneNumbers"] == body["phoneNumbers"]
    assert user[ENTERPRISE] == body[ENTERPRISE]
    assert "roles" not in user
    assert user["meta"]["resourceType"] == "User"
    assert user["meta"]["location"] == f"https://bridge.test/scim/contoso/v2/Users/{uid}"
    assert created.headers["location"] == user["meta"]["location"]

    # Get, and the same user found by both matching attributes (case-insensitive userName).
    got = await entra.get(f"/Users/{uid}")
    assert got.status_code == 200
    assert got.json() == user
    for flt in (f'userName eq "{user_name.upper()}"', f'externalId eq "{external_id}"'):
        (found,) = assert_list(await entra.get("/Users", params={"filter": flt}), 1)
        assert found == user

    # Update user [multi-valued properties].
    multi = await entra.patch(
        f"/Users/{uid}",
        ops(
            {
                "op": "Replace",
                "path": 'emails[type eq "work"].value',
                "value": "updatedEmail@contoso.example",
            },
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
        ),
    )
    assert multi.status_code == 200, multi.text
    patched = multi.json()
    assert patched["emails"] == [
        {"primary": True, "type": "work", "value": "updatedEmail@contoso.example"}
    ]
    assert patched["name"]["familyName"] == "updatedFamilyName"
    assert patched["name"]["givenName"] == "givenName"
    assert patched["meta"]["version"] != user["meta"]["version"]

    # Update user [single-valued properties]: userName.
    renamed = await entra.patch(
        f"/Users/{uid}",
        ops({"op": "Replace", "path": "userName", "value": f"{suffix}@contoso.example"}),
    )
    assert renamed.json()["userName"] == f"{suffix}@contoso.example"
    assert_list(await entra.get("/Users", params={"filter": f'userName eq "{user_name}"'}), 0)
    assert_list(
        await entra.get("/Users", params={"filter": f'userName eq "{suffix}@contoso.example"'}),
        1,
    )

    # "Replace several attributes", the default dialect: one operation each.
    several = await entra.patch(
        f"/Users/{uid}",
        ops(
            {"op": "Replace", "path": "displayName", "value": "Pvlo"},
            {
                "op": "Replace",
                "path": 'emails[type eq "work"].value',
                "value": "TestBcwqnm@contoso.example",
            },
            {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
            {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
            {"op": "Replace", "path": "externalId", "value": "Eqpj"},
            {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "Eqpj"},
            {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Marketing"},
            {"op": "Add", "path": "nickName", "value": "Babs"},
            {
                "op": "Add",
                "path": 'phoneNumbers[type eq "fax"].value',
                "value": "+1 425 555 0199",
            },
            {
                "op": "Replace",
                "path": 'addresses[type eq "work"].locality',
                "value": "Bellevue",
            },
            {"op": "Remove", "path": "title"},
        ),
    )
    assert several.status_code == 200, several.text
    now = several.json()
    assert now["displayName"] == "Pvlo"
    assert now["emails"][0]["value"] == "TestBcwqnm@contoso.example"
    assert now["name"] == {
        "formatted": "givenName familyName",
        "familyName": "Pkqf",
        "givenName": "Gtfd",
    }
    assert now["externalId"] == "Eqpj"
    assert now[ENTERPRISE]["employeeNumber"] == "Eqpj"
    assert now[ENTERPRISE]["department"] == "Marketing"
    assert now["nickName"] == "Babs"
    assert {"type": "fax", "value": "+1 425 555 0199"} in now["phoneNumbers"]
    assert len(now["phoneNumbers"]) == 3
    assert now["addresses"][0]["locality"] == "Bellevue"
    assert now["addresses"][0]["postalCode"] == "98052"
    assert "title" not in now
    assert (await entra.get(f"/Users/{uid}")).json() == now
    assert_list(await entra.get("/Users", params={"filter": 'externalId eq "Eqpj"'}), 1)
    assert_list(await entra.get("/Users", params={"filter": f'externalId eq "{external_id}"'}), 0)

    # Disable: "False" as a string, with a path and without one.
    disabled = await entra.patch(
        f"/Users/{uid}", ops({"op": "Replace", "path": "active", "value": "False"})
    )
    assert disabled.status_code == 200
    assert disabled.json()["active"] is False
    # A disabled user still answers GET and filters (only DELETE hides it).
    assert (await entra.get(f"/Users/{uid}")).json()["active"] is False
    (found,) = assert_list(await entra.get("/Users", params={"filter": 'externalId eq "Eqpj"'}), 1)
    assert found["active"] is False

    enabled = await entra.patch(
        f"/Users/{uid}", ops({"op": "Replace", "value": {"active": "True"}})
    )
    assert enabled.json()["active"] is True
    again = await entra.patch(f"/Users/{uid}", ops({"op": "Replace", "value": {"active": "False"}}))
    assert again.json()["active"] is False

    # Delete: 204, then gone for GET, filters and PATCH.
    deleted = await entra.delete(f"/Users/{uid}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(await entra.get(f"/Users/{uid}"), 404)
    assert_list(await entra.get("/Users", params={"filter": 'externalId eq "Eqpj"'}), 0)
    assert_error(
        await entra.patch(
            f"/Users/{uid}", ops({"op": "Replace", "path": "active", "value": "True"})
        ),
        404,
    )
    # Entra re-creates a user deleted upstream: same userName, new id.
    recreated = await entra.post("/Users", entra_user(suffix))
    assert recreated.status_code == 201, recreated.text
    assert recreated.json()["id"] != uid


async def test_user_updates_with_aad_opt_scim_062020(entra: Any) -> None:
    """The compliant dialect: lower-case ops, real booleans, one path-less
    replace keyed by dotted and URN-qualified attribute paths."""
    user = (await entra.post(f"/Users?{FLAG}", entra_user(uuid.uuid4().hex[:12]))).json()
    uid = user["id"]
    flagged = f"/Users/{uid}?{FLAG}"

    replaced = await entra.patch(
        flagged,
        ops(
            {
                "op": "replace",
                "path": 'emails[type eq "work"].value',
                "value": "TestMhvaes@contoso.example",
            },
            {
                "op": "replace",
                "value": {
                    "displayName": "Bjfe",
                    "name.givenName": "Kkom",
                    "name.familyName": "Unua",
                    f"{ENTERPRISE}:employeeNumber": "Aklq",
                },
            },
        ),
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["emails"] == [
        {"primary": True, "type": "work", "value": "TestMhvaes@contoso.example"}
    ]
    assert body["displayName"] == "Bjfe"
    assert body["name"] == {
        "formatted": "givenName familyName",
        "familyName": "Unua",
        "givenName": "Kkom",
    }
    assert body[ENTERPRISE]["employeeNumber"] == "Aklq"
    assert body[ENTERPRISE]["department"] == "Sales"  # untouched siblings stay

    nick = await entra.patch(flagged, ops({"op": "add", "path": "nickName", "value": "Babs"}))
    assert nick.json()["nickName"] == "Babs"

    off = await entra.patch(flagged, ops({"op": "replace", "path": "active", "value": False}))
    assert off.status_code == 200
    assert off.json()["active"] is False
    assert (await entra.get(flagged)).json()["active"] is False
    on = await entra.patch(flagged, ops({"op": "replace", "path": "active", "value": True}))
    assert on.json()["active"] is True

    listed = await entra.get(
        "/Users", params={FLAG: "", "filter": f'userName eq "{user["userName"]}"'}
    )
    assert assert_list(listed, 1)[0]["id"] == uid
    assert (await entra.delete(flagged)).status_code == 204


async def test_manager_is_set_replaced_and_cleared(entra: Any) -> None:
    boss = (await entra.post("/Users", entra_user("boss"))).json()
    boss2 = (await entra.post("/Users", entra_user("boss2"))).json()
    user = (await entra.post("/Users", entra_user("worker", manager_id=boss["id"]))).json()
    uid, path = user["id"], f"{ENTERPRISE}:manager"
    assert user[ENTERPRISE]["manager"] == {"value": boss["id"]}

    async def manager_after(*operations: dict[str, Any]) -> object:
        response = await entra.patch(f"/Users/{uid}", ops(*operations))
        assert response.status_code == 200, response.text
        stored = (await entra.get(f"/Users/{uid}")).json()
        assert stored == response.json()
        return stored.get(ENTERPRISE, {}).get("manager")

    # Entra's shape: the bare id string.
    assert await manager_after({"op": "Add", "path": path, "value": boss2["id"]}) == {
        "value": boss2["id"]
    }
    assert await manager_after({"op": "Replace", "path": path, "value": {"value": boss["id"]}}) == {
        "value": boss["id"]
    }
    assert await manager_after({"op": "Remove", "path": path}) is None
    assert await manager_after({"op": "Replace", "path": path, "value": boss2["id"]}) == {
        "value": boss2["id"]
    }
    assert await manager_after({"op": "Replace", "path": path, "value": ""}) is None
    assert await manager_after({"op": "add", "path": path, "value": boss["id"]}) == {
        "value": boss["id"]
    }
    assert await manager_after({"op": "replace", "path": path, "value": {"value": ""}}) is None
    assert await manager_after({"op": "add", "path": f"{path}.value", "value": boss["id"]}) == {
        "value": boss["id"]
    }
    assert (
        await manager_after({"op": "Remove", "path": path, "value": [{"value": boss["id"]}]})
        is None
    )
    assert await manager_after(
        {"op": "Replace", "value": {f"{ENTERPRISE}:manager": boss2["id"]}}
    ) == {"value": boss2["id"]}
    # The rest of the enterprise extension is never touched by manager changes.
    final = (await entra.get(f"/Users/{uid}")).json()[ENTERPRISE]
    assert final["department"] == "Sales"
    assert final["employeeNumber"] == "100042"
    # Entra checks a reference with `manager.value eq`: answered from the id index.
    check = await entra.get(
        "/Users", params={"filter": f'id eq "{uid}" and {path}.value eq "{boss2["id"]}"'}
    )
    assert [r["id"] for r in assert_list(check, 1)] == [uid]


async def test_duplicate_create_is_409_uniqueness(entra: Any) -> None:
    body = entra_user("dup")
    first = await entra.post("/Users", body)
    assert first.status_code == 201
    for user_name in (body["userName"], body["userName"].lower(), body["userName"].upper()):
        again = await entra.post("/Users", {**body, "userName": user_name, "externalId": "other"})
        assert_error(again, 409, "uniqueness")
    assert_list(await entra.get("/Users"), 1)


async def test_group_lifecycle(redis: Redis, redis_url: str) -> None:
    async with running_api(redis, redis_url, "contoso", "fabrikam") as clients:
        entra, other = clients["contoso"], clients["fabrikam"]
        members = [(await entra.post("/Users", entra_user(f"m{i}"))).json()["id"] for i in range(4)]
        stranger = (await other.post("/Users", entra_user("stranger"))).json()["id"]

        # Create: Entra adds Microsoft's own schema URN and a meta; members come later.
        created = await entra.post(
            "/Groups",
            {
                "schemas": [GROUP_SCHEMA, MS_GROUP_SCHEMA],
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "displayName",
                "meta": {"resourceType": "Group"},
            },
        )
        assert created.status_code == 201, created.text
        group = created.json()
        gid = group["id"]
        assert group["schemas"] == [GROUP_SCHEMA]
        assert group["displayName"] == "displayName"
        assert group["externalId"] == "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
        assert group["meta"]["resourceType"] == "Group"
        assert group["meta"]["location"] == f"https://bridge.test/scim/contoso/v2/Groups/{gid}"

        # Get group and find it by displayName (case-insensitive) and externalId.
        got = await entra.get(f"/Groups/{gid}", params={"excludedAttributes": "members"})
        assert got.json() == group
        for flt in (
            'displayName eq "displayName"',
            'displayName eq "DISPLAYNAME"',
            'externalId eq "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"',
        ):
            (found,) = assert_list(
                await entra.get("/Groups", params={"excludedAttributes": "members", "filter": flt}),
                1,
            )
            assert found["id"] == gid
            assert "members" not in found

        # Add members, in a batch, with Entra's "$ref": null.
        added = await entra.patch(
            f"/Groups/{gid}",
            ops(
                {
                    "op": "Add",
                    "path": "members",
                    "value": [{"$ref": None, "value": m} for m in members],
                }
            ),
        )
        assert added.status_code == 200, added.text
        assert sorted(m["value"] for m in added.json()["members"]) == sorted(members)
        lean = await entra.get(f"/Groups/{gid}", params={"excludedAttributes": "members"})
        assert "members" not in lean.json()
        (with_member,) = assert_list(
            await entra.get(
                "/Groups",
                params={
                    "filter": f'id eq "{gid}" and members.value eq "{members[0]}"',
                    "excludedAttributes": "members",
                },
            ),
            1,
        )
        assert with_member["id"] == gid

        # Adding someone already there changes nothing, not even the version.
        version = (await entra.get(f"/Groups/{gid}")).json()["meta"]["version"]
        noop = await entra.patch(
            f"/Groups/{gid}",
            ops({"op": "Add", "path": "members", "value": [{"value": members[0]}]}),
        )
        assert noop.json()["meta"]["version"] == version

        # Remove: Entra's default dialect sends the members in the value ...
        removed = await entra.patch(
            f"/Groups/{gid}",
            ops(
                {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": members[0]}]}
            ),
        )
        assert removed.status_code == 200, removed.text
        assert sorted(m["value"] for m in removed.json()["members"]) == sorted(members[1:])
        # ... aadOptscim062020 puts each in a filter.
        filtered = await entra.patch(
            f"/Groups/{gid}?{FLAG}",
            ops({"op": "remove", "path": f'members[value eq "{members[1]}"]'}),
        )
        assert sorted(m["value"] for m in filtered.json()["members"]) == sorted(members[2:])
        several = await entra.patch(
            f"/Groups/{gid}",
            ops(
                {
                    "op": "Remove",
                    "path": "members",
                    "value": [{"value": members[2]}, {"value": "never-a-member"}],
                }
            ),
        )
        assert [m["value"] for m in several.json()["members"]] == [members[3]]

        # Members must be users of this tenant: another tenant's user or a
        # made-up id is left out, never stored; the rest of the request applies.
        for bad in (stranger, "no-such-user"):
            left_out = await entra.patch(
                f"/Groups/{gid}", ops({"op": "Add", "path": "members", "value": [{"value": bad}]})
            )
            assert left_out.status_code == 200, left_out.text
            assert [m["value"] for m in left_out.json()["members"]] == [members[3]]
        assert [m["value"] for m in (await entra.get(f"/Groups/{gid}")).json()["members"]] == [
            members[3]
        ]

        # Rename (a non-member attribute), both dialects.
        renamed = await entra.patch(
            f"/Groups/{gid}",
            ops({"op": "Replace", "path": "displayName", "value": "1879db59updatedDisplayName"}),
        )
        assert renamed.status_code == 200
        assert renamed.json()["displayName"] == "1879db59updatedDisplayName"
        assert_list(
            await entra.get("/Groups", params={"filter": 'displayName eq "displayName"'}), 0
        )
        flagged = await entra.patch(
            f"/Groups/{gid}?{FLAG}",
            ops({"op": "replace", "value": {"displayName": "Renamed"}}),
        )
        assert flagged.json()["displayName"] == "Renamed"
        (lean,) = assert_list(
            await entra.get(
                "/Groups",
                params={"excludedAttributes": "members", "filter": 'displayName eq "renamed"'},
            ),
            1,
        )
        assert lean["id"] == gid

        # A deleted user leaves the group; the group itself then goes.
        assert (await entra.delete(f"/Users/{members[3]}")).status_code == 204
        assert "members" not in (await entra.get(f"/Groups/{gid}")).json()
        assert (await entra.delete(f"/Groups/{gid}")).status_code == 204
        assert_error(await entra.get(f"/Groups/{gid}"), 404)
        assert_list(await entra.get("/Groups", params={"filter": 'displayName eq "renamed"'}), 0)


LMS = "urn:ietf:params:scim:schemas:extension:lms:2.0:User"


async def test_custom_lms_team_attribute_round_trips(entra: Any) -> None:
    """A custom extension attribute mapped in Entra travels as a URN-qualified path."""
    body = entra_user("team")
    body["schemas"] = [*body["schemas"], LMS]
    body[LMS] = {"team": "Blue"}
    user = (await entra.post("/Users", body)).json()
    uid = user["id"]
    assert user[LMS] == {"team": "Blue"}
    assert user["schemas"] == [USER_SCHEMA, ENTERPRISE, LMS]

    replaced = await entra.patch(
        f"/Users/{uid}", ops({"op": "Replace", "path": f"{LMS}:team", "value": "Red"})
    )
    assert replaced.json()[LMS] == {"team": "Red"}
    flagged = await entra.patch(
        f"/Users/{uid}?{FLAG}", ops({"op": "replace", "value": {f"{LMS}:team": "Green"}})
    )
    assert flagged.json()[LMS] == {"team": "Green"}
    (found,) = assert_list(
        await entra.get("/Users", params={"filter": f'{LMS}:team eq "green"'}), 1
    )
    assert found["id"] == uid
    removed = await entra.patch(f"/Users/{uid}", ops({"op": "Remove", "path": f"{LMS}:team"}))
    assert LMS not in removed.json()
    assert removed.json()["schemas"] == [USER_SCHEMA, ENTERPRISE]
    added = await entra.patch(
        f"/Users/{uid}", ops({"op": "Add", "path": f"{LMS}:team", "value": "Blue"})
    )
    assert added.json()[LMS] == {"team": "Blue"}
    assert (await entra.get(f"/Users/{uid}")).json() == added.json()


async def test_microsoft_postman_collection_shapes(entra: Any) -> None:
    """Microsoft's own SCIM test collection capitalises attribute names and
    lists the enterprise schema first; names are case-insensitive (RFC 7643 §2.1)."""
    created = await entra.post(
        "/Users",
        {
            "UserName": "UserName222",
            "Active": True,
            "DisplayName": "lennay",
            "schemas": [ENTERPRISE, USER_SCHEMA],
            "externalId": uuid.uuid4().hex,
            "name": {"formatted": "Adrew Ryan", "familyName": "Ryan", "givenName": "Andrew"},
            "emails": [
                {"Primary": True, "type": "work", "value": "testing@bob2.com"},
                {"Primary": False, "type": "home", "value": "testinghome@bob3.com"},
            ],
            ENTERPRISE: {"Department": "bob", "Manager": {"Value": "SuzzyQ"}},
        },
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["userName"] == "UserName222"
    assert user["active"] is True
    assert user["displayName"] == "lennay"
    assert user["emails"][0] == {"primary": True, "type": "work", "value": "testing@bob2.com"}
    assert user[ENTERPRISE] == {"department": "bob", "manager": {"value": "SuzzyQ"}}

    picked = await entra.get("/Users", params={"attributes": "userName,emails"})
    (only,) = assert_list(picked, 1)
    assert set(only) == {"schemas", "id", "userName", "emails"}
    by_display = await entra.get("/Users", params={"filter": 'DisplayName eq "LENNAY"'})
    assert assert_list(by_display, 1)[0]["id"] == user["id"]
    upper_op = await entra.patch(
        f"/Users/{user['id']}",
        {
            "schemas": [PATCH_OP],
            "Operations": [{"OP": "REPLACE", "PATH": "userName", "VALUE": "ryan3"}],
        },
    )
    assert upper_op.status_code == 200, upper_op.text
    assert upper_op.json()["userName"] == "ryan3"
