"""An API under test: the real app (real lifespan) on the test Redis, with
one tenant and a token, driven through Litestar's AsyncTestClient."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from core.settings import Settings
from shadow import Tenant, TenantStore

SCIM_JSON = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
#: The operator token of the admin API tests, and its header.
OPERATOR = "operator-secret-0123456789"
OP = {"Authorization": f"Bearer {OPERATOR}"}


class ScimClient:
    """A tenant's view of the SCIM API: base path and bearer token built in."""

    def __init__(self, http: AsyncTestClient[Any], tenant: str, token: str) -> None:
        self.http = http
        self.tenant = tenant
        self.token = token
        self.base = f"/scim/{tenant}/v2"

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": SCIM_JSON, **(extra or {})}

    async def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        return await self.http.request(
            method, self.base + path, json=json, headers=self._headers(headers), params=params
        )

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, json=json, **kw)

    async def put(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.request("PUT", path, json=json, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.request("PATCH", path, json=json, **kw)

    async def delete(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kw)

    async def create_user(self, user_name: str, **attrs: Any) -> dict[str, Any]:
        body = {
            "schemas": [USER_SCHEMA],
            "userName": user_name,
            "active": True,
            "name": {"givenName": "Test", "familyName": "User"},
            **attrs,
        }
        response = await self.post("/Users", body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result


#: The sealing key of every process and CLI run the tests and benchmarks
#: start (core/sealing.py), unless the environment names one.
SECRET_KEY = os.environ.get("BRIDGE_SECRET_KEY") or "test-sealing-key-0123456789-abcdefghij"

#: What the tests' Prometheus sends (api_settings sets it as the metrics token).
METRICS_TOKEN = "metrics-token-for-tests-0123456789-abcdef"
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}


#: The plain Redis that holds the arq queue (QUEUE_REDIS_URL) beside each
#: Redis Cluster holding a shadow store: filled in by the `redis_cluster`
#: fixture (tests/conftest.py), read by `bridge_settings`.
CLUSTER_QUEUES: dict[str, str] = {}


def bridge_settings(redis_url: str, **values: Any) -> Settings:
    """`Settings(redis_url=..., **values)`, with the queue on its own Redis
    when `redis_url` is a test Redis Cluster (the bridge refuses a cluster
    without one), so a test runs unchanged on either backend."""
    queue = CLUSTER_QUEUES.get(redis_url)
    if queue is not None:
        values.setdefault("queue_redis_url", queue)
    return Settings(redis_url=redis_url, **values)


def api_settings(redis_url: str, **overrides: Any) -> Settings:
    """Test settings; failed-auth throttling is out of the way unless a test asks."""
    values: dict[str, Any] = {
        "auth_failures_per_minute": 10_000,
        "scim_rate_limit": False,  # tenants' request rates: on where a test asks
        "metrics_token": METRICS_TOKEN,
        "secret_keys": (SECRET_KEY,),
        **overrides,
    }
    return bridge_settings(redis_url, public_url="https://bridge.test", **values)


async def add_tenant(redis: Redis, slug: str) -> str:
    store = TenantStore(redis)
    await store.create(
        Tenant(
            slug=slug,
            name=slug.title(),
            lms_url=f"http://lms.test/org/{slug}",
            lms_api_key=f"key-{slug}",
        )
    )
    return (await store.issue_token(slug)).token


@asynccontextmanager
async def running_api(
    redis: Redis, redis_url: str, *tenants: str, **settings: Any
) -> AsyncIterator[dict[str, ScimClient]]:
    """The app with its real lifespan, and a ScimClient per tenant."""
    tokens = {slug: await add_tenant(redis, slug) for slug in tenants}
    app = create_app(api_settings(redis_url, **settings))
    async with AsyncTestClient(app=app, base_url="https://bridge.test") as http:
        yield {slug: ScimClient(http, slug, token) for slug, token in tokens.items()}


# Operational counters that a refused request may bump by design: failed
# authentications per client address (api/auth.py). No tenant data.
_OPERATIONAL = (b"scim-bridge:authfail:",)


async def keyspace(redis: Redis, pattern: str = "*") -> dict[bytes, object]:
    """Keys matching `pattern` with their type and value: equal snapshots mean
    nothing was written.

    Values are read by type rather than DUMPed: a hash in hashtable encoding
    dumps its fields in an order that incremental rehashing may change.
    """
    snapshot: dict[bytes, object] = {}
    for key in sorted(await redis.keys(pattern)):
        if key.startswith(_OPERATIONAL):
            continue
        kind = (await redis.type(key)).decode()
        value: object
        if kind == "string":
            value = await redis.get(key)
        elif kind == "hash":
            value = sorted((await redis.hgetall(key)).items())  # type: ignore[misc]
        elif kind == "set":
            value = sorted(await redis.smembers(key))  # type: ignore[misc]
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)  # type: ignore[misc]
        else:
            value = await redis.dump(key)
        snapshot[key] = (kind, value)
    return snapshot
