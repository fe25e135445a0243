"""RFC 7643/7644 behaviour of the SCIM front door, end to end over HTTP.

ETags and conditional requests (RFC 7644 §3.14), paging (§3.4.2.4),
attribute selection (§3.4.2.5, §3.9), PUT (§3.5.1), the error table
(§3.12) with exact status and scimType, media types and body limits, and
the discovery documents (§4, RFC 7643 §5-§7).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

import api.endpoints.groups as group_endpoint
from shadow import ResourceStore, TenantStore
from tests.support.api import ENTERPRISE, GROUP_SCHEMA, PATCH_OP, USER_SCHEMA, keyspace, running_api

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
LMS = "urn:ietf:params:scim:schemas:extension:lms:2.0:User"


def assert_error(response: httpx.Response, status: int, scim_type: str | None = None) -> None:
    """A SCIM Error body (RFC 7644 §3.12): schemas, status as a string, scimType, detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type, body
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert "Traceback" not in response.text
    assert ".py" not in response.text


def patch_body(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(ops)}


@pytest.fixture
async def acme(redis: Redis, redis_url: str) -> AsyncIterator[Any]:
    async with running_api(redis, redis_url, "acme") as clients:
        yield clients["acme"]


# -- ETags and conditional requests (RFC 7644 §3.14) -----------------------


async def test_every_write_answers_a_weak_etag_equal_to_meta_version(acme: Any) -> None:
    created = await acme.post("/Users", {"schemas": [USER_SCHEMA], "userName": "etag@example.com"})
    assert created.status_code == 201
    body = created.json()
    etag = created.headers["etag"]
    assert etag.startswith('W/"')
    assert body["meta"]["version"] == etag
    assert created.headers["location"] == body["meta"]["location"]
    uid = body["id"]

    got = await acme.get(f"/Users/{uid}")
    assert got.headers["etag"] == etag

    patched = await acme.patch(
        f"/Users/{uid}", patch_body({"op": "replace", "path": "title", "value": "Chef"})
    )
    assert patched.status_code == 200
    assert patched.headers["etag"] != etag
    assert patched.json()["meta"]["version"] == patched.headers["etag"]
    assert patched.json()["meta"]["created"] == body["meta"]["created"]

    listed = await acme.get("/Users", params={"filter": f'id eq "{uid}"'})
    assert listed.json()["Resources"][0]["meta"]["version"] == patched.headers["etag"]


async def test_if_none_match_answers_304_for_the_current_version_only(acme: Any) -> None:
    user = await acme.create_user("inm@example.com")
    uid, etag = user["id"], user["meta"]["version"]
    same = await acme.get(f"/Users/{uid}", headers={"If-None-Match": etag})
    assert same.status_code == 304
    assert same.content == b""
    assert same.headers["etag"] == etag
    star = await acme.get(f"/Users/{uid}", headers={"If-None-Match": "*"})
    assert star.status_code == 304
    stale = await acme.get(f"/Users/{uid}", headers={"If-None-Match": 'W/"999"'})
    assert stale.status_code == 200
    assert stale.json()["id"] == uid
    several = await acme.get(f"/Users/{uid}", headers={"If-None-Match": f'W/"999", {etag}'})
    assert several.status_code == 304


async def test_if_match_on_patch_put_delete(acme: Any, redis: Redis) -> None:
    user = await acme.create_user("im@example.com")
    uid, etag = user["id"], user["meta"]["version"]

    ok = await acme.patch(
        f"/Users/{uid}",
        patch_body({"op": "replace", "path": "title", "value": "A"}),
        headers={"If-Match": etag},
    )
    assert ok.status_code == 200, ok.text
    current = ok.headers["etag"]

    before = await keyspace(redis)
    stale_patch = await acme.patch(
        f"/Users/{uid}",
        patch_body({"op": "replace", "path": "title", "value": "B"}),
        headers={"If-Match": etag},
    )
    assert_error(stale_patch, 412)
    replace_body = {"schemas": [USER_SCHEMA], "userName": "im@example.com", "title": "C"}
    stale_put = await acme.put(f"/Users/{uid}", replace_body, headers={"If-Match": etag})
    assert_error(stale_put, 412)
    stale_delete = await acme.delete(f"/Users/{uid}", headers={"If-Match": etag})
    assert_error(stale_delete, 412)
    assert await keyspace(redis) == before
    assert (await acme.get(f"/Users/{uid}")).json()["title"] == "A"

    strong = current.removeprefix("W/")  # a strong spelling of the same tag still matches
    star = await acme.put(f"/Users/{uid}", replace_body, headers={"If-Match": "*"})
    assert star.status_code == 200, star.text
    assert star.json()["title"] == "C"
    assert_error(await acme.delete(f"/Users/{uid}", headers={"If-Match": strong}), 412)
    latest = star.headers["etag"]
    listed_tags = f'W/"12345", {latest.removeprefix("W/")}'
    gone = await acme.delete(f"/Users/{uid}", headers={"If-Match": listed_tags})
    assert gone.status_code == 204
    assert_error(await acme.get(f"/Users/{uid}"), 404)


async def test_group_etag_changes_when_its_members_change(acme: Any) -> None:
    user = await acme.create_user("member@example.com")
    group = (await acme.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "G"})).json()
    gid, etag = group["id"], group["meta"]["version"]
    added = await acme.patch(
        f"/Groups/{gid}",
        patch_body({"op": "add", "path": "members", "value": [{"value": user["id"]}]}),
        headers={"If-Match": etag},
    )
    assert added.status_code == 200, added.text
    assert added.headers["etag"] != etag
    assert added.json()["meta"]["lastModified"] >= group["meta"]["lastModified"]
    stale = await acme.patch(
        f"/Groups/{gid}",
        patch_body({"op": "remove", "path": f'members[value eq "{user["id"]}"]'}),
        headers={"If-Match": etag},
    )
    assert_error(stale, 412)
    assert [m["value"] for m in (await acme.get(f"/Groups/{gid}")).json()["members"]] == [
        user["id"]
    ]


# -- paging (RFC 7644 §3.4.2.4) ------------------------------------------------


async def test_paging_with_start_index_and_count(redis: Redis, redis_url: str) -> None:
    async with running_api(
        redis, redis_url, "acme", max_page_size=3, default_page_size=2
    ) as clients:
        scim = clients["acme"]
        ids = [(await scim.create_user(f"p{i}@example.com"))["id"] for i in range(5)]

        async def page(**params: Any) -> dict[str, Any]:
            response = await scim.get("/Users", params=params)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            assert body["schemas"] == [LIST_SCHEMA]
            assert body["totalResults"] == 5
            assert body["itemsPerPage"] == len(body["Resources"])
            return body

        default = await page()
        assert default["startIndex"] == 1
        assert [r["id"] for r in default["Resources"]] == ids[:2]
        seen = []
        for start in (1, 3, 5):
            body = await page(startIndex=start, count=2)
            assert body["startIndex"] == start
            seen += [r["id"] for r in body["Resources"]]
        assert seen == ids  # stable creation order, no gaps, no repeats

        assert (await page(startIndex=6, count=2))["Resources"] == []
        past = await page(startIndex=10**30, count=2)
        assert past["Resources"] == []
        assert past["itemsPerPage"] == 0
        for low in (0, -3):
            body = await page(startIndex=low, count=1)
            assert body["startIndex"] == 1
            assert [r["id"] for r in body["Resources"]] == ids[:1]
        zero = await page(count=0)
        assert zero["Resources"] == []
        assert zero["itemsPerPage"] == 0
        assert (await page(count=-4))["Resources"] == []
        capped = await page(count=10**6)
        assert len(capped["Resources"]) == 3  # maxResults of /ServiceProviderConfig
        huge = await page(count=10**30)
        assert len(huge["Resources"]) == 3

        filtered = await scim.get(
            "/Users", params={"filter": 'userName sw "p"', "startIndex": 4, "count": 5}
        )
        body = filtered.json()
        assert body["totalResults"] == 5
        assert [r["id"] for r in body["Resources"]] == ids[3:]

        for name, raw in (("count", "ten"), ("startIndex", "1.5"), ("count", "1e3")):
            response = await scim.get("/Users", params={name: raw})
            assert_error(response, 400, "invalidValue")
            assert name in response.json()["detail"]


async def test_search_request_paging_and_validation(acme: Any) -> None:
    for i in range(3):
        await acme.create_user(f"s{i}@example.com")
    body = {"schemas": [SEARCH_SCHEMA], "startIndex": 2, "count": 1, "filter": 'userName sw "s"'}
    found = await acme.post("/Users/.search", body)
    assert found.status_code == 200, found.text
    listing = found.json()
    assert listing["totalResults"] == 3
    assert listing["startIndex"] == 2
    assert [r["userName"] for r in listing["Resources"]] == ["s1@example.com"]

    bad_count = await acme.post("/Users/.search", {"schemas": [SEARCH_SCHEMA], "count": "2"})
    assert_error(bad_count, 400, "invalidValue")
    bad_filter = await acme.post("/Users/.search", {"schemas": [SEARCH_SCHEMA], "filter": 3})
    assert_error(bad_filter, 400, "invalidValue")
    bad_schema = await acme.post("/Users/.search", {"schemas": [USER_SCHEMA]})
    assert_error(bad_schema, 400, "invalidSyntax")
    bad_names = await acme.post(
        "/Users/.search", {"schemas": [SEARCH_SCHEMA], "attributes": [1, 2]}
    )
    assert_error(bad_names, 400, "invalidValue")


async def test_root_search_spans_users_and_groups(acme: Any) -> None:
    user = await acme.create_user("root@example.com")
    group = (await acme.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Root"})).json()
    everything = await acme.post("/.search", {"schemas": [SEARCH_SCHEMA]})
    assert everything.status_code == 200, everything.text
    listing = everything.json()
    assert listing["totalResults"] == 2
    assert [r["id"] for r in listing["Resources"]] == [user["id"], group["id"]]
    assert [r["meta"]["resourceType"] for r in listing["Resources"]] == ["User", "Group"]

    by_name = await acme.post(
        "/.search", {"schemas": [SEARCH_SCHEMA], "filter": 'userName eq "ROOT@example.com"'}
    )
    assert [r["id"] for r in by_name.json()["Resources"]] == [user["id"]]
    second = await acme.post("/.search", {"schemas": [SEARCH_SCHEMA], "startIndex": 2})
    assert [r["id"] for r in second.json()["Resources"]] == [group["id"]]
    assert second.json()["totalResults"] == 2
    none = await acme.post("/.search", {"schemas": [SEARCH_SCHEMA], "count": 0})
    assert none.json()["Resources"] == []
    assert none.json()["totalResults"] == 2
    projected = await acme.post(
        "/.search", {"schemas": [SEARCH_SCHEMA], "attributes": ["displayName"]}
    )
    assert [sorted(r) for r in projected.json()["Resources"]] == [
        ["id", "schemas"],
        ["displayName", "id", "schemas"],
    ]
    assert_error(
        await acme.post("/.search", {"schemas": [SEARCH_SCHEMA], "filter": "userName eq"}),
        400,
        "invalidFilter",
    )
    # A filter on one type's own schema simply matches nothing of the other type.
    await acme.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "add", "path": f"{ENTERPRISE}:department", "value": "Ops"}),
    )
    for flt in (f'{ENTERPRISE}:department eq "ops"', f'{GROUP_SCHEMA}:displayName eq "root"'):
        typed = await acme.post("/.search", {"schemas": [SEARCH_SCHEMA], "filter": flt})
        assert typed.status_code == 200, typed.text
        assert typed.json()["totalResults"] == 1
    fits_none = await acme.post(
        "/.search", {"schemas": [SEARCH_SCHEMA], "filter": 'urn:example:nope:x eq "a"'}
    )
    assert_error(fits_none, 400, "invalidFilter")


# -- attributes and excludedAttributes (RFC 7644 §3.4.2.5, §3.9) ---------------


async def test_attributes_select_and_always_keep_id_and_schemas(acme: Any, redis: Redis) -> None:
    user = await acme.create_user(
        "attrs@example.com",
        password="s3cret-Passw0rd",
        title="Boss",
        emails=[{"value": "attrs@example.com", "type": "work", "primary": True}],
        **{ENTERPRISE: {"department": "Sales"}, LMS: {"team": "Blue"}},
    )
    uid = user["id"]
    assert "password" not in user
    assert user[LMS] == {"team": "Blue"}

    only = (await acme.get(f"/Users/{uid}", params={"attributes": "userName"})).json()
    assert only == {"schemas": [USER_SCHEMA], "id": uid, "userName": "attrs@example.com"}
    sub = (await acme.get(f"/Users/{uid}", params={"attributes": "name.givenName"})).json()
    assert sub["name"] == {"givenName": "Test"}
    ext = (
        await acme.get(f"/Users/{uid}", params={"attributes": f"{ENTERPRISE}:department"})
    ).json()
    assert ext[ENTERPRISE] == {"department": "Sales"}
    assert ext["schemas"] == [USER_SCHEMA, ENTERPRISE]
    assert set(ext) == {"schemas", "id", ENTERPRISE}
    team = (await acme.get(f"/Users/{uid}", params={"attributes": f"{LMS}:team"})).json()
    assert team[LMS] == {"team": "Blue"}

    excluded = (
        await acme.get(f"/Users/{uid}", params={"excludedAttributes": "emails,name,id,schemas"})
    ).json()
    assert excluded["id"] == uid
    assert excluded["schemas"][0] == USER_SCHEMA
    assert "emails" not in excluded
    assert "name" not in excluded
    assert excluded["title"] == "Boss"
    assert "meta" in excluded

    for params in ({"attributes": "password"}, {"attributes": "userName,password"}, {}):
        got = await acme.get(f"/Users/{uid}", params=params)
        assert "password" not in got.json()
        assert "s3cret" not in got.text
    listed = await acme.get("/Users", params={"attributes": "password,userName"})
    assert "s3cret" not in listed.text
    assert listed.json()["Resources"][0] == {
        "schemas": [USER_SCHEMA],
        "id": uid,
        "userName": "attrs@example.com",
    }
    # The password is not kept at all (changePassword is not supported) ...
    assert "s3cret" not in repr(await keyspace(redis))
    changed = await acme.patch(
        f"/Users/{uid}", patch_body({"op": "replace", "path": "password", "value": "n3w-s3cret"})
    )
    assert changed.status_code == 200
    assert changed.json()["meta"]["version"] == user["meta"]["version"]
    # ... and a never-returned attribute is no filter oracle either.
    probe = await acme.get("/Users", params={"filter": 'password eq "s3cret-Passw0rd"'})
    assert probe.status_code == 200
    assert probe.json()["totalResults"] == 0


async def test_user_groups_are_returned_when_asked_for_and_follow_membership(acme: Any) -> None:
    """User.groups is readOnly and `returned: request` (/Schemas says so): a
    user shows the groups it is a member of when `attributes` names them, is
    found by a filter on them, and loses them when the group lets go."""
    user = await acme.create_user("member@example.com")
    other = await acme.create_user("loner@example.com")
    uid = user["id"]
    gid = (
        await acme.post(
            "/Groups",
            {"schemas": [GROUP_SCHEMA], "displayName": "Sales", "members": [{"value": uid}]},
        )
    ).json()["id"]
    expected = [
        {
            "value": gid,
            "$ref": f"https://bridge.test/scim/acme/v2/Groups/{gid}",
            "display": "Sales",
            "type": "direct",
        }
    ]
    assert "groups" not in (await acme.get(f"/Users/{uid}")).json()
    asked = (await acme.get(f"/Users/{uid}", params={"attributes": "userName,groups"})).json()
    assert asked["groups"] == expected
    assert asked["userName"] == "member@example.com"
    qualified = f"{USER_SCHEMA}:groups.value"
    values = (await acme.get(f"/Users/{uid}", params={"attributes": qualified})).json()
    assert values["groups"] == [{"value": gid}]

    found = await acme.get("/Users", params={"filter": f'groups.value eq "{gid}"'})
    assert [r["id"] for r in found.json()["Resources"]] == [uid]
    assert "groups" not in found.json()["Resources"][0]
    listed = await acme.get(
        "/Users", params={"filter": 'userName sw "member"', "attributes": "groups"}
    )
    assert listed.json()["Resources"][0]["groups"] == expected
    assert (
        "groups"
        not in (await acme.get(f"/Users/{other['id']}", params={"attributes": "groups"})).json()
    )

    removed = await acme.patch(
        f"/Groups/{gid}",
        patch_body({"op": "remove", "path": f'members[value eq "{uid}"]'}),
    )
    assert removed.status_code in (200, 204), removed.text
    after = (await acme.get(f"/Users/{uid}", params={"attributes": "groups"})).json()
    assert "groups" not in after

    schema = (await acme.get(f"/Schemas/{USER_SCHEMA}")).json()
    [groups_attr] = [a for a in schema["attributes"] if a["name"] == "groups"]
    assert (groups_attr["returned"], groups_attr["mutability"]) == ("request", "readOnly")


async def test_group_members_follow_attribute_selection(acme: Any) -> None:
    user = await acme.create_user("gm@example.com")
    created = await acme.post(
        "/Groups",
        {"schemas": [GROUP_SCHEMA], "displayName": "Team", "members": [{"value": user["id"]}]},
    )
    assert created.status_code == 201, created.text
    gid = created.json()["id"]
    assert created.json()["members"][0]["value"] == user["id"]
    full = (await acme.get(f"/Groups/{gid}")).json()
    assert full["members"] == [
        {
            "value": user["id"],
            "$ref": f"https://bridge.test/scim/acme/v2/Users/{user['id']}",
            "type": "User",
            "display": "gm@example.com",  # no displayName: the userName
        }
    ]
    lean = (await acme.get(f"/Groups/{gid}", params={"excludedAttributes": "members"})).json()
    assert "members" not in lean
    assert lean["displayName"] == "Team"
    assert lean["id"] == gid
    named = (await acme.get(f"/Groups/{gid}", params={"attributes": "displayName"})).json()
    assert named == {"schemas": [GROUP_SCHEMA], "id": gid, "displayName": "Team"}
    values = (await acme.get(f"/Groups/{gid}", params={"attributes": "members.value"})).json()
    assert values["members"] == [{"value": user["id"]}]
    listed = await acme.get(
        "/Groups", params={"excludedAttributes": "members", "filter": 'displayName eq "team"'}
    )
    assert [sorted(r) for r in listed.json()["Resources"]] == [
        ["displayName", "id", "meta", "schemas"]
    ]


# -- PUT (RFC 7644 §3.5.1) -----------------------------------------------------------


async def test_put_replaces_but_keeps_id_and_read_only_attributes(acme: Any) -> None:
    user = await acme.create_user("put@example.com", title="Old", nickName="Nick")
    uid = user["id"]
    replaced = await acme.put(
        f"/Users/{uid}",
        {
            "schemas": [USER_SCHEMA],
            "id": "someone-else",
            "userName": "put@example.com",
            "displayName": "New",
            "meta": {"created": "1999-01-01T00:00:00Z", "resourceType": "Group"},
            "groups": [{"value": "g1"}],
        },
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["id"] == uid
    assert body["displayName"] == "New"
    assert "title" not in body
    assert "nickName" not in body
    assert "name" not in body
    assert "groups" not in body
    assert body["meta"]["created"] == user["meta"]["created"]
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["version"] != user["meta"]["version"]
    assert (await acme.get(f"/Users/{uid}")).json() == body

    missing = await acme.put(f"/Users/{uid}", {"schemas": [USER_SCHEMA], "title": "x"})
    assert_error(missing, 400, "invalidValue")
    unknown = await acme.put("/Users/nope", {"schemas": [USER_SCHEMA], "userName": "z"})
    assert_error(unknown, 404)


async def test_put_group_replaces_its_members(acme: Any) -> None:
    a = (await acme.create_user("a@example.com"))["id"]
    b = (await acme.create_user("b@example.com"))["id"]
    group = await acme.post(
        "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "G", "members": [{"value": a}]}
    )
    gid = group.json()["id"]
    put = await acme.put(
        f"/Groups/{gid}",
        {"schemas": [GROUP_SCHEMA], "id": gid, "displayName": "G2", "members": [{"value": b}]},
    )
    assert put.status_code == 200, put.text
    assert put.json()["displayName"] == "G2"
    assert [m["value"] for m in put.json()["members"]] == [b]
    assert put.json()["meta"]["version"] != group.json()["meta"]["version"]
    emptied = await acme.put(f"/Groups/{gid}", {"schemas": [GROUP_SCHEMA], "displayName": "G2"})
    assert emptied.status_code == 200
    assert "members" not in emptied.json()


# -- the error table (RFC 7644 §3.12) -------------------------------------------------


@pytest.mark.parametrize(
    ("ops", "scim_type"),
    [
        ([{"op": "replace", "path": "nosuch", "value": "x"}], "invalidPath"),
        ([{"op": "replace", "path": 'emails[type eq "work"].nosuch', "value": "x"}], "invalidPath"),
        ([{"op": "replace", "path": "name.givenName.extra", "value": "x"}], "invalidPath"),
        ([{"op": "replace", "path": "title[type eq 1]", "value": "x"}], "invalidPath"),
        ([{"op": "replace", "path": 'emails[type eq "work"', "value": "x"}], "invalidFilter"),
        ([{"op": "remove"}], "noTarget"),
        ([{"op": "replace", "path": "id", "value": "x"}], "mutability"),
        ([{"op": "replace", "path": "meta.created", "value": "x"}], "mutability"),
        ([{"op": "remove", "path": "userName"}], "mutability"),
        ([{"op": "replace", "path": "active", "value": "maybe"}], "invalidValue"),
        ([{"op": "replace", "path": "userName", "value": 42}], "invalidValue"),
        ([{"op": "replace", "value": "not an object"}], "invalidValue"),
        ([{"op": "frobnicate", "path": "title", "value": "x"}], "invalidSyntax"),
        ([], "invalidSyntax"),
        (
            [
                {"op": "replace", "path": "title", "value": "first op is fine"},
                {"op": "replace", "path": "nosuch", "value": "x"},
            ],
            "invalidPath",
        ),
    ],
)
async def test_patch_errors_have_their_scim_type_and_change_nothing(
    acme: Any, redis: Redis, ops: list[dict[str, Any]], scim_type: str
) -> None:
    uid = (await acme.create_user("err@example.com"))["id"]
    await acme.get(f"/Users/{uid}")
    before = await keyspace(redis)
    response = await acme.patch(f"/Users/{uid}", patch_body(*ops))
    assert_error(response, 400, scim_type)
    assert await keyspace(redis) == before


async def test_request_body_errors(acme: Any, redis: Redis) -> None:
    uid = (await acme.create_user("body@example.com"))["id"]
    before = await keyspace(redis)
    url = f"{acme.base}/Users"
    auth = {"Authorization": f"Bearer {acme.token}"}
    scim_json = {**auth, "Content-Type": "application/scim+json"}
    malformed: list[bytes] = [
        b"{",
        b'{"schemas": }',
        b"",
        b"null",
        b"[]",
        b'"text"',
        b"42",
        b'{"userName": "\xff"}',
        b'{"a": 1} trailing',
        b"[" * 100 + b"]" * 100,
        b'{"a":' * 100 + b"1" + b"}" * 100,
    ]
    for raw in malformed:
        response = await acme.http.post(url, content=raw, headers=scim_json)
        assert_error(response, 400, "invalidSyntax")
    deep = await acme.http.patch(
        f"{url}/{uid}", content=b'{"a":' * 80 + b"1" + b"}" * 80, headers=scim_json
    )
    assert_error(deep, 400, "invalidSyntax")
    assert "deep" in deep.json()["detail"]

    no_schemas = await acme.post("/Users", {"userName": "x@example.com"})
    assert_error(no_schemas, 400, "invalidSyntax")
    wrong_schema = await acme.post("/Users", {"schemas": [GROUP_SCHEMA], "userName": "x"})
    assert_error(wrong_schema, 400, "invalidSyntax")
    no_user_name = await acme.post("/Users", {"schemas": [USER_SCHEMA], "title": "x"})
    assert_error(no_user_name, 400, "invalidValue")
    bad_type = await acme.post("/Users", {"schemas": [USER_SCHEMA], "userName": ["x"]})
    assert_error(bad_type, 400, "invalidValue")
    bad_bool = await acme.post(
        "/Users", {"schemas": [USER_SCHEMA], "userName": "x", "active": "yes"}
    )
    assert_error(bad_bool, 400, "invalidValue")
    no_patch_schema = await acme.patch(
        f"/Users/{uid}", {"Operations": [{"op": "add", "path": "title", "value": "x"}]}
    )
    assert_error(no_patch_schema, 400, "invalidSyntax")
    no_name = await acme.post("/Groups", {"schemas": [GROUP_SCHEMA]})
    assert_error(no_name, 400, "invalidValue")
    assert await keyspace(redis) == before


async def test_media_types(acme: Any, redis: Redis) -> None:
    body = json.dumps({"schemas": [USER_SCHEMA], "userName": "mt@example.com"}).encode()
    auth = {"Authorization": f"Bearer {acme.token}"}
    url = f"{acme.base}/Users"
    await acme.get("/Users")  # the token's last-used time is written once a minute
    before = await keyspace(redis)
    for content_type in ("text/plain", "application/xml", "application/x-www-form-urlencoded"):
        response = await acme.http.post(
            url, content=body, headers={**auth, "Content-Type": content_type}
        )
        assert_error(response, 415)
    missing = await acme.http.post(url, content=body, headers=auth)
    assert_error(missing, 415)
    assert await keyspace(redis) == before
    plain = await acme.http.post(
        url, content=body, headers={**auth, "Content-Type": "application/json"}
    )
    assert plain.status_code == 201, plain.text
    assert plain.headers["content-type"].startswith("application/scim+json")
    with_charset = await acme.http.patch(
        f"{url}/{plain.json()['id']}",
        content=json.dumps(patch_body({"op": "add", "path": "title", "value": "x"})).encode(),
        headers={**auth, "Content-Type": "application/scim+json; charset=utf-8"},
    )
    assert with_charset.status_code == 200, with_charset.text


async def test_body_over_the_limit_is_413(redis: Redis, redis_url: str) -> None:
    async with running_api(redis, redis_url, "acme", max_body_bytes=2048) as clients:
        scim = clients["acme"]
        uid = (await scim.create_user("limit@example.com"))["id"]
        before = await keyspace(redis)
        big = {"schemas": [USER_SCHEMA], "userName": "big@example.com", "title": "x" * 3000}
        assert_error(await scim.post("/Users", big), 413)
        assert_error(await scim.put(f"/Users/{uid}", big), 413)
        ops = patch_body({"op": "replace", "path": "title", "value": "x" * 3000})
        assert_error(await scim.patch(f"/Users/{uid}", ops), 413)
        search = {"schemas": [SEARCH_SCHEMA], "filter": f'title eq "{"x" * 3000}"'}
        assert_error(await scim.post("/Users/.search", search), 413)
        assert_error(await scim.post("/.search", search), 413)

        # A Content-Length that understates the body does not get it past the limit.
        understated = await scim.http.post(
            f"{scim.base}/Users",
            content=json.dumps(big).encode(),
            headers={
                "Authorization": f"Bearer {scim.token}",
                "Content-Type": "application/scim+json",
                "Content-Length": "100",
            },
        )
        assert_error(understated, 413)
        assert await keyspace(redis) == before

        head = {"schemas": [USER_SCHEMA], "userName": "edge@example.com", "title": ""}
        padding = 2048 - len(json.dumps(head).encode())
        exact = json.dumps({**head, "title": "y" * padding}).encode()
        assert len(exact) == 2048
        at_limit = await scim.http.post(
            f"{scim.base}/Users",
            content=exact,
            headers={
                "Authorization": f"Bearer {scim.token}",
                "Content-Type": "application/scim+json",
            },
        )
        assert at_limit.status_code == 201, at_limit.text


async def test_authentication_failures_are_401(redis: Redis, redis_url: str) -> None:
    async with running_api(redis, redis_url, "acme", "globex") as clients:
        acme, globex = clients["acme"], clients["globex"]
        uid = (await acme.create_user("auth@example.com"))["id"]
        url = f"{acme.base}/Users/{uid}"
        before = await keyspace(redis)
        for headers in (
            {},
            {"Authorization": ""},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer "},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Bearer {acme.token}x"},
            {"Authorization": f"Basic {acme.token}"},
            {"Authorization": f"Bearer {globex.token}"},
            {"Authorization": "Bearer scimb_0123456789abcdef_" + "a" * 43},
        ):
            response = await acme.http.get(url, headers=headers)
            assert_error(response, 401)
            assert response.headers["www-authenticate"].startswith("Bearer")
            write = await acme.http.post(
                f"{acme.base}/Users",
                json={"schemas": [USER_SCHEMA], "userName": "intruder@example.com"},
                headers={**headers, "Content-Type": "application/scim+json"},
            )
            assert_error(write, 401)
        unknown_tenant = await acme.http.get(
            "/scim/nobody/v2/Users", headers={"Authorization": f"Bearer {acme.token}"}
        )
        assert_error(unknown_tenant, 401)
        assert await keyspace(redis) == before

        store = TenantStore(redis)
        (token,) = await store.list_tokens("acme")
        assert await store.revoke_token("acme", token.token_id)
        revoked = await acme.get(f"/Users/{uid}")
        assert_error(revoked, 401)
        discovery = await acme.get("/ServiceProviderConfig")
        assert_error(discovery, 401)


async def test_not_found_and_empty_results(acme: Any) -> None:
    for path in ("/Users/nope", "/Groups/nope", "/ResourceTypes/Nope", "/Schemas/urn:nope"):
        assert_error(await acme.get(path), 404)
    patch = patch_body({"op": "replace", "path": "title", "value": "x"})
    assert_error(await acme.patch("/Users/nope", patch), 404)
    assert_error(await acme.put("/Users/nope", {"schemas": [USER_SCHEMA], "userName": "x"}), 404)
    assert_error(await acme.delete("/Users/nope"), 404)
    assert_error(await acme.delete("/Groups/nope"), 404)
    group_patch = patch_body({"op": "replace", "path": "displayName", "value": "x"})
    assert_error(await acme.patch("/Groups/nope", group_patch), 404)
    member_patch = patch_body({"op": "add", "path": "members", "value": [{"value": "u"}]})
    assert_error(await acme.patch("/Groups/nope", member_patch), 404)

    uid = (await acme.create_user("twice@example.com"))["id"]
    assert (await acme.delete(f"/Users/{uid}")).status_code == 204
    assert_error(await acme.delete(f"/Users/{uid}"), 404)
    assert_error(await acme.patch(f"/Users/{uid}", patch), 404)
    gone = await acme.get("/Users", params={"filter": f'id eq "{uid}"'})
    assert gone.status_code == 200
    assert gone.json()["totalResults"] == 0
    empty = await acme.get("/Users", params={"filter": 'userName eq "nobody@example.com"'})
    assert empty.status_code == 200
    assert empty.json() == {
        "schemas": [LIST_SCHEMA],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }


@pytest.mark.parametrize(
    ("flt", "scim_type"),
    [
        ("userName eq", "invalidFilter"),
        ('userName eq "a" and', "invalidFilter"),
        ('userName xx "a"', "invalidFilter"),
        ('(userName eq "a"', "invalidFilter"),
        ('urn:example:nope:userName eq "a"', "invalidFilter"),
        ('name gt "a"', "invalidFilter"),
        ("active gt true", "invalidFilter"),
        ('emails[type eq "work"', "invalidFilter"),
    ],
)
async def test_bad_filters_are_invalid_filter(acme: Any, flt: str, scim_type: str) -> None:
    await acme.create_user("f@example.com")
    assert_error(await acme.get("/Users", params={"filter": flt}), 400, scim_type)
    search = await acme.post("/Users/.search", {"schemas": [SEARCH_SCHEMA], "filter": flt})
    assert_error(search, 400, scim_type)


async def test_filter_too_long_and_too_broad(redis: Redis, redis_url: str) -> None:
    async with running_api(redis, redis_url, "acme", max_scan=2, max_filter_length=100) as c:
        scim = c["acme"]
        users = [
            await scim.create_user(f"idx{i}@example.com", externalId=f"x{i}") for i in range(3)
        ]
        long = await scim.get("/Users", params={"filter": f'userName eq "{"a" * 200}"'})
        assert_error(long, 400, "invalidFilter")
        # eq on userName, externalId and id is answered from an index, never a scan ...
        for flt in (
            'userName eq "IDX1@example.com"',
            'externalId eq "x1"',
            f'id eq "{users[1]["id"]}"',
            'userName eq "idx1@example.com" and active eq true',
        ):
            response = await scim.get("/Users", params={"filter": flt})
            assert response.status_code == 200, (flt, response.text)
            assert [r["id"] for r in response.json()["Resources"]] == [users[1]["id"]]
        # ... while anything else over max_scan resources is refused, not slow.
        broad = await scim.get("/Users", params={"filter": 'title eq "x"'})
        assert_error(broad, 400, "tooMany")
        case = await scim.get("/Users", params={"filter": 'externalId eq "X1"'})
        assert case.json()["totalResults"] == 0  # externalId is caseExact


async def test_user_name_uniqueness_ignores_case(acme: Any, redis: Redis) -> None:
    first = await acme.create_user("Unique@Example.com")
    other = await acme.create_user("other@example.com")
    before = await keyspace(redis)
    for name in ("unique@example.com", "UNIQUE@EXAMPLE.COM", "Unique@Example.com"):
        dup = await acme.post("/Users", {"schemas": [USER_SCHEMA], "userName": name})
        assert_error(dup, 409, "uniqueness")
    renamed = await acme.patch(
        f"/Users/{other['id']}",
        patch_body({"op": "replace", "path": "userName", "value": "UNIQUE@example.com"}),
    )
    assert_error(renamed, 409, "uniqueness")
    put = await acme.put(
        f"/Users/{other['id']}", {"schemas": [USER_SCHEMA], "userName": "unique@EXAMPLE.com"}
    )
    assert_error(put, 409, "uniqueness")
    assert await keyspace(redis) == before
    # A user may change the case of its own userName.
    recased = await acme.patch(
        f"/Users/{first['id']}",
        patch_body({"op": "replace", "path": "userName", "value": "unique@example.com"}),
    )
    assert recased.status_code == 200
    assert recased.json()["userName"] == "unique@example.com"
    # A deleted user's userName is free again.
    assert (await acme.delete(f"/Users/{first['id']}")).status_code == 204
    again = await acme.post("/Users", {"schemas": [USER_SCHEMA], "userName": "UNIQUE@example.com"})
    assert again.status_code == 201
    assert again.json()["id"] != first["id"]


async def test_unknown_routes_and_methods_are_scim_errors(acme: Any) -> None:
    for path in ("/Nope", "/Users/a/b", "/Groups/a/members", "/users2"):
        assert_error(await acme.get(path), 404)
    outside = await acme.http.get("/scim/acme/v3/Users")
    assert_error(outside, 404)
    assert_error(await acme.http.get("/nothing-here"), 404)
    for method, path in (
        ("DELETE", "/Users"),
        ("PUT", "/Users"),
        ("PATCH", "/Groups"),
        ("POST", "/Users/some-id"),
        ("POST", "/ServiceProviderConfig"),
        ("DELETE", "/Schemas"),
        ("GET", "/Users/.search"),
        ("GET", "/.search"),
    ):
        response = await acme.request(method, path)
        assert_error(response, 405)
        assert response.headers.get("allow")
    bulk = await acme.post(
        "/Bulk", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"]}
    )
    assert_error(bulk, 501)
    assert_error(await acme.get("/Me"), 501)


async def test_disabled_users_still_answer_get_and_filters(acme: Any) -> None:
    user = await acme.create_user("sleepy@example.com", externalId="sleepy")
    uid = user["id"]
    disable = patch_body({"op": "replace", "path": "active", "value": False})
    off = await acme.patch(f"/Users/{uid}", disable)
    assert off.json()["active"] is False
    assert (await acme.get(f"/Users/{uid}")).json()["active"] is False
    for flt in ('userName eq "sleepy@example.com"', 'externalId eq "sleepy"', "active eq false"):
        found = await acme.get("/Users", params={"filter": flt})
        assert [r["id"] for r in found.json()["Resources"]] == [uid]
    assert (await acme.get("/Users")).json()["totalResults"] == 1
    assert (await acme.get("/Users", params={"filter": "active eq true"})).json()[
        "totalResults"
    ] == 0


# -- discovery (RFC 7644 §4; RFC 7643 §5-§7) ----------------------------------


async def test_service_provider_config_tells_the_truth(redis: Redis, redis_url: str) -> None:
    async with running_api(redis, redis_url, "acme", max_page_size=7, max_body_bytes=4096) as c:
        scim = c["acme"]
        response = await scim.get("/ServiceProviderConfig")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/scim+json")
        spc = response.json()
        assert spc["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]
        assert spc["patch"] == {"supported": True}
        assert spc["bulk"]["supported"] is False
        assert spc["sort"] == {"supported": False}
        assert spc["etag"] == {"supported": True}
        assert spc["changePassword"] == {"supported": False}
        assert spc["filter"] == {"supported": True, "maxResults": 7}
        assert spc["authenticationSchemes"][0]["type"] == "oauthbearertoken"
        assert spc["meta"]["location"] == "https://bridge.test/scim/acme/v2/ServiceProviderConfig"
        assert spc["pagination"]["maxPageSize"] == 7
        assert not [key for key in spc if key.startswith("urn:")]
        if "documentationUri" in spc:  # a link we give must lead somewhere
            docs = await scim.http.get(spc["documentationUri"])
            assert docs.status_code == 200
        for i in range(9):
            await scim.create_user(f"spc{i}@example.com")
        page = (await scim.get("/Users", params={"count": 100})).json()
        assert page["itemsPerPage"] == 7
        assert page["totalResults"] == 9
        # sort is not supported: sortBy is ignored, never an error.
        sorted_ = await scim.get("/Users", params={"sortBy": "userName", "count": 1})
        assert sorted_.status_code == 200


async def test_resource_types_and_schemas(acme: Any) -> None:
    listing = (await acme.get("/ResourceTypes")).json()
    assert listing["schemas"] == [LIST_SCHEMA]
    assert listing["totalResults"] == 2
    types = {rt["id"]: rt for rt in listing["Resources"]}
    assert types["User"]["endpoint"] == "/Users"
    assert types["User"]["schema"] == USER_SCHEMA
    assert types["User"]["schemaExtensions"] == [
        {"schema": ENTERPRISE, "required": False},
        {"schema": LMS, "required": False},
    ]
    assert types["Group"]["endpoint"] == "/Groups"
    assert types["Group"]["schemaExtensions"] == []
    assert (await acme.get("/ResourceTypes/User")).json() == types["User"]
    assert types["User"]["meta"]["location"].endswith("/ResourceTypes/User")

    schemas = (await acme.get("/Schemas")).json()
    by_id = {s["id"]: s for s in schemas["Resources"]}
    assert set(by_id) == {USER_SCHEMA, ENTERPRISE, LMS, GROUP_SCHEMA}
    lms = (await acme.get(f"/Schemas/{LMS}")).json()
    assert lms == by_id[LMS]
    assert [a["name"] for a in lms["attributes"]] == ["team"]
    team = lms["attributes"][0]
    assert team["type"] == "string"
    assert team["multiValued"] is False
    assert team["mutability"] == "readWrite"
    user_attrs = {a["name"]: a for a in by_id[USER_SCHEMA]["attributes"]}
    assert user_attrs["userName"]["uniqueness"] == "server"
    assert user_attrs["userName"]["caseExact"] is False
    assert user_attrs["userName"]["required"] is True
    assert user_attrs["password"]["returned"] == "never"
    assert user_attrs["password"]["mutability"] == "writeOnly"
    enterprise = {a["name"]: a for a in by_id[ENTERPRISE]["attributes"]}
    assert {"department", "organization", "manager"} <= set(enterprise)
    group_attrs = {a["name"]: a for a in by_id[GROUP_SCHEMA]["attributes"]}
    assert group_attrs["members"]["multiValued"] is True
    for schema in schemas["Resources"]:
        assert schema["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:Schema"]
        assert schema["meta"]["resourceType"] == "Schema"
        for attr in schema["attributes"]:
            assert None not in attr.values()  # Entra: never send null in schema discovery

    # What /Schemas says is stored: the lms team round-trips.
    user = await acme.create_user("team@example.com", **{LMS: {"team": "Red"}})
    assert user["schemas"] == [USER_SCHEMA, LMS]
    found = await acme.get("/Users", params={"filter": f'{LMS}:team eq "red"'})
    assert [r["id"] for r in found.json()["Resources"]] == [user["id"]]


async def test_ids_that_name_store_keys_are_plain_404s(acme: Any, redis: Redis) -> None:
    """Ids are ours (UUIDs); a made-up one never reaches the store's own keys."""
    user = await acme.create_user("keys@example.com", externalId="ext1")
    group = await acme.post(
        "/Groups",
        {"schemas": [GROUP_SCHEMA], "displayName": "K", "members": [{"value": user["id"]}]},
    )
    gid = group.json()["id"]
    before = await keyspace(redis)
    for rid in ("ids", "idx:un", "x:ext1", f"{user['id']}:groups", "seq", "n:k", "x" * 3000):
        for kind in ("Users", "Groups"):
            response = await acme.get(f"/{kind}/{rid}")
            assert_error(response, 404)
            assert len(response.text) < 400  # the id is not echoed back in full
            assert_error(await acme.delete(f"/{kind}/{rid}"), 404)
            assert_error(
                await acme.patch(
                    f"/{kind}/{rid}", patch_body({"op": "add", "path": "title", "value": "x"})
                ),
                404,
            )
    assert_error(await acme.get(f"/Groups/{gid}:members"), 404)
    by_id = await acme.get("/Users", params={"filter": 'id eq "ids"'})
    assert by_id.json()["totalResults"] == 0
    # As members they are no users of this tenant: left out, never stored.
    for bad in ("ids", f"{user['id']}:groups", user["id"].upper()):
        added = await acme.patch(
            f"/Groups/{gid}",
            patch_body({"op": "add", "path": "members", "value": [{"value": bad}]}),
        )
        assert added.status_code == 200, added.text
        assert [m["value"] for m in added.json()["members"]] == [user["id"]]
    assert await keyspace(redis) == before
    for bad in ("ids", f"{user['id']}:groups", user["id"].upper()):
        created = await acme.post(
            "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "B", "members": [{"value": bad}]}
        )
        assert created.status_code == 201, created.text
        assert "members" not in created.json()
        put = await acme.put(
            f"/Groups/{gid}",
            {"schemas": [GROUP_SCHEMA], "displayName": "K", "members": [{"value": bad}]},
        )
        assert put.status_code == 200, put.text
        assert "members" not in put.json()
        assert not await redis.exists(f"{{t:acme}}:u:{bad}:groups")
        assert await redis.zrange(f"{{t:acme}}:g:{gid}:members", 0, -1) == []


async def test_unexpected_failures_are_scim_errors_without_internals(
    acme: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from shadow import ResourceStore

    uid = (await acme.create_user("boom@example.com"))["id"]

    async def crash(*_: object, **__: object) -> None:
        raise RuntimeError("secret detail at /work/main/shadow/resources.py line 1")

    monkeypatch.setattr(ResourceStore, "get", crash)
    crashed = await acme.get(f"/Users/{uid}")
    assert_error(crashed, 500)
    assert "secret" not in crashed.text

    async def down(*_: object, **__: object) -> None:
        raise RedisConnectionError("Error 111 connecting to 10.0.0.7:6379")

    monkeypatch.setattr(ResourceStore, "get", down)
    unavailable = await acme.get(f"/Users/{uid}")
    assert_error(unavailable, 503)
    assert unavailable.headers["retry-after"]
    assert "10.0.0.7" not in unavailable.text


async def test_concurrent_patches_lose_no_update(acme: Any) -> None:
    """A PATCH that loses a race is re-applied to the newer state (no If-Match)."""
    import asyncio

    user = await acme.create_user("race@example.com")
    uid = user["id"]
    adds = [
        acme.patch(
            f"/Users/{uid}",
            patch_body({"op": "add", "path": "phoneNumbers", "value": [{"value": f"+{i}"}]}),
        )
        for i in range(4)
    ]
    assert [r.status_code for r in await asyncio.gather(*adds)] == [200] * 4
    final = (await acme.get(f"/Users/{uid}")).json()
    assert sorted(p["value"] for p in final["phoneNumbers"]) == ["+0", "+1", "+2", "+3"]


async def test_writes_that_change_nothing_write_nothing(acme: Any, redis: Redis) -> None:
    user = await acme.create_user("same@example.com", title="T")
    uid = user["id"]
    group = (
        await acme.post(
            "/Groups",
            {"schemas": [GROUP_SCHEMA], "displayName": "S", "members": [{"value": uid}]},
        )
    ).json()
    before = await keyspace(redis)
    same_title = await acme.patch(
        f"/Users/{uid}", patch_body({"op": "replace", "path": "title", "value": "T"})
    )
    assert same_title.status_code == 200
    assert same_title.headers["etag"] == user["meta"]["version"]
    put = await acme.put(
        f"/Users/{uid}",
        {
            "schemas": [USER_SCHEMA],
            "userName": "same@example.com",
            "active": True,
            "title": "T",
            "name": {"givenName": "Test", "familyName": "User"},
        },
    )
    assert put.status_code == 200
    assert put.json() == user
    member_again = await acme.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "add", "path": "members", "value": [{"value": uid}]}),
    )
    assert member_again.json()["meta"]["version"] == group["meta"]["version"]
    assert await keyspace(redis) == before


async def test_groups_page_and_write_responses_honour_attribute_selection(acme: Any) -> None:
    uid = (await acme.create_user("sel@example.com"))["id"]
    gids = []
    for name in ("A", "B", "C"):
        created = await acme.post(
            "/Groups",
            {"schemas": [GROUP_SCHEMA], "displayName": name, "members": [{"value": uid}]},
            params={"excludedAttributes": "members"},
        )
        assert created.status_code == 201
        assert "members" not in created.json()
        gids.append(created.json()["id"])
    pages = [
        (await acme.get("/Groups", params={"startIndex": i, "count": 1})).json()
        for i in (1, 2, 3, 4)
    ]
    assert [[r["id"] for r in p["Resources"]] for p in pages] == [[g] for g in gids] + [[]]
    assert {p["totalResults"] for p in pages} == {3}
    # Entra advises against answering group PATCHes with every member: it can ask not to.
    lean = await acme.patch(
        f"/Groups/{gids[0]}",
        patch_body({"op": "replace", "path": "displayName", "value": "A2"}),
        params={"excludedAttributes": "members"},
    )
    assert lean.status_code == 200
    assert lean.json()["displayName"] == "A2"
    assert "members" not in lean.json()
    only = await acme.put(
        f"/Users/{uid}",
        {"schemas": [USER_SCHEMA], "userName": "sel@example.com", "title": "T"},
        params={"attributes": "title"},
    )
    assert only.json() == {"schemas": [USER_SCHEMA], "id": uid, "title": "T"}


async def test_repeated_header_fields_are_read_as_http_says(acme: Any) -> None:
    """Two If-Match fields are one list (RFC 9110 §5.3): a match in either
    passes, none is a 412. Two Authorization fields are no credential (401)."""
    user = await acme.create_user("fields@example.com")
    url = f"{acme.base}/Users/{user['id']}"
    current = user["meta"]["version"]
    auth = ("Authorization", f"Bearer {acme.token}")
    body = patch_body({"op": "replace", "path": "title", "value": "Lead"})
    patched = await acme.http.patch(
        url, json=body, headers=[auth, ("If-Match", 'W/"999"'), ("If-Match", current)]
    )
    assert patched.status_code == 200, patched.text
    stale = await acme.http.patch(
        url, json=body, headers=[auth, ("If-Match", 'W/"998"'), ("If-Match", current)]
    )
    assert_error(stale, 412)
    twice = await acme.http.get(url, headers=[auth, auth])
    assert_error(twice, 401)


async def test_a_large_groups_members_are_streamed_a_page_at_a_time(
    acme: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over STREAM_MEMBERS_OVER members, a group's answer (GET, PATCH) reads
    and writes its members a page at a time (never the whole set) and is the
    same JSON as the one-piece render, selection included."""
    users = sorted([(await acme.create_user(f"m{i}@example.com"))["id"] for i in range(25)])
    created = await acme.post(
        "/Groups",
        {"schemas": [GROUP_SCHEMA], "displayName": "Big", "members": [{"value": u} for u in users]},
    )
    assert created.status_code == 201, created.text
    gid = created.json()["id"]
    selections: list[dict[str, str]] = [
        {},
        {"attributes": "members.value"},
        {"attributes": "displayName,members"},
        {"excludedAttributes": "members"},
    ]
    one_piece = [(await acme.get(f"/Groups/{gid}", params=p)).json() for p in selections]
    assert [m["value"] for m in one_piece[0]["members"]] == users

    async def whole_set(*args: Any, **kwargs: Any) -> list[str]:
        raise AssertionError("a large group's GET read its whole member set")

    monkeypatch.setattr(group_endpoint, "STREAM_MEMBERS_OVER", 10)
    monkeypatch.setattr(group_endpoint, "_MEMBER_PAGE", 7)  # four pages of 25
    monkeypatch.setattr(ResourceStore, "member_ids", whole_set)
    streamed = await acme.get(f"/Groups/{gid}")
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("application/scim+json")
    body = streamed.json()
    assert body["members"][0] == {
        "value": users[0],
        "$ref": f"https://bridge.test/scim/acme/v2/Users/{users[0]}",
        "type": "User",
        "display": one_piece[0]["members"][0]["display"],
    }
    assert body["meta"]["version"] == streamed.headers["etag"]
    for params, expected in zip(selections, one_piece, strict=True):
        assert (await acme.get(f"/Groups/{gid}", params=params)).json() == expected, params

    # A member PATCH answers the whole group too: streamed the same way.
    newcomer = (await acme.create_user("late@example.com"))["id"]
    add = {"op": "add", "path": "members", "value": [{"value": newcomer}]}
    patched = await acme.patch(f"/Groups/{gid}", patch_body(add))
    assert patched.status_code == 200, patched.text
    assert [m["value"] for m in patched.json()["members"]] == sorted([*users, newcomer])
    assert patched.json()["meta"]["version"] == patched.headers["etag"]
