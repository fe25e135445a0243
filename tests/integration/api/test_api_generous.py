"""Generous in what we read where the meaning is clear: endpoint names in any
letter case, unquoted filter values, attribute names and URNs in any case.

Clients written against Microsoft's reference SCIM service send
`GET .../users` and `filter=userName sw O`; neither can mean anything else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.support.api import ScimClient, running_api

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture
async def scim(redis: Redis, redis_url: str) -> AsyncIterator[ScimClient]:
    async with running_api(redis, redis_url, "acme") as clients:
        yield clients["acme"]


async def test_endpoint_names_are_matched_in_any_letter_case(scim: ScimClient) -> None:
    user = await scim.create_user("olivia@example.com")
    for path in ("/users", "/USERS", "/Users"):
        listed = await scim.get(path)
        assert listed.status_code == 200, (path, listed.text)
        assert listed.json()["totalResults"] == 1
    assert (await scim.get(f"/users/{user['id']}")).json()["id"] == user["id"]
    created = await scim.post("/GROUPS", {"schemas": [GROUP], "displayName": "Team"})
    assert created.status_code == 201, created.text
    assert created.headers["location"].endswith(f"/Groups/{created.json()['id']}")
    assert (await scim.get(f"/groups/{created.json()['id']}")).status_code == 200
    searched = await scim.post("/users/.SEARCH", {"schemas": [SEARCH], "filter": "userName pr"})
    assert searched.json()["totalResults"] == 1
    assert (await scim.post("/.Search", {"schemas": [SEARCH]})).json()["totalResults"] == 2
    for path in (
        "/serviceproviderconfig",
        "/SERVICEPROVIDERCONFIG",
        "/resourcetypes",
        "/resourceTypes/user",
        "/schemas",
        f"/schemas/{ENTERPRISE.upper()}",
    ):
        assert (await scim.get(path)).status_code == 200, path
    upper_v2 = await scim.http.get(
        f"/scim/acme/V2/users/{user['id']}", headers={"Authorization": f"Bearer {scim.token}"}
    )
    assert upper_v2.status_code == 200
    missing = await scim.get("/userz")
    assert missing.status_code == 404
    assert missing.json()["status"] == "404"


async def test_unquoted_filter_values_and_names_in_any_case(scim: ScimClient) -> None:
    olivia = await scim.create_user(
        "Olivia@example.com",
        name={"givenName": "Olivia", "familyName": "Ortega"},
        **{ENTERPRISE: {"department": "Tours"}},
    )
    await scim.create_user("bob@example.com")

    async def ids(flt: str) -> list[str]:
        answer = await scim.get("/Users", params={"filter": flt})
        assert answer.status_code == 200, (flt, answer.text)
        return [r["id"] for r in answer.json()["Resources"]]

    assert await ids("userName sw O") == [olivia["id"]]
    assert await ids("userName eq olivia@example.com") == [olivia["id"]]
    assert len(await ids("meta.created gt 2015-10-10T14:38:21")) == 2
    assert await ids("meta.created lt 2015-10-10") == []
    assert len(await ids("active eq True")) == 2
    assert await ids('NAME.GIVENNAME eq "olivia"') == [olivia["id"]]
    assert await ids(f"{ENTERPRISE.upper()}:DEPARTMENT eq Tours") == [olivia["id"]]
    refused = await scim.get("/Users", params={"filter": "userName eq and"})
    assert refused.status_code == 400
    assert refused.json()["scimType"] == "invalidFilter"
