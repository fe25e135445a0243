"""scim2-tester, the compliance checker built on scim2-client and scim2-models,
run against a live API (uvicorn on a loopback port, the test Redis).

It discovers the server from its own /ServiceProviderConfig, /ResourceTypes
and /Schemas, builds its models from them, then creates, reads, searches,
replaces, patches and deletes Users and Groups, validating every answer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from redis.asyncio import Redis
from scim2_client.client import BaseSyncSCIMClient
from scim2_tester import Status, check_server

from api.app import create_app
from core.settings import Settings
from tests.support.api import add_tenant
from tests.support.redis_server import free_port

# Known disagreements, each with its reason:
# - The PATCH add/replace checks compare the members they sent with the
#   members answered, field by field; the bridge adds each member's
#   read-only `display` (the user's displayName, else userName), which the
#   checker did not send.
KNOWN = {"check_add_attribute": "'members'", "check_replace_attribute": "'members'"}


class HttpxSCIMClient(BaseSyncSCIMClient):
    """scim2-client over a plain httpx.Client."""

    def __init__(self, client: httpx.Client, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = client

    def _stays_under_base_url(self, endpoint: str) -> bool:
        url, base = self.client.build_request("GET", endpoint).url, self.client.base_url
        return url.netloc == base.netloc and url.raw_path.startswith(base.raw_path)

    def _parse_json(self, response: Any) -> Any:
        return response.json()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, url, **kwargs)


@contextmanager
def serving(redis_url: str) -> Iterator[tuple[str, str]]:
    """The API under uvicorn on a free port, with one tenant: (base URL, token)."""

    async def tenant() -> str:
        redis = Redis.from_url(redis_url)
        try:
            await redis.flushall()
            return await add_tenant(redis, "checked")
        finally:
            await redis.aclose()

    token = asyncio.run(tenant())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(
                Settings(
                    redis_url=redis_url,
                    public_url=f"http://127.0.0.1:{port}",
                    # its checks come as fast as the machine sends them
                    scim_rate_limit=False,
                )
            ),
            host="127.0.0.1",
            port=port,
            ws="none",
            lifespan="on",
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during start-up"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/scim/checked/v2/", token
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_scim2_tester_finds_nothing_but_the_known_disagreements(redis_url: str) -> None:
    with serving(redis_url) as (base_url, token):
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=10) as http:
            results = check_server(HttpxSCIMClient(http))
    assert len(results) > 100
    failed = [r for r in results if r.status not in (Status.SUCCESS, Status.SKIPPED)]
    unexpected = [
        (r.title, r.status.name, str(r.reason)[:300])
        for r in failed
        if KNOWN.get(r.title or "", "\0") not in str(r.reason)
    ]
    assert unexpected == []
