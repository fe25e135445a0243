"""Who reaches what on the admin API, table-driven over every admin route.

Missing, wrong, revoked or SCIM credentials are a 401; a tenant key on
another tenant's URL, or on an operator-only route, is a 403 with the same
body whether that tenant exists or not; the operator reaches every tenant.
Every refusal is a JSON `{"error", "detail"}` body.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.admin.routes_sync import SYNC_HANDLERS
from api.admin.routes_tenants import TENANT_HANDLERS
from api.app import create_app
from shadow import Tenant, TenantStore
from shadow.admin_keys import AdminKeyStore
from tests.support.api import bridge_settings

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster

OPERATOR = "operator-secret-0123456789"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PREVIEW_USER = {
    "schemas": [USER_SCHEMA],
    "userName": "ada@example.com",
    "name": {"givenName": "Ada", "familyName": "Lovelace"},
}

# (method, path under /admin/v1 with {t} for the tenant, body, operator only)
ROUTES: list[tuple[str, str, Any, bool]] = [
    ("GET", "/tenants", None, True),
    (
        "POST",
        "/tenants",
        {"slug": "fresh", "lms_url": "https://lms.test/org/fresh", "lms_api_key": "k"},
        True,
    ),
    ("GET", "/tenants/{t}", None, False),
    ("PATCH", "/tenants/{t}", {"name": "Renamed"}, False),
    ("GET", "/tenants/{t}/tokens", None, False),
    ("POST", "/tenants/{t}/tokens", {"label": "entra"}, False),
    ("DELETE", "/tenants/{t}/tokens/0123456789abcdef", None, False),
    ("GET", "/tenants/{t}/admin-keys", None, True),
    ("POST", "/tenants/{t}/admin-keys", {}, True),
    ("DELETE", "/tenants/{t}/admin-keys/0123456789abcdef", None, True),
    ("GET", "/tenants/{t}/mapping", None, False),
    ("PUT", "/tenants/{t}/mapping", {"fields": {"job_role": {"sources": ["title"]}}}, False),
    ("DELETE", "/tenants/{t}/mapping", None, False),
    ("POST", "/tenants/{t}/mapping/preview", PREVIEW_USER, False),
    ("GET", "/tenants/{t}/status", None, False),
    ("GET", "/tenants/{t}/users/failed", None, False),
    ("GET", "/tenants/{t}/users/some-user", None, False),
    ("POST", "/tenants/{t}/replay", {}, False),
    ("GET", "/tenants/{t}/breaker", None, False),
    ("PUT", "/tenants/{t}/breaker", {"share": 0.3}, False),
    ("POST", "/tenants/{t}/breaker/approve", None, False),
    ("POST", "/tenants/{t}/breaker/cancel", None, False),
    ("POST", "/tenants/{t}/reconcile", {"repair": False}, False),
    ("GET", "/tenants/{t}/reconcile", None, False),
]
ROUTE_IDS = [f"{m} {p}" for m, p, _, _ in ROUTES]


class Setup:
    def __init__(self, http: AsyncTestClient[Any], keys: dict[str, str], scim: str) -> None:
        self.http = http
        self.keys = keys  # tenant -> live admin key
        self.scim_token = scim  # a SCIM token of tenant "acme"

    async def call(
        self, method: str, path: str, body: Any, bearer: str | None, tenant: str = "acme"
    ) -> httpx.Response:
        headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
        url = "/admin/v1" + path.replace("{t}", tenant)
        return await self.http.request(method, url, json=body, headers=headers)


@asynccontextmanager
async def admin_api(
    redis: Redis, redis_url: str, admin_token: str = OPERATOR
) -> AsyncIterator[Setup]:
    store = TenantStore(redis)
    for slug in ("acme", "globex"):
        await store.create(
            Tenant(slug=slug, name=slug, lms_url=f"https://lms.test/org/{slug}", lms_api_key="k")
        )
    keys = {slug: (await AdminKeyStore(redis).issue(slug)).key for slug in ("acme", "globex")}
    scim = (await store.issue_token("acme")).token
    settings = bridge_settings(redis_url, public_url="https://bridge.test", admin_token=admin_token)
    async with AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as http:
        yield Setup(http, keys, scim)


def assert_refused(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == {401: "unauthorized", 403: "forbidden"}[status]
    assert body["detail"]
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    return body


def test_the_table_covers_every_admin_route() -> None:
    served = {
        (method, re.sub(r"\{[^}]+\}", "{}", path))
        for handler in [*TENANT_HANDLERS, *SYNC_HANDLERS]
        for path in handler.paths
        for method in handler.http_methods
    }
    table = {(method, re.sub(r"(?<=/tenants/)\{t\}", "{}", path)) for method, path, _, _ in ROUTES}
    table = {(m, re.sub(r"/(0123456789abcdef|some-user)$", "/{}", p)) for m, p in table}
    assert table == served


@pytest.mark.parametrize(("method", "path", "body", "operator_only"), ROUTES, ids=ROUTE_IDS)
async def test_every_route_refuses_missing_wrong_and_other_tenant_credentials(
    redis: Redis, redis_url: str, method: str, path: str, body: Any, operator_only: bool
) -> None:
    async with admin_api(redis, redis_url) as api:
        revoked = await AdminKeyStore(redis).issue("acme")
        await AdminKeyStore(redis).revoke("acme", revoked.key_id)
        for bearer in (
            None,
            "",
            "wrong",
            OPERATOR + "x",
            api.scim_token,  # a SCIM token never opens the admin API
            revoked.key,
            api.keys["acme"][:-1] + ("x" if api.keys["acme"][-1] != "x" else "y"),
        ):
            assert_refused(await api.call(method, path, body, bearer), 401)
        # Another tenant's key: 403, and the same answer for a tenant that does not exist.
        other = assert_refused(await api.call(method, path, body, api.keys["globex"]), 403)
        ghost = assert_refused(
            await api.call(method, path, body, api.keys["globex"], tenant="ghost"), 403
        )
        assert ghost == other


@pytest.mark.parametrize(("method", "path", "body", "operator_only"), ROUTES, ids=ROUTE_IDS)
async def test_the_operator_reaches_every_tenant_and_a_key_only_its_own(
    redis: Redis, redis_url: str, method: str, path: str, body: Any, operator_only: bool
) -> None:
    async with admin_api(redis, redis_url) as api:
        for tenant in ("acme", "globex"):
            response = await api.call(method, path, body, OPERATOR, tenant=tenant)
            assert response.status_code not in (401, 403), response.text
            assert response.status_code < 500, response.text
        own = await api.call(method, path, body, api.keys["acme"])
        if operator_only:
            assert_refused(own, 403)
        else:
            assert own.status_code not in (401, 403), own.text
            assert own.status_code < 500, own.text
        if "{t}" in path:  # the operator learns that a tenant does not exist
            missing = await api.call(method, path, body, OPERATOR, tenant="ghost")
            assert missing.status_code == 404, missing.text
            assert missing.json()["error"] == "not_found"


async def test_an_empty_operator_token_turns_the_operator_api_off(
    redis: Redis, redis_url: str
) -> None:
    async with admin_api(redis, redis_url, admin_token="") as api:
        for bearer in ("", " ", "x"):
            assert_refused(await api.call("GET", "/tenants", None, bearer), 401)
        ok = await api.call("GET", "/tenants/{t}", None, api.keys["acme"])
        assert ok.status_code == 200, ok.text


async def test_an_admin_key_never_opens_scim(redis: Redis, redis_url: str) -> None:
    async with admin_api(redis, redis_url) as api:
        headers = {"Authorization": f"Bearer {api.keys['acme']}"}
        response = await api.http.get("/scim/acme/v2/Users", headers=headers)
        assert response.status_code == 401
        scim = await api.http.get(
            "/scim/acme/v2/Users", headers={"Authorization": f"Bearer {api.scim_token}"}
        )
        assert scim.status_code == 200


async def test_a_tenant_key_may_not_move_the_lms_or_its_limits(
    redis: Redis, redis_url: str
) -> None:
    async with admin_api(redis, redis_url) as api:
        for change in (
            {"lms_url": "http://169.254.169.254/"},
            {"lms_rate": 5000},
            {"name": "Acme", "lms_api_key": "new"},
        ):
            refused = await api.call("PATCH", "/tenants/{t}", change, api.keys["acme"])
            assert_refused(refused, 403)
        assert (await TenantStore(redis).get("acme")).lms_api_key == "k"  # type: ignore[union-attr]
        allowed = await api.call("PATCH", "/tenants/{t}", {"name": "Acme"}, api.keys["acme"])
        assert allowed.status_code == 200, allowed.text
        new_key = await api.call("PATCH", "/tenants/{t}", {"lms_api_key": "new"}, OPERATOR)
        assert new_key.status_code == 200, new_key.text
        assert "lms_api_key" not in new_key.json()
        assert (await TenantStore(redis).get("acme")).lms_api_key == "new"  # type: ignore[union-attr]
