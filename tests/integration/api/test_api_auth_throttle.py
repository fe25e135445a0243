"""Repeated failed authentication from one client is slowed (429 with
Retry-After) without locking out the tenant's valid token."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tests.support.api import ScimClient, running_api

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster


async def test_bad_tokens_are_throttled_and_the_good_one_still_works(
    redis: Redis, redis_url: str
) -> None:
    allowed = 5
    async with running_api(redis, redis_url, "acme", auth_failures_per_minute=allowed) as clients:
        good = clients["acme"]
        bad = ScimClient(good.http, "acme", "scimb_0123456789abcdef_guess")
        answers = [(await bad.get("/Users")).status_code for _ in range(allowed)]
        assert set(answers) == {401}
        throttled = await bad.get("/Users")
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"].isdigit()
        body = throttled.json()
        assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert body["status"] == "429"
        # Same client address, valid token: never locked out.
        assert (await good.get("/Users")).status_code == 200
        missing = await good.http.get("/scim/acme/v2/Users")
        assert missing.status_code == 429
