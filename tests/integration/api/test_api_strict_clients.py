"""Every answer of every SCIM route, read by a strict client (scim2-models).

A client library that validates what it reads stops at the first document
it refuses; so each route's answers, successes and errors, go through
`tests.support.strict.StrictClient` under scim2-models' strict policy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from api.endpoints import groups as group_endpoint
from tests.support.api import GROUP_SCHEMA, PATCH_OP, USER_SCHEMA, ScimClient, running_api
from tests.support.strict import LMS_SCHEMA, StrictClient

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


@pytest.fixture
async def scim(redis: Redis, redis_url: str) -> AsyncIterator[ScimClient]:
    async with running_api(redis, redis_url, "strict") as clients:
        yield clients["strict"]


@pytest.fixture
async def strict(scim: ScimClient) -> StrictClient:
    answer = await scim.get("/Schemas")
    assert answer.status_code == 200
    return StrictClient(answer.json()["Resources"])


def full_user(user_name: str) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE, LMS_SCHEMA],
        "userName": user_name,
        "externalId": f"ext-{user_name}",
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Barbara Jensen"},
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "active": True,
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
        "addresses": [{"streetAddress": "100 Universal City Plaza", "type": "work"}],
        "password": "t1meMa$heen",
        ENTERPRISE: {"department": "Tour Operations", "manager": {"value": "26118915-6090"}},
        LMS_SCHEMA: {"team": "Blue"},
    }


async def test_discovery_documents_are_read_by_a_strict_client(
    scim: ScimClient, strict: StrictClient
) -> None:
    strict.check(await scim.get("/ServiceProviderConfig"))
    strict.check(await scim.get("/ResourceTypes"))
    strict.check(await scim.get("/Schemas"))
    for name in ("User", "Group"):
        strict.check(await scim.get(f"/ResourceTypes/{name}"))
    for urn in (USER_SCHEMA, ENTERPRISE, LMS_SCHEMA, GROUP_SCHEMA):
        strict.check(await scim.get(f"/Schemas/{urn}"))


async def test_users_answers_are_read_by_a_strict_client(
    scim: ScimClient, strict: StrictClient
) -> None:
    created = await scim.post("/Users", full_user("bjensen@example.com"))
    assert created.status_code == 201
    user = strict.check(created)
    uid = created.json()["id"]
    strict.check(await scim.get(f"/Users/{uid}"))
    strict.check(await scim.get(f"/Users/{uid}", params={"attributes": "userName,groups"}))
    strict.check(await scim.get("/Users"))
    strict.check(await scim.get("/Users", params={"filter": 'userName eq "bjensen@example.com"'}))
    strict.check(await scim.get("/Users", params={"filter": 'title co "Guide"', "count": 1}))
    strict.check(
        await scim.post("/Users/.search", {"schemas": [SEARCH], "filter": "active eq true"}),
        search=True,
    )
    strict.check(await scim.put(f"/Users/{uid}", full_user("bjensen@example.com")))
    patched = await scim.patch(
        f"/Users/{uid}",
        {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        },
    )
    assert patched.status_code == 200
    strict.check(patched)
    assert user.user_name == "bjensen@example.com"
    strict.check(await scim.delete(f"/Users/{uid}"))


async def test_groups_answers_are_read_by_a_strict_client(
    scim: ScimClient, strict: StrictClient
) -> None:
    member = await scim.create_user("member@example.com", displayName="Member One")
    created = await scim.post(
        "/Groups",
        {
            "schemas": [GROUP_SCHEMA],
            "displayName": "Tour Guides",
            "members": [{"value": member["id"]}],
        },
    )
    assert created.status_code == 201, created.text
    group = strict.check(created)
    assert group.members[0].display == "Member One"
    gid = created.json()["id"]
    strict.check(await scim.get(f"/Groups/{gid}"))
    strict.check(await scim.get("/Groups"))
    strict.check(await scim.get("/Groups", params={"filter": 'displayName eq "Tour Guides"'}))
    strict.check(await scim.get("/Groups", params={"excludedAttributes": "members"}))
    strict.check(
        await scim.patch(
            f"/Groups/{gid}",
            {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "members"}]},
        )
    )
    strict.check(
        await scim.put(
            f"/Groups/{gid}",
            {
                "schemas": [GROUP_SCHEMA],
                "displayName": "Guides",
                "members": [{"value": member["id"]}],
            },
        )
    )
    strict.check(await scim.get(f"/Users/{member['id']}", params={"attributes": "groups"}))
    strict.check(await scim.post("/.search", {"schemas": [SEARCH]}), search=True)
    strict.check(await scim.delete(f"/Groups/{gid}"))


async def test_a_streamed_large_group_is_read_by_a_strict_client(
    scim: ScimClient, strict: StrictClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = [await scim.create_user(f"s{i}@example.com") for i in range(5)]
    members = [{"value": u["id"]} for u in users]
    created = await scim.post(
        "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Big", "members": members}
    )
    monkeypatch.setattr(group_endpoint, "STREAM_MEMBERS_OVER", 2)
    monkeypatch.setattr(group_endpoint, "_MEMBER_PAGE", 2)
    streamed = strict.check(await scim.get(f"/Groups/{created.json()['id']}"))
    assert sorted(m.value for m in streamed.members) == sorted(u["id"] for u in users)
    assert all(m.display for m in streamed.members)


async def test_error_answers_are_read_by_a_strict_client(
    scim: ScimClient, strict: StrictClient
) -> None:
    user = await scim.create_user("taken@example.com")
    answers = [
        await scim.get("/Users/00000000-0000-0000-0000-000000000000"),
        await scim.get("/Users", params={"filter": "userName eq"}),
        await scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "taken@example.com"}),
        await scim.post("/Users", {"schemas": [USER_SCHEMA]}),
        await scim.request("POST", "/Users", headers={"Content-Type": "text/plain"}),
        await scim.put(
            f"/Users/{user['id']}",
            {"schemas": [USER_SCHEMA], "userName": "x"},
            headers={"If-Match": 'W/"999"'},
        ),
        await scim.patch(
            f"/Users/{user['id']}", {"schemas": [PATCH_OP], "Operations": [{"op": "jump"}]}
        ),
        await scim.get("/Me"),
        await scim.post("/Bulk", {}),
        await scim.request("PATCH", "/ServiceProviderConfig", json={}),
        await scim.get("/Nowhere"),
        await scim.http.get(f"{scim.base}/Users"),
    ]
    for answer in answers:
        assert answer.status_code >= 400
        strict.check(answer)
