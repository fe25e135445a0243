"""One tenant's SCIM requests in flight in one API process are capped
(api/inflight.py): past the cap a 429 with Retry-After, another tenant is
not held back, and every slot comes back when the answers are sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
from redis.asyncio import Redis

from api.app import create_app
from tests.support.api import SCIM_JSON, USER_SCHEMA, ScimClient, add_tenant, api_settings


async def test_a_tenant_past_its_requests_in_flight_is_answered_429(
    redis: Redis, redis_url: str
) -> None:
    tokens = {slug: await add_tenant(redis, slug) for slug in ("busy", "other")}
    app = create_app(api_settings(redis_url, scim_inflight_per_tenant=2))
    release = asyncio.Event()

    def slow_body(n: int) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"schemas": ["%s"], ' % USER_SCHEMA.encode()
            await release.wait()  # the request stays in flight until then
            yield json.dumps({"userName": f"u{n}@example.com"}).encode()[1:]

        return chunks()

    transport = httpx.ASGITransport(app=app)  # on this loop, requests at once
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="https://bridge.test") as http,
    ):
        headers = {"Authorization": f"Bearer {tokens['busy']}", "Content-Type": SCIM_JSON}
        slow = [
            asyncio.create_task(
                http.post("/scim/busy/v2/Users", content=slow_body(n), headers=headers)
            )
            for n in range(2)
        ]
        for _ in range(500):  # both admitted, their bodies half sent
            if app.state.inflight.in_flight("busy") == 2:
                break
            await asyncio.sleep(0.01)
        busy = ScimClient(http, "busy", tokens["busy"])  # type: ignore[arg-type]
        refused = await busy.get("/Users")
        assert refused.status_code == 429
        assert refused.json()["status"] == "429"
        assert refused.headers["Retry-After"] == "1"
        other = ScimClient(http, "other", tokens["other"])  # type: ignore[arg-type]
        assert (await other.get("/Users")).status_code == 200
        release.set()
        assert [(await task).status_code for task in slow] == [201, 201]
        assert app.state.inflight.in_flight("busy") == 0
        assert (await busy.get("/Users")).status_code == 200
