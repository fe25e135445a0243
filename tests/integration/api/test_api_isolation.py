"""Tenants are walled off (docs/architecture.md, invariant 5), on every SCIM route.

Tenant A's token on tenant B's URL is a 401; A's ids under B's URL (with
B's token) are a 404 or simply absent from lists; B can never make A's
users members of its groups; and nothing of A changes whatever B does.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.api import ENTERPRISE, GROUP_SCHEMA, PATCH_OP, USER_SCHEMA, keyspace, running_api

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def assert_error(response: httpx.Response, status: int, scim_type: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type
    assert body["detail"]


def patch_body(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(ops)}


def routes(user_id: str, group_id: str, member_id: str) -> list[tuple[str, str, Any]]:
    """(method, path, body) of every SCIM route, aimed at the given ids."""
    user = {"schemas": [USER_SCHEMA], "userName": "shared@example.com", "title": "Intruder"}
    group = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Intruders",
        "members": [{"value": member_id}],
    }
    user_patch = patch_body({"op": "replace", "path": "active", "value": False})
    group_patch = patch_body(
        {"op": "add", "path": "members", "value": [{"value": member_id}]},
        {"op": "replace", "path": "displayName", "value": "Hijacked"},
    )
    search = {"schemas": [SEARCH_SCHEMA], "filter": f'id eq "{user_id}"'}
    return [
        ("GET", "/Users", None),
        ("GET", f'/Users?filter=id eq "{user_id}"', None),
        ("POST", "/Users/.search", search),
        ("POST", "/.search", search),
        ("POST", "/Users", user),
        ("GET", f"/Users/{user_id}", None),
        ("PUT", f"/Users/{user_id}", user),
        ("PATCH", f"/Users/{user_id}", user_patch),
        ("DELETE", f"/Users/{user_id}", None),
        ("GET", "/Groups", None),
        ("GET", f'/Groups?filter=id eq "{group_id}"', None),
        ("POST", "/Groups/.search", {"schemas": [SEARCH_SCHEMA]}),
        ("POST", "/Groups", group),
        ("GET", f"/Groups/{group_id}", None),
        ("PUT", f"/Groups/{group_id}", group),
        ("PATCH", f"/Groups/{group_id}", group_patch),
        ("DELETE", f"/Groups/{group_id}", None),
        ("GET", "/ServiceProviderConfig", None),
        ("GET", "/ResourceTypes", None),
        ("GET", "/ResourceTypes/User", None),
        ("GET", "/Schemas", None),
        ("GET", f"/Schemas/{ENTERPRISE}", None),
        ("POST", "/Bulk", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"]}),
        ("GET", "/Me", None),
    ]


async def test_tenants_are_walled_off_on_every_route(redis: Redis, redis_url: str) -> None:
    async with running_api(redis, redis_url, "acme", "globex") as clients:
        acme, globex = clients["acme"], clients["globex"]
        a_user = await acme.create_user(
            "shared@example.com", externalId="shared-ext", **{ENTERPRISE: {"department": "R&D"}}
        )
        a_group = (
            await acme.post(
                "/Groups",
                {
                    "schemas": [GROUP_SCHEMA],
                    "displayName": "Shared",
                    "externalId": "shared-group",
                    "members": [{"value": a_user["id"]}],
                },
            )
        ).json()
        a_views = [
            (await acme.get(f"/Users/{a_user['id']}")).json(),
            (await acme.get(f"/Groups/{a_group['id']}")).json(),
        ]
        await globex.get("/Users")  # first use of B's token records its last-used time
        everything = await keyspace(redis)
        a_keys = await keyspace(redis, "{t:acme}:*")
        assert a_keys

        # 1. A's token on B's URL: 401 on every route, and nothing written anywhere.
        intruder = type(globex)(globex.http, "globex", acme.token)
        for method, path, body in routes(a_user["id"], a_group["id"], a_user["id"]):
            response = await intruder.request(method, path, json=body)
            assert_error(response, 401)
        assert await keyspace(redis) == everything

        # 2. B's token, A's ids under B's URL: 404, or absent from B's lists.
        for method, path, body in routes(a_user["id"], a_group["id"], a_user["id"]):
            response = await globex.request(method, path, json=body)
            if (method == "GET" and "?" in path) or path.endswith(".search"):
                assert response.status_code == 200, (method, path, response.text)
                assert response.json()["totalResults"] == 0, (method, path)
            elif path in ("/Users", "/Groups") and method == "GET":
                assert response.json()["totalResults"] == 0
            elif method == "POST" and path == "/Groups":
                assert response.status_code == 201  # A's user is no user of B: left out
                assert "members" not in response.json()
            elif method == "POST" and path == "/Users":
                assert response.status_code == 201  # uniqueness is per tenant
                assert response.json()["meta"]["location"].startswith(
                    "https://bridge.test/scim/globex/v2/Users/"
                )
            elif path.startswith(("/Users/", "/Groups/")):
                assert_error(response, 404)
            elif path in ("/Bulk", "/Me"):
                assert_error(response, 501)
            else:
                assert response.status_code == 200, (method, path)
                assert "acme" not in response.text
        for flt in ('userName eq "shared@example.com"', 'externalId eq "shared-ext"'):
            mine = (await globex.get("/Users", params={"filter": flt})).json()
            assert all(r["id"] != a_user["id"] for r in mine["Resources"])
        for flt in ('displayName eq "Shared"', 'externalId eq "shared-group"'):
            assert (await globex.get("/Groups", params={"filter": flt})).json()["totalResults"] == 0

        # 3. B's own group cannot take A's user by PATCH or PUT either.
        b_group = (
            await globex.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Mine"})
        ).json()
        add = await globex.patch(
            f"/Groups/{b_group['id']}",
            patch_body({"op": "add", "path": "members", "value": [{"value": a_user["id"]}]}),
        )
        assert add.status_code == 200  # left out, never stored
        assert "members" not in add.json()
        put = await globex.put(
            f"/Groups/{b_group['id']}",
            {
                "schemas": [GROUP_SCHEMA],
                "displayName": "Mine",
                "members": [{"value": a_user["id"]}],
            },
        )
        assert put.status_code == 200
        assert "members" not in (await globex.get(f"/Groups/{b_group['id']}")).json()

        # 4. Nothing of A changed: its keys byte for byte, and what A reads.
        assert await keyspace(redis, "{t:acme}:*") == a_keys
        assert (await acme.get(f"/Users/{a_user['id']}")).json() == a_views[0]
        assert (await acme.get(f"/Groups/{a_group['id']}")).json() == a_views[1]
        assert not [k for k in await redis.keys("{t:globex}:*") if a_user["id"].encode() in k]


async def test_unknown_or_foreign_tenant_slug_is_401_not_404(redis: Redis, redis_url: str) -> None:
    async with running_api(redis, redis_url, "acme") as clients:
        acme = clients["acme"]
        uid = (await acme.create_user("slug@example.com"))["id"]
        for slug in ("nobody", "ACME", "acme-2", "%7Bt:acme%7D"):
            for path in (f"/Users/{uid}", "/Users", "/ServiceProviderConfig"):
                response = await acme.http.get(
                    f"/scim/{slug}/v2{path}", headers={"Authorization": f"Bearer {acme.token}"}
                )
                assert_error(response, 401)
