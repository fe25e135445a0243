"""Redis that hangs (SIGSTOP: connections open, nothing answers) costs a SCIM
request seconds, never forever: 503 with a SCIM error and Retry-After
within about 5 s, never a 2xx, and service returns by itself once Redis
answers again (core/connect.py's default timeouts)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from redis.asyncio import Redis

from api.app import create_app
from tests.support.api import PATCH_OP, USER_SCHEMA, ScimClient, add_tenant, api_settings
from tests.support.redis_server import RedisServer, start_redis

pytestmark = pytest.mark.processes

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, to stop and continue."""
    server = start_redis(tmp_path)
    try:
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


@contextlib.asynccontextmanager
async def serving(app: Litestar) -> AsyncIterator[Any]:
    """The app's lifespan and requests on this test's loop, straight through
    ASGI, so that requests run at once (the test client takes them one by
    one, on a loop of its own)."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="https://bridge.test") as http,
    ):
        yield http


async def test_scim_answers_503_within_seconds_while_redis_hangs_then_recovers(
    own_redis: RedisServer,
) -> None:
    redis = Redis.from_url(own_redis.url)
    token = await add_tenant(redis, "acme")
    await redis.aclose()
    app = create_app(api_settings(own_redis.url))  # the default timeouts
    async with serving(app) as http:
        scim = ScimClient(http, "acme", token)
        user = await scim.create_user("ada@example.com")
        path = f"/Users/{user['id']}"
        change = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title"}]}
        change["Operations"][0]["value"] = "Engineer"
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            answers = await asyncio.gather(
                scim.get(path),
                scim.get("/Users", params={"filter": 'userName eq "ada@example.com"'}),
                scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "bob@example.com"}),
                scim.patch(path, change),
            )
            elapsed = time.monotonic() - started
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        assert elapsed < 5.5, elapsed
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.json()["schemas"] == [ERROR_SCHEMA]
            assert answer.json()["status"] == "503"
            assert int(answer.headers["Retry-After"]) > 0
        deadline = time.monotonic() + 5
        while (await scim.get(path)).status_code != 200:
            assert time.monotonic() < deadline, "service did not return after SIGCONT"
            await asyncio.sleep(0.1)
        assert (await scim.patch(path, change)).status_code == 200


async def test_the_credential_watcher_outlives_quiet_spells_longer_than_the_read_timeout(
    own_redis: RedisServer,
) -> None:
    """Its subscription has a connection of its own without the read timeout:
    a quiet 1.5 s under a 0.2 s read timeout neither drops it nor empties
    the credential cache."""
    redis = Redis.from_url(own_redis.url)
    token = await add_tenant(redis, "acme")
    await redis.aclose()
    app = create_app(api_settings(own_redis.url + "?socket_timeout=0.2"))
    async with serving(app) as http:
        tenants = app.state.services.tenants
        await asyncio.wait_for(tenants.listening.wait(), 5)
        assert (await ScimClient(http, "acme", token).get("/Users")).status_code == 200
        cached = tenants.cache_sizes()
        assert cached["tokens"] == 1
        await asyncio.sleep(1.5)  # a dropped subscription is retried after 1 s
        assert tenants.listening.is_set()
        assert tenants.cache_sizes() == cached
