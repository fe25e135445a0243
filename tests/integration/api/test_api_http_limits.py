"""The API listener's limits (api/http_limits.py), on a real socket with the
config `scim-bridge api` runs: clients that trickle their headers are cut
while a tenant's requests keep being served; headers past the size cap are
refused; past the connection cap requests get a 503 until slots free up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from redis.asyncio import Redis

from api.app import create_app
from api.http_limits import server_config
from core.settings import Settings, load_settings
from tests.support.api import add_tenant, api_settings
from tests.support.redis_server import free_port

#: Safety net only: a connection the server never cuts fails the test here.
NEVER_S = 60


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[str]:
    """The API behind uvicorn with the listener config of `scim-bridge api`."""
    port = free_port()
    config = server_config(create_app(settings), settings)
    config.port = port
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


class Slowloris:
    """A client that sends a request line and then one header line now and
    then, never finishing its headers."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cut = asyncio.Event()

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(b"GET /scim/acme/v2/Users HTTP/1.1\r\nHost: bridge\r\n")
            await writer.drain()
            read = asyncio.create_task(reader.read(1024))
            n = 0
            while not read.done():
                with contextlib.suppress(ConnectionError):
                    writer.write(b"X-Trickle-%d: x\r\n" % n)
                    await writer.drain()
                n += 1
                await asyncio.wait([read], timeout=0.2)
            with contextlib.suppress(ConnectionError):
                await read  # a close or a reset: either way the server cut it
            self.cut.set()
        finally:
            writer.close()


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


async def test_clients_trickling_headers_are_cut_while_a_tenant_is_served(
    redis: Redis, redis_url: str
) -> None:
    token = await add_tenant(redis, "acme")
    settings = api_settings(redis_url, api_header_timeout_s=1.0, api_max_connections=1000)
    async with served(settings) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        lorises = [Slowloris(port_of(base)) for _ in range(300)]
        tasks = [asyncio.create_task(s.run()) for s in lorises]
        answers: list[int] = []
        while not all(s.cut.is_set() for s in lorises):
            answer = await http.get(
                "/scim/acme/v2/Users", headers={"Authorization": f"Bearer {token}"}
            )
            answers.append(answer.status_code)
            failed = [t.exception() for t in tasks if t.done() and t.exception()]
            assert not failed, failed[:3]
            await asyncio.wait(tasks, timeout=0.1)
            assert len(answers) < NEVER_S * 10, "the trickling clients were never cut"
        await asyncio.gather(*tasks)
        assert answers
        assert set(answers) == {200}


async def test_headers_over_the_size_cap_are_refused(redis: Redis, redis_url: str) -> None:
    settings = api_settings(redis_url, api_max_header_bytes=8_192)
    async with served(settings) as base:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(base))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: bridge\r\nX-Big: " + b"x" * 20_000)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), NEVER_S)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 431 ")
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/healthz", headers={"X-Fine": "x" * 4_000})).status_code == 200


async def test_past_the_connection_cap_requests_wait_for_a_free_slot(
    redis: Redis, redis_url: str
) -> None:
    settings = api_settings(redis_url, api_max_connections=5, api_header_timeout_s=1.0)
    async with served(settings) as base:
        held = [Slowloris(port_of(base)) for _ in range(5)]
        tasks = [asyncio.create_task(s.run()) for s in held]
        async with httpx.AsyncClient(base_url=base) as http:
            tries = 0
            while not all(s.cut.is_set() for s in held):
                refused = await http.get("/healthz", headers={"Connection": "close"})
                if not any(s.cut.is_set() for s in held):
                    assert refused.status_code == 503
                await asyncio.wait(tasks, timeout=0.1)
                tries += 1
                assert tries < NEVER_S * 10, "the held connections were never cut"
            await asyncio.gather(*tasks)
            assert (await http.get("/healthz")).status_code == 200


def test_the_listener_takes_its_limits_from_the_environment() -> None:
    settings = load_settings(
        {
            "API_MAX_CONNECTIONS": "77",
            "API_KEEP_ALIVE_SECONDS": "9",
            "API_MAX_HEADER_BYTES": "4096",
            "API_HEADER_TIMEOUT_SECONDS": "3",
        }
    )
    config: Any = server_config(object(), settings)
    assert config.limit_concurrency == 77
    assert config.timeout_keep_alive == 9
    assert config.h11_max_incomplete_event_size == 4_096
