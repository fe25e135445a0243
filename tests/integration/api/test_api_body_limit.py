"""An oversized body gets its 413 delivered: the API reads (and drops) a
bounded amount of the body before it answers, so a client that writes its
whole body before reading, as httpx does, reads a SCIM error instead of a
connection reset (api/drain.py). Served by uvicorn on a real socket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from litestar import Litestar
from redis.asyncio import Redis

from api.app import create_app
from api.drain import DRAIN_BYTES, _drain
from tests.support.api import SCIM_JSON, USER_SCHEMA, add_tenant, api_settings
from tests.support.redis_server import free_port

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


@contextlib.asynccontextmanager
async def served(app: Litestar) -> AsyncIterator[str]:
    """`app` behind uvicorn (httptools, as in production) on a free port."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def big_user(size: int) -> bytes:
    return b'{"schemas": ["%s"], "userName": "%s"}' % (USER_SCHEMA.encode(), b"x" * size)


async def test_a_client_that_writes_a_5_mb_body_first_reads_the_413(
    redis: Redis, redis_url: str
) -> None:
    token = await add_tenant(redis, "acme")
    auth = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        body = big_user(5_000_000)
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    async with (
        served(create_app(api_settings(redis_url))) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as client,
    ):
        for content, close in (
            (big_user(5_000_000), False),
            (chunks(), False),
            (big_user(5_000_000), True),
        ):
            headers = {**auth, "Connection": "close"} if close else auth
            answer = await client.post("/scim/acme/v2/Users", content=content, headers=headers)
            assert answer.status_code == 413, answer.text
            assert answer.json()["schemas"] == [ERROR_SCHEMA]
            assert answer.json()["status"] == "413"
        # Refused before its body is read, on a connection that then closes.
        stranger = {**auth, "Authorization": "Bearer junk", "Connection": "close"}
        answer = await client.post(
            "/scim/acme/v2/Users", content=big_user(5_000_000), headers=stranger
        )
        assert answer.status_code == 401
        assert answer.json()["schemas"] == [ERROR_SCHEMA]
        # The connection, its body read, serves the next request.
        assert (await client.get("/scim/acme/v2/Users", headers=auth)).status_code == 200


async def test_no_more_than_the_bound_is_read() -> None:
    """A body past `DRAIN_BYTES` is not read to its end (the answer then
    closes the connection)."""
    read = 0

    async def endless() -> Any:
        nonlocal read
        read += 65_536
        return {"type": "http.request", "body": b"x" * 65_536, "more_body": True}

    assert not await _drain(endless)
    assert DRAIN_BYTES <= read <= DRAIN_BYTES + 65_536
