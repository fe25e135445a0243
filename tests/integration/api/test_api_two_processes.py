"""Two API processes on one Redis: each keeps recent documents for PATCH,
and neither may ever lose the other's change or misjudge a version."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from tests.support.api import PATCH_OP, ScimClient, add_tenant, api_settings


def _replace(path: str, value: Any) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": path, "value": value}]}


async def test_stale_recent_copies_never_lose_or_hide_a_change(
    redis: Redis, redis_url: str
) -> None:
    token = await add_tenant(redis, "acme")
    settings = api_settings(redis_url)
    async with (
        AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as http_a,
        AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as http_b,
    ):
        a, b = ScimClient(http_a, "acme", token), ScimClient(http_b, "acme", token)
        uid = (await a.create_user("ada@example.com"))["id"]  # A remembers version 1

        assert (await b.patch(f"/Users/{uid}", _replace("title", "from B"))).status_code == 200
        # A's copy is stale: its write must land on top of B's, not replace it.
        merged = (await a.patch(f"/Users/{uid}", _replace("nickName", "from A"))).json()
        assert (merged["title"], merged["nickName"]) == ("from B", "from A")

        assert (await b.patch(f"/Users/{uid}", _replace("title", "Y"))).status_code == 200
        # To A's stale copy this looks like a no-op; it is not one.
        changed = (await a.patch(f"/Users/{uid}", _replace("title", "from B"))).json()
        assert changed["title"] == "from B"
        assert (await b.get(f"/Users/{uid}")).json()["title"] == "from B"

        current = (await b.patch(f"/Users/{uid}", _replace("title", "Z"))).json()
        version = current["meta"]["version"]
        # The client holds the current version; A's stale copy must not make it a 412.
        pinned = await a.patch(
            f"/Users/{uid}", _replace("title", "W"), headers={"If-Match": version}
        )
        assert pinned.status_code == 200, pinned.text
        # And a really stale If-Match is still refused.
        stale = await a.patch(
            f"/Users/{uid}", _replace("title", "V"), headers={"If-Match": version}
        )
        assert stale.status_code == 412
        assert (await b.get(f"/Users/{uid}")).json()["title"] == "W"
