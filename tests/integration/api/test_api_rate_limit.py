"""Each tenant's SCIM request rate, shared by every API process through Redis
(shadow/limits.py): over it a 429 with a SCIM error and Retry-After, counted
per tenant in /metrics; another tenant is not held back; the operator sets
it through the admin API, a tenant's admin key cannot."""

from __future__ import annotations

from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from shadow import Tenant, TenantStore
from tests.support.api import ScimClient, add_tenant, api_settings

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
OPERATOR = "operator-token-0123456789-abcdefghijklmnop"


def test_the_default_is_well_above_entras_rate() -> None:
    tenant = Tenant(slug="acme", name="A", lms_url="u", lms_api_key="k")
    assert tenant.scim_rate >= 4 * 25
    assert tenant.scim_burst >= 2 * tenant.scim_rate


async def test_a_tenant_over_its_rate_is_answered_429_and_others_are_not(
    redis: Redis, redis_url: str
) -> None:
    tokens = {slug: await add_tenant(redis, slug) for slug in ("noisy", "quiet")}
    settings = api_settings(redis_url, scim_rate_limit=True, admin_token=OPERATOR)
    # Two API processes' worth of apps share the tenant's bucket in Redis.
    async with (
        AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as one,
        AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as two,
    ):
        operator = {"Authorization": f"Bearer {OPERATOR}"}
        changed = await one.patch(
            "/admin/v1/tenants/noisy", json={"scim_rate": 0.5, "scim_burst": 4}, headers=operator
        )
        assert changed.status_code == 200, changed.text
        assert (changed.json()["scim_rate"], changed.json()["scim_burst"]) == (0.5, 4)
        noisy = [ScimClient(http, "noisy", tokens["noisy"]) for http in (one, two)]
        answers = [await noisy[n % 2].get("/Users") for n in range(8)]
        assert [a.status_code for a in answers] == [200] * 4 + [429] * 4
        refused = answers[-1]
        assert refused.json()["schemas"] == [ERROR_SCHEMA]
        assert refused.json()["status"] == "429"
        assert 1 <= int(refused.headers["Retry-After"]) <= 2
        quiet = ScimClient(one, "quiet", tokens["quiet"])
        assert all([(await quiet.get("/Users")).status_code == 200 for _ in range(8)])
        scrape = (await one.get("/metrics", headers=operator)).text
        assert 'scim_bridge_scim_throttled_total{tenant="noisy"} 2.0' in scrape
        assert 'tenant="quiet"' not in scrape.split("scim_bridge_scim_throttled_total", 1)[1][:200]


async def test_only_the_operator_sets_a_tenants_scim_rate(redis: Redis, redis_url: str) -> None:
    await add_tenant(redis, "acme")
    settings = api_settings(redis_url, admin_token=OPERATOR)
    async with AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as http:
        operator = {"Authorization": f"Bearer {OPERATOR}"}
        key = (await http.post("/admin/v1/tenants/acme/admin-keys", headers=operator)).json()
        as_tenant = {"Authorization": f"Bearer {key['key']}"}
        denied = await http.patch(
            "/admin/v1/tenants/acme", json={"scim_rate": 1e5}, headers=as_tenant
        )
        assert denied.status_code == 403
        bad = await http.patch("/admin/v1/tenants/acme", json={"scim_burst": 0}, headers=operator)
        assert bad.status_code == 422
    stored = await TenantStore(redis).get("acme")
    assert stored is not None
    assert stored.scim_rate == 100.0
