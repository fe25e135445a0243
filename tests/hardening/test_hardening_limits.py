"""The limits are one truth: what the Limits table of docs/scim.md says, what
/ServiceProviderConfig declares and what is enforced, at the boundary (the
limit passes, one past it is refused with the documented answer).

The PATCH and filter limits are enforced by the pure logic (scim/patch.py,
scim/filter.py); the settings take their defaults from there and the SPC
declares what is really enforced, also when a setting says otherwise.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from api.scim_io import MAX_JSON_DEPTH
from core.settings import Settings
from scim.filter import MAX_FILTER_LENGTH
from scim.patch import MAX_PATCH_OPERATIONS
from shadow import ResourceStore
from tests.support.api import PATCH_OP, USER_SCHEMA, ScimClient, running_api

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
LIMITS_DOC = Path(__file__).resolve().parents[2] / "docs" / "scim.md"


def documented_limits() -> dict[str, str]:
    """The Limits table of docs/scim.md: limit -> value, as written."""
    section = LIMITS_DOC.read_text().split("## Limits", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([^|]+?) \| ([^|]+?) \| [^|]+ \|$", section, re.MULTILINE)
    return {limit: value for limit, value in rows if limit != "limit" and not limit.startswith("-")}


def number(text: str) -> int:
    found = re.match(r"([\d,]+)( MiB)?", text)
    assert found, text
    value = int(found[1].replace(",", ""))
    return value * 1_048_576 if found[2] else value


def assert_error(response: Any, status: int, scim_type: str | None = None) -> None:
    assert response.status_code == status, response.text[:300]
    body = response.json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body.get("scimType") == scim_type, body


async def spc_limits(scim: ScimClient) -> dict[str, Any]:
    """The limits in force: page sizes from the SPC's RFC fields (RFC 7643 §5,
    RFC 9865 §4), the rest (which have no RFC field) from the settings."""
    response = await scim.get("/ServiceProviderConfig")
    assert response.status_code == 200
    spc: dict[str, Any] = response.json()
    assert spc["filter"]["maxResults"] == spc["pagination"]["maxPageSize"]
    settings: Settings = scim.http.app.state.services.settings
    return {
        "maxPayloadBytes": settings.max_body_bytes,
        "maxJsonDepth": MAX_JSON_DEPTH,
        "maxPatchOperations": settings.max_patch_operations,
        "maxFilterLength": settings.filter_length_limit,
        "maxPageSize": spc["pagination"]["maxPageSize"],
        "defaultPageSize": spc["pagination"]["defaultPageSize"],
        "maxFilterScan": settings.max_scan,
    }


async def test_the_readme_the_spc_and_the_enforcing_code_agree(
    redis: Redis, redis_url: str
) -> None:
    async with running_api(redis, redis_url, "acme") as clients:
        declared = await spc_limits(clients["acme"])
    written = documented_limits()
    defaults = Settings()
    assert declared == {
        "maxPayloadBytes": number(written["request body"]),
        "maxJsonDepth": number(written["JSON nesting"]),
        "maxPatchOperations": number(written["PATCH operations per request"]),
        "maxFilterLength": number(written["filter length"]),
        "maxPageSize": number(written["page size (`count`)"]),
        "defaultPageSize": defaults.default_page_size,
        "maxFilterScan": number(written["resources scanned by a non-indexed filter"]),
    }
    assert f"(default {defaults.default_page_size})" in written["page size (`count`)"]
    # What the pure logic enforces is what is in force.
    assert declared["maxJsonDepth"] == MAX_JSON_DEPTH
    assert declared["maxPatchOperations"] == MAX_PATCH_OPERATIONS
    assert declared["maxFilterLength"] == MAX_FILTER_LENGTH
    assert declared["maxPayloadBytes"] == defaults.max_body_bytes


def user(name: str, **extra: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": name, **extra}


async def test_body_size_and_json_depth_at_the_boundary(redis: Redis, redis_url: str) -> None:
    async with running_api(redis, redis_url, "acme") as clients:
        scim = clients["acme"]
        limits = await spc_limits(scim)
        size = limits["maxPayloadBytes"]
        raw = json.dumps(user("padded@example.com")).encode()
        exact = raw[:-1] + b" " * (size - len(raw)) + b"}"
        assert len(exact) == size
        headers = {"Authorization": f"Bearer {scim.token}", "Content-Type": "application/scim+json"}
        at = await scim.http.post(f"{scim.base}/Users", content=exact, headers=headers)
        assert at.status_code == 201, at.text[:300]
        over = exact[:-1] + b" }"
        refused = await scim.http.post(f"{scim.base}/Users", content=over, headers=headers)
        assert_error(refused, 413)

        depth = limits["maxJsonDepth"]
        # The body itself is one level: an attribute nested depth - 1 more is the limit.
        deepest = user("deep@example.com", nested=[[]])
        text = json.dumps(deepest).replace("[[]]", "[" * (depth - 1) + "]" * (depth - 1))
        ok = await scim.http.post(f"{scim.base}/Users", content=text.encode(), headers=headers)
        assert ok.status_code == 201, ok.text[:300]
        deeper = text.replace("[", "[[", 1).replace("]", "]]", 1).replace("deep@", "deeper@")
        refused = await scim.http.post(f"{scim.base}/Users", content=deeper, headers=headers)
        assert_error(refused, 400, "invalidSyntax")


async def test_patch_operations_at_the_boundary(redis: Redis, redis_url: str) -> None:
    async with running_api(redis, redis_url, "acme") as clients:
        scim = clients["acme"]
        most = (await spc_limits(scim))["maxPatchOperations"]
        uid = (await scim.create_user("ops@example.com"))["id"]
        ops = [{"op": "replace", "path": "title", "value": str(i)} for i in range(most + 1)]
        at = await scim.patch(f"/Users/{uid}", {"schemas": [PATCH_OP], "Operations": ops[:most]})
        assert at.status_code == 200, at.text[:300]
        assert at.json()["title"] == str(most - 1)
        over = await scim.patch(f"/Users/{uid}", {"schemas": [PATCH_OP], "Operations": ops})
        assert_error(over, 400, "invalidValue")
        assert (await scim.get(f"/Users/{uid}")).json()["title"] == str(most - 1)


def filter_of(length: int) -> str:
    head = 'userName eq "'
    return head + "a" * (length - len(head) - 1) + '"'


async def assert_filter_limit(scim: ScimClient, most: int) -> None:
    for text, ok in ((filter_of(most), True), (filter_of(most + 1), False)):
        search = {"schemas": [SEARCH_SCHEMA], "filter": text}
        for response in (
            await scim.get("/Users", params={"filter": text}),
            await scim.post("/Users/.search", search),
            await scim.post("/.search", search),
        ):
            if ok:
                assert response.status_code == 200, response.text[:300]
                assert response.json()["totalResults"] == 0
            else:
                assert_error(response, 400, "invalidFilter")


async def test_filter_length_at_the_boundary_whatever_the_setting(
    redis: Redis, redis_url: str
) -> None:
    for setting, enforced in ((None, MAX_FILTER_LENGTH), (100, 100), (10_000, MAX_FILTER_LENGTH)):
        await redis.flushdb()
        extra = {} if setting is None else {"max_filter_length": setting}
        async with running_api(redis, redis_url, "acme", **extra) as clients:
            scim = clients["acme"]
            assert (await spc_limits(scim))["maxFilterLength"] == enforced, setting
            await assert_filter_limit(scim, enforced)


async def test_page_size_is_capped_and_defaulted(redis: Redis, redis_url: str) -> None:
    async with running_api(redis, redis_url, "acme") as clients:
        scim = clients["acme"]
        most = (await spc_limits(scim))["maxPageSize"]
        store = ResourceStore(redis)
        for i in range(most + 5):
            rid = f"00000000-0000-4000-8000-{i:012d}"
            await store.write("acme", "u", rid, "create", user(f"p{i}@example.com"))
        for params, expected in (
            ({"count": str(most * 10)}, most),
            ({"count": str(most + 1)}, most),
            ({}, Settings().default_page_size),
            ({"count": "-5"}, 0),
            ({"count": "3", "startIndex": str(most + 4)}, 2),
        ):
            page = (await scim.get("/Users", params=params)).json()
            assert page["itemsPerPage"] == expected, params
            assert page["totalResults"] == most + 5
        search = {"schemas": [SEARCH_SCHEMA], "count": most * 10}
        assert (await scim.post("/.search", search)).json()["itemsPerPage"] == most
