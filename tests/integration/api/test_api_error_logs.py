"""Error logs name the route template (`/scim/{tenant}/v2/Users/{id}`), never
the raw path, which holds ids, tenant slugs and whatever a client typed."""

from __future__ import annotations

import logging
import uuid

import pytest
from redis.asyncio import Redis

from shadow import keys
from tests.support.api import running_api


async def test_a_store_error_is_logged_with_the_route_template_not_the_path(
    redis: Redis, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    rid = str(uuid.uuid4())
    # A value of the wrong type where the user's record belongs: reading it
    # is a Redis error, as a failing store would give.
    await redis.set(keys.resource("acme", "u", rid), b"not a hash")
    caplog.set_level(logging.INFO)
    async with running_api(redis, redis_url, "acme") as clients:
        answer = await clients["acme"].get(f"/Users/{rid}")
    assert answer.status_code == 503
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors
    assert [getattr(r, "route", None) for r in errors] == ["/scim/{tenant}/v2/Users/{id}"]
    for record in errors:
        assert rid not in repr(record.__dict__)
        assert "/scim/acme/" not in repr(record.__dict__)
