"""Okta's SCIM 2.0 traffic, replayed in the order of Okta's spec test.

Shaped after Okta's "SCIM 2.0 protocol reference" and the "Build a SCIM
provisioning integration" test suite (the Runscope/Okta SCIM spec test):
list with startIndex/count, filter by userName (a miss, then
case-insensitively), create, get, duplicate create, unknown id, PUT for
every update, path-less `{"active": false}` to deactivate, and Okta's
group push (PATCH with the group id echoed in a path-less value).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.api import GROUP_SCHEMA, PATCH_OP, USER_SCHEMA, running_api

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def okta_user(login: str, given: str = "Test", family: str = "User") -> dict[str, Any]:
    """Okta's create body: password and an empty groups list included."""
    return {
        "schemas": [USER_SCHEMA],
        "userName": login,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": True, "value": login, "type": "work"}],
        "displayName": f"{given} {family}",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": True,
    }


def listing(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [LIST_SCHEMA]
    assert isinstance(body["Resources"], list)
    assert body["itemsPerPage"] == len(body["Resources"])
    return body


@pytest.fixture
async def okta(redis: Redis, redis_url: str) -> AsyncIterator[Any]:
    async with running_api(redis, redis_url, "initech") as clients:
        yield clients["initech"]


async def test_okta_spec_test_sequence(okta: Any) -> None:
    # Seed one user: the spec test starts by reading an existing one.
    seed = await okta.post("/Users", okta_user("seed.user@okta.local", "Seed", "User"))
    assert seed.status_code == 201

    # 1. Test Users endpoint: GET /Users?count=1&startIndex=1.
    first = listing(await okta.get("/Users", params={"count": 1, "startIndex": 1}))
    assert first["totalResults"] == 1
    assert first["startIndex"] == 1
    assert len(first["Resources"]) == 1
    isv_id = first["Resources"][0]["id"]

    # 2. GET /Users/{id}: the attributes Okta checks are all there.
    got = await okta.get(f"/Users/{isv_id}")
    assert got.status_code == 200
    user = got.json()
    for key in ("id", "userName", "name", "emails", "active"):
        assert key in user
    assert user["name"] == {"givenName": "Seed", "familyName": "User"}
    assert "password" not in user

    # 3. Filter on a userName nobody has: 200, zero results.
    miss = listing(
        await okta.get("/Users", params={"filter": f'userName eq "{uuid.uuid4()}@atko.com"'})
    )
    assert miss["totalResults"] == 0

    # 4. Unknown id: 404 with a SCIM error body.
    unknown = await okta.get("/Users/010101001010101")
    assert unknown.status_code == 404
    assert unknown.json()["schemas"] == [ERROR_SCHEMA]
    assert unknown.json()["status"] == "404"

    # 5. Create a random user; Okta asks first (filter with paging parameters).
    login = f"{uuid.uuid4().hex[:10]}@atko.com"
    before = await okta.get(
        "/Users", params={"filter": f'userName eq "{login}"', "startIndex": 1, "count": 100}
    )
    assert listing(before)["totalResults"] == 0
    created = await okta.post("/Users", okta_user(login, "Random", "Person"))
    assert created.status_code == 201, created.text
    new = created.json()
    assert new["active"] is True
    assert new["userName"] == login
    assert new["name"] == {"givenName": "Random", "familyName": "Person"}
    assert "password" not in new
    assert "groups" not in new
    uid = new["id"]

    # 6. Verify by GET.
    assert (await okta.get(f"/Users/{uid}")).json() == new

    # 7. Creating the same user again fails with 409.
    dup = await okta.post("/Users", okta_user(login, "Random", "Person"))
    assert dup.status_code == 409
    assert dup.json()["scimType"] == "uniqueness"
    assert dup.json()["status"] == "409"

    # 8. userName case sensitivity: found whatever the case.
    upper = listing(await okta.get("/Users", params={"filter": f'userName eq "{login.upper()}"'}))
    assert upper["totalResults"] == 1
    assert upper["Resources"][0]["id"] == uid

    # Okta updates with PUT: the whole user, id and password included.
    put_body = {
        **okta_user(login, "Another", "Person"),
        "id": uid,
        "name": {"givenName": "Another", "middleName": "Test", "familyName": "Person"},
        "displayName": "Another Test Person",
    }
    put = await okta.put(f"/Users/{uid}", put_body)
    assert put.status_code == 200, put.text
    updated = put.json()
    assert updated["id"] == uid
    assert updated["name"] == {"givenName": "Another", "middleName": "Test", "familyName": "Person"}
    assert updated["displayName"] == "Another Test Person"
    assert updated["meta"]["created"] == new["meta"]["created"]
    assert "password" not in updated
    assert (await okta.get(f"/Users/{uid}")).json() == updated

    # Deactivate: PATCH with a path-less {"active": false}; the user stays readable.
    off = await okta.patch(f"/Users/{uid}", ops({"op": "replace", "value": {"active": False}}))
    assert off.status_code == 200, off.text
    assert off.json()["active"] is False
    assert off.json()["name"] == updated["name"]
    assert (await okta.get(f"/Users/{uid}")).json()["active"] is False
    (inactive,) = listing(await okta.get("/Users", params={"filter": f'userName eq "{login}"'}))[
        "Resources"
    ]
    assert inactive["active"] is False
    # Reactivate the way Okta does: PUT with active true.
    back = await okta.put(f"/Users/{uid}", {**put_body, "active": True})
    assert back.json()["active"] is True

    # List with startIndex/count pages through everyone exactly once.
    for i in range(3):
        await okta.post("/Users", okta_user(f"page{i}@atko.com"))
    ids: list[str] = []
    start = 1
    while True:
        page = listing(await okta.get("/Users", params={"startIndex": start, "count": 2}))
        assert page["totalResults"] == 5
        assert page["startIndex"] == start
        if not page["Resources"]:
            break
        ids += [r["id"] for r in page["Resources"]]
        start += len(page["Resources"])
    assert len(ids) == len(set(ids)) == 5
    assert uid in ids


async def test_okta_put_cannot_take_another_users_name(okta: Any) -> None:
    a = (await okta.post("/Users", okta_user("a@atko.com"))).json()
    b = (await okta.post("/Users", okta_user("b@atko.com"))).json()
    clash = await okta.put(f"/Users/{b['id']}", {**okta_user("A@ATKO.com"), "id": b["id"]})
    assert clash.status_code == 409
    assert clash.json()["scimType"] == "uniqueness"
    assert (await okta.get(f"/Users/{b['id']}")).json() == b
    assert (await okta.get(f"/Users/{a['id']}")).json() == a
    missing = await okta.put("/Users/00u-no-such-user", {**okta_user("c@atko.com")})
    assert missing.status_code == 404


async def test_okta_group_push(okta: Any) -> None:
    alice = (await okta.post("/Users", okta_user("alice@atko.com"))).json()["id"]
    bob = (await okta.post("/Users", okta_user("bob@atko.com"))).json()["id"]
    miss = listing(await okta.get("/Groups", params={"filter": 'displayName eq "Test SCIMv2"'}))
    assert miss["totalResults"] == 0
    created = await okta.post(
        "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Test SCIMv2", "members": []}
    )
    assert created.status_code == 201, created.text
    gid = created.json()["id"]
    found = listing(await okta.get("/Groups", params={"filter": 'displayName eq "Test SCIMv2"'}))
    assert [g["id"] for g in found["Resources"]] == [gid]

    # Rename: Okta echoes the group id inside the path-less value.
    renamed = await okta.patch(
        f"/Groups/{gid}",
        ops({"op": "replace", "value": {"id": gid, "displayName": "Test SCIMv2 renamed"}}),
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["displayName"] == "Test SCIMv2 renamed"
    assert renamed.json()["id"] == gid

    added = await okta.patch(
        f"/Groups/{gid}",
        ops(
            {
                "op": "add",
                "path": "members",
                "value": [
                    {"value": alice, "display": "alice@atko.com"},
                    {"value": bob, "display": "bob@atko.com"},
                ],
            }
        ),
    )
    assert sorted(m["value"] for m in added.json()["members"]) == sorted([alice, bob])
    removed = await okta.patch(
        f"/Groups/{gid}", ops({"op": "remove", "path": f'members[value eq "{alice}"]'})
    )
    assert [m["value"] for m in removed.json()["members"]] == [bob]
    # Okta's full push: PUT the group with its member list.
    pushed = await okta.put(
        f"/Groups/{gid}",
        {
            "schemas": [GROUP_SCHEMA],
            "id": gid,
            "displayName": "Test SCIMv2",
            "members": [{"value": alice, "display": "alice@atko.com"}],
        },
    )
    assert pushed.status_code == 200, pushed.text
    assert [m["value"] for m in pushed.json()["members"]] == [alice]
    replaced = await okta.patch(
        f"/Groups/{gid}", ops({"op": "replace", "path": "members", "value": [{"value": bob}]})
    )
    assert [m["value"] for m in replaced.json()["members"]] == [bob]
    assert (await okta.delete(f"/Groups/{gid}")).status_code == 204
    assert (await okta.get(f"/Groups/{gid}")).status_code == 404
