"""Bad input changes nothing (docs/architecture.md, invariant 6).

Each request below fails, with the status and scimType RFC 7644 §3.12
gives it, and the whole Redis keyspace (every key, its type and value,
queue included) is the same after it as before it. Group requests mix a
valid member change with a failing operation: the member change must not
happen either.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.api import GROUP_SCHEMA, PATCH_OP, USER_SCHEMA, ScimClient, keyspace, running_api

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


class World:
    """Two users (one disabled), a group holding the first, and a stale ETag."""

    def __init__(self, scim: ScimClient, other: ScimClient, ids: dict[str, str]) -> None:
        self.scim = scim
        self.other = other
        self.ids = ids


@pytest.fixture
async def world(redis: Redis, redis_url: str) -> AsyncIterator[World]:
    async with running_api(redis, redis_url, "acme", "globex", max_body_bytes=4096) as c:
        scim, other = c["acme"], c["globex"]
        ann = await scim.create_user("ann@example.com", externalId="ann")
        bob = await scim.create_user("bob@example.com", active=False)
        stale = ann["meta"]["version"]
        fresh = await scim.patch(
            f"/Users/{ann['id']}", ops({"op": "add", "path": "title", "value": "Lead"})
        )
        group = await scim.post(
            "/Groups",
            {"schemas": [GROUP_SCHEMA], "displayName": "Team", "members": [{"value": ann["id"]}]},
        )
        foreign = await other.create_user("zed@example.com")
        await scim.get("/Users")  # tokens record their last use once a minute: get it done
        await other.get("/Users")
        yield World(
            scim,
            other,
            {
                "ann": ann["id"],
                "bob": bob["id"],
                "group": group.json()["id"],
                "stale": stale,
                "fresh": fresh.headers["etag"],
                "foreign": foreign["id"],
            },
        )


# (name, method, path, body or raw bytes, extra headers, status, scimType)
BAD: list[tuple[str, str, str, Any, dict[str, str], int, str | None]] = [
    (
        "create without userName",
        "POST",
        "/Users",
        {"schemas": [USER_SCHEMA]},
        {},
        400,
        "invalidValue",
    ),
    (
        "create duplicate userName",
        "POST",
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "ANN@example.com"},
        {},
        409,
        "uniqueness",
    ),
    ("create malformed JSON", "POST", "/Users", b'{"schemas": [', {}, 400, "invalidSyntax"),
    ("create JSON array", "POST", "/Users", b"[]", {}, 400, "invalidSyntax"),
    (
        "create wrong media type",
        "POST",
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "n"},
        {"Content-Type": "text/plain"},
        415,
        None,
    ),
    (
        "create over the body limit",
        "POST",
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "big", "title": "x" * 5000},
        {},
        413,
        None,
    ),
    (
        "create without a token",
        "POST",
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "n"},
        {"Authorization": ""},
        401,
        None,
    ),
    (
        "create with a wrong token",
        "POST",
        "/Users",
        {"schemas": [USER_SCHEMA], "userName": "n"},
        {"Authorization": "Bearer scimb_0000000000000000_nope"},
        401,
        None,
    ),
    (
        "patch second op fails",
        "PATCH",
        "/Users/{ann}",
        ops(
            {"op": "replace", "path": "title", "value": "Changed"},
            {"op": "replace", "path": "nosuch", "value": 1},
        ),
        {},
        400,
        "invalidPath",
    ),
    (
        "patch readOnly",
        "PATCH",
        "/Users/{ann}",
        ops({"op": "replace", "path": "id", "value": "x"}),
        {},
        400,
        "mutability",
    ),
    (
        "patch remove without path",
        "PATCH",
        "/Users/{ann}",
        ops({"op": "remove"}),
        {},
        400,
        "noTarget",
    ),
    (
        "patch bad value",
        "PATCH",
        "/Users/{ann}",
        ops({"op": "replace", "path": "active", "value": "perhaps"}),
        {},
        400,
        "invalidValue",
    ),
    (
        "patch to a taken userName",
        "PATCH",
        "/Users/{bob}",
        ops({"op": "replace", "path": "userName", "value": "Ann@Example.com"}),
        {},
        409,
        "uniqueness",
    ),
    (
        "patch stale If-Match",
        "PATCH",
        "/Users/{ann}",
        ops({"op": "replace", "path": "title", "value": "x"}),
        {"If-Match": "{stale}"},
        412,
        None,
    ),
    (
        "patch unknown user",
        "PATCH",
        "/Users/nope",
        ops({"op": "add", "path": "title", "value": 1}),
        {},
        404,
        None,
    ),
    (
        "patch another tenant's user",
        "PATCH",
        "/Users/{foreign}",
        ops({"op": "add", "path": "title", "value": "x"}),
        {},
        404,
        None,
    ),
    (
        "put stale If-Match",
        "PUT",
        "/Users/{ann}",
        {"schemas": [USER_SCHEMA], "userName": "ann"},
        {"If-Match": "{stale}"},
        412,
        None,
    ),
    (
        "put to a taken userName",
        "PUT",
        "/Users/{bob}",
        {"schemas": [USER_SCHEMA], "userName": "ann@EXAMPLE.com"},
        {},
        409,
        "uniqueness",
    ),
    (
        "put without schemas",
        "PUT",
        "/Users/{ann}",
        {"userName": "ann@example.com"},
        {},
        400,
        "invalidSyntax",
    ),
    ("delete stale If-Match", "DELETE", "/Users/{ann}", None, {"If-Match": "{stale}"}, 412, None),
    ("delete unknown", "DELETE", "/Users/nope", None, {}, 404, None),
    (
        "group create with a nested group",
        "POST",
        "/Groups",
        {
            "schemas": [GROUP_SCHEMA],
            "displayName": "X",
            "members": [{"value": "{group}", "type": "Group"}],
        },
        {},
        400,
        "invalidValue",
    ),
    (
        "group patch: add ok, then a bad op",
        "PATCH",
        "/Groups/{group}",
        ops(
            {"op": "add", "path": "members", "value": [{"value": "{bob}"}]},
            {"op": "replace", "path": "displayName", "value": ""},
        ),
        {},
        400,
        "mutability",
    ),
    (
        "group patch: remove by a non-id filter",
        "PATCH",
        "/Groups/{group}",
        ops({"op": "remove", "path": 'members[display eq "ann"]'}),
        {},
        400,
        "invalidFilter",
    ),
    (
        "group patch: member sub-attribute",
        "PATCH",
        "/Groups/{group}",
        ops({"op": "replace", "path": "members.value", "value": "{bob}"}),
        {},
        400,
        "mutability",
    ),
    (
        "group patch stale If-Match",
        "PATCH",
        "/Groups/{group}",
        ops({"op": "add", "path": "members", "value": [{"value": "{bob}"}]}),
        {"If-Match": 'W/"999"'},
        412,
        None,
    ),
    (
        "search with a bad filter",
        "POST",
        "/Users/.search",
        {"schemas": [SEARCH_SCHEMA], "filter": "userName eq"},
        {},
        400,
        "invalidFilter",
    ),
    ("list with a bad count", "GET", "/Users?count=many", None, {}, 400, "invalidValue"),
    ("wrong method", "DELETE", "/Users", None, {}, 405, None),
    ("unknown route", "POST", "/Widgets", {"schemas": []}, {}, 404, None),
    (
        "bulk",
        "POST",
        "/Bulk",
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"]},
        {},
        501,
        None,
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "scim_type"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
async def test_a_failing_request_leaves_no_trace(
    world: World,
    redis: Redis,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    scim_type: str | None,
) -> None:
    def fill(text: str) -> str:
        for name, value in world.ids.items():
            text = text.replace("{" + name + "}", value)
        return text

    headers = {k: fill(v) for k, v in headers.items()}
    if isinstance(body, bytes):
        content = body
    else:
        content = b"" if body is None else fill(json.dumps(body)).encode()
    scim = world.scim
    all_headers = {
        "Authorization": f"Bearer {scim.token}",
        "Content-Type": "application/scim+json",
        **headers,
    }
    before = await keyspace(redis)
    response: httpx.Response = await scim.http.request(
        method, scim.base + fill(path), content=content, headers=all_headers
    )
    assert response.status_code == status, response.text
    error = response.json()
    assert error["schemas"] == [ERROR_SCHEMA]
    assert error["status"] == str(status)
    assert error.get("scimType") == scim_type
    assert error["detail"]
    assert "Traceback" not in response.text
    assert await keyspace(redis) == before


async def test_the_world_is_as_it_was(world: World) -> None:
    """The fixture's state, so the cases above start from what they think."""
    scim = world.scim
    group = (await scim.get(f"/Groups/{world.ids['group']}")).json()
    assert group["displayName"] == "Team"
    assert [m["value"] for m in group["members"]] == [world.ids["ann"]]
    ann = (await scim.get(f"/Users/{world.ids['ann']}")).json()
    assert ann["title"] == "Lead"
    assert ann["meta"]["version"] == world.ids["fresh"]
    assert (await scim.get(f"/Users/{world.ids['bob']}")).json()["active"] is False
