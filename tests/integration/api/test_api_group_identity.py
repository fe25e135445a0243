"""A group's externalId (Entra's object id of it) is unique in a tenant: a
create retried after its answer was lost meets 409 `uniqueness` instead of
making a second group (docs/architecture.md, "Crash safety"). Names may
repeat, as they may in Entra."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.support.api import GROUP_SCHEMA, PATCH_OP, ScimClient, keyspace, running_api

OBJECT_ID = "0b3c6a52-8f1e-4c3a-9d55-1f2e3d4c5b6a"


@pytest.fixture
async def clients(redis: Redis, redis_url: str) -> AsyncIterator[dict[str, ScimClient]]:
    async with running_api(redis, redis_url, "acme", "globex") as found:
        yield found


def group(name: str, external_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "displayName": name}
    if external_id is not None:
        body["externalId"] = external_id
    return body


async def test_a_retried_create_meets_409_and_names_may_repeat(
    clients: dict[str, ScimClient],
) -> None:
    scim = clients["acme"]
    first = await scim.post("/Groups", group("Sales", OBJECT_ID))
    assert first.status_code == 201, first.text
    again = await scim.post("/Groups", group("Sales", OBJECT_ID))
    assert again.status_code == 409, again.text
    assert again.json()["scimType"] == "uniqueness"
    assert "externalId" in again.json()["detail"]
    # Another Entra group of the same name, and groups without an externalId.
    assert (await scim.post("/Groups", group("Sales", OBJECT_ID[:-1] + "b"))).status_code == 201
    assert (await scim.post("/Groups", group("Sales"))).status_code == 201
    assert (await scim.post("/Groups", group("Sales"))).status_code == 201
    # Another tenant may hold the same id.
    assert (await clients["globex"].post("/Groups", group("Sales", OBJECT_ID))).status_code == 201
    listed = await scim.get("/Groups", params={"filter": f'externalId eq "{OBJECT_ID}"'})
    assert [g["id"] for g in listed.json()["Resources"]] == [first.json()["id"]]


async def test_taking_another_groups_externalid_is_409_and_a_delete_frees_it(
    redis: Redis, clients: dict[str, ScimClient]
) -> None:
    scim = clients["acme"]
    held = (await scim.post("/Groups", group("A", OBJECT_ID))).json()["id"]
    other = (await scim.post("/Groups", group("B", "other-id"))).json()["id"]
    take = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Replace", "path": "externalId", "value": OBJECT_ID}],
    }
    member = (await scim.create_user("ada@example.com"))["id"]
    members = [{"value": member}]
    put = {**group("B", OBJECT_ID), "members": members}
    before = await keyspace(redis)
    refused = await scim.patch(f"/Groups/{other}", take)
    assert refused.status_code == 409, refused.text
    # Member changes are stored before the document: a refusal stores neither.
    refused = await scim.put(f"/Groups/{other}", put)
    assert refused.status_code == 409, refused.text
    add = {"op": "Add", "path": "members", "value": members}
    refused = await scim.patch(
        f"/Groups/{other}", {**take, "Operations": [*take["Operations"], add]}
    )
    assert refused.status_code == 409, refused.text
    assert await keyspace(redis) == before
    # Its own id again is no conflict; after a delete the id is free.
    assert (await scim.put(f"/Groups/{held}", group("A2", OBJECT_ID))).status_code == 200
    assert (await scim.delete(f"/Groups/{held}")).status_code == 204
    assert (await scim.patch(f"/Groups/{other}", take)).status_code == 200
