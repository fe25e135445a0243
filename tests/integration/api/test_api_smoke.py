"""The SCIM API end to end in-process: create, read, filter, patch, delete."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tests.support.api import PATCH_OP, running_api

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster


async def test_user_lifecycle(redis: Redis, redis_url: str) -> None:
    async with running_api(redis, redis_url, "acme") as clients:
        scim = clients["acme"]
        created = await scim.create_user("ada@example.com", externalId="ada")
        uid = created["id"]
        assert created["meta"]["location"] == f"https://bridge.test/scim/acme/v2/Users/{uid}"
        got = await scim.get(f"/Users/{uid}")
        assert got.status_code == 200
        assert got.headers["content-type"].startswith("application/scim+json")
        found = await scim.get("/Users", params={"filter": 'userName eq "ADA@example.com"'})
        assert found.json()["totalResults"] == 1
        patched = await scim.patch(
            f"/Users/{uid}",
            {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
            },
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["active"] is False
        deleted = await scim.delete(f"/Users/{uid}")
        assert deleted.status_code == 204
        assert (await scim.get(f"/Users/{uid}")).status_code == 404
