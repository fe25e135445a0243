"""Who may do what to a tenant through the admin API, and bad input refused.

The operator's decisions (suspending a tenant, its LMS settings, turning
the breaker off) stay the operator's: a tenant's admin key gets a 403 in the
documented `{"error","detail"}` shape and nothing changes. A tenant admin
may tighten its breaker within the operator's thresholds. Every view shows
the breaker's true state. Approve and cancel with nothing held are a 409.
Over-long text and deeply nested JSON are a 4xx, never a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from core.settings import Settings
from shadow import Tenant, TenantStore, keys
from shadow.admin_keys import AdminKeyStore

OPERATOR = "operator-secret-0123456789"
OP = {"Authorization": f"Bearer {OPERATOR}"}
T = "/admin/v1/tenants/acme"


class Api:
    def __init__(self, http: AsyncTestClient[Any], key: str) -> None:
        self.http = http
        self.key = {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def api(redis: Redis, redis_url: str) -> AsyncIterator[Api]:
    await TenantStore(redis).create(
        Tenant(slug="acme", name="Acme", lms_url="https://lms.test/org/acme", lms_api_key="k")
    )
    key = (await AdminKeyStore(redis).issue("acme")).key
    settings = Settings(redis_url=redis_url, public_url="https://bridge.test", admin_token=OPERATOR)
    async with AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as http:
        yield Api(http, key)


def refused(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "detail"}, body
    assert body["detail"], body
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    detail: str = body["detail"]
    return detail


async def stored(redis: Redis, key: str) -> dict[bytes, bytes]:
    found: dict[bytes, bytes] = await redis.hgetall(key)  # type: ignore[misc]
    return found


# -- who may do what -------------------------------------------------------------


async def test_a_tenant_key_cannot_lift_a_suspension_or_touch_the_lms(
    api: Api, redis: Redis
) -> None:
    suspended = await api.http.patch(T, json={"enabled": False}, headers=OP)
    assert suspended.status_code == 200, suspended.text
    before = await redis.get(keys.tenant_config("acme"))
    for change in (
        {"enabled": True},
        {"enabled": False},
        {"lms_api_key": "stolen-elsewhere"},
        {"lms_url": "https://evil.test/"},
        {"lms_rate": 1},
        {"scim_rate": 1},
    ):
        detail = refused(await api.http.patch(T, json=change, headers=api.key), 403)
        assert "only the operator" in detail
    assert await redis.get(keys.tenant_config("acme")) == before
    # A name is the tenant's own; the operator resumes it.
    renamed = await api.http.patch(T, json={"name": "Acme Learning"}, headers=api.key)
    assert renamed.status_code == 200, renamed.text
    resumed = await api.http.patch(T, json={"enabled": True}, headers=OP)
    assert resumed.json()["enabled"] is True


async def test_a_tenant_key_may_tighten_the_breaker_but_not_turn_it_off_or_loosen_it(
    api: Api, redis: Redis
) -> None:
    url = f"{T}/breaker"
    before = await stored(redis, keys.breaker_config("acme"))
    for change in (
        {"enabled": False},
        {"share": 0.5},
        {"min_learners": 100},
        {"window_s": 600},
        {"share": 0.1, "enabled": False},
    ):
        detail = refused(await api.http.put(url, json=change, headers=api.key), 403)
        assert "only tighten" in detail
    assert await stored(redis, keys.breaker_config("acme")) == before

    tighter = await api.http.put(
        url, json={"share": 0.1, "min_learners": 10, "window_s": 7200}, headers=api.key
    )
    assert tighter.status_code == 200, tighter.text
    assert tighter.json()["config"] == {
        "enabled": True,
        "share": 0.1,
        "min_learners": 10,
        "window_s": 7200,
    }
    # Back up to the operator's thresholds (the defaults here) is allowed, past them not.
    back = await api.http.put(url, json={"share": 0.2}, headers=api.key)
    assert back.status_code == 200, back.text
    refused(await api.http.put(url, json={"share": 0.21}, headers=api.key), 403)

    # The operator loosens; the tenant may then go up to the operator's value.
    loose = await api.http.put(url, json={"share": 0.5, "enabled": False}, headers=OP)
    assert loose.status_code == 200, loose.text
    assert loose.json()["mode"] == "off"
    again = await api.http.put(url, json={"share": 0.4, "enabled": True}, headers=api.key)
    assert again.status_code == 200, again.text
    refused(await api.http.put(url, json={"enabled": False}, headers=api.key), 403)


async def test_every_view_shows_the_breakers_true_state(api: Api, redis: Redis) -> None:
    async def seen() -> set[str]:
        listed = (await api.http.get("/admin/v1/tenants", headers=OP)).json()["tenants"]
        one = (await api.http.get(T, headers=api.key)).json()
        breaker = (await api.http.get(f"{T}/breaker", headers=api.key)).json()
        status = (await api.http.get(f"{T}/status", headers=api.key)).json()
        return {
            listed[0]["breaker_state"],
            one["breaker_state"],
            breaker["mode"],
            status["breaker"]["mode"],
        }

    assert await seen() == {"on"}
    # Tripped with one user held (as the worker's admit step leaves it).
    await redis.hset(keys.breaker_state("acme"), mapping={"tripped": "1", "tripped_at": "x"})  # type: ignore[misc]
    await redis.zadd(keys.breaker_held("acme"), {"0f8fad5b-d9cb-469f-a165-70867728950e": 1})
    assert await seen() == {"tripped"}
    approved = await api.http.post(f"{T}/breaker/approve", headers=api.key)
    assert approved.status_code == 200, approved.text
    assert await seen() == {"approved"}
    listed = (await api.http.get("/admin/v1/tenants", headers=OP)).json()["tenants"][0]
    assert listed["breaker_approved_until"] == approved.json()["approved_until"]
    assert (await api.http.put(f"{T}/breaker", json={"enabled": False}, headers=OP)).is_success
    assert await seen() == {"off"}


async def test_approve_and_cancel_with_nothing_held_are_a_conflict(api: Api, redis: Redis) -> None:
    for action in ("approve", "cancel"):
        for who in (OP, api.key):
            detail = refused(await api.http.post(f"{T}/breaker/{action}", headers=who), 409)
            assert "nothing to" in detail
    # Nothing was disarmed: no approval window was opened.
    view = (await api.http.get(f"{T}/breaker", headers=OP)).json()
    assert (view["approved_until"], view["mode"]) == (None, "on")
    assert not await redis.hexists(keys.breaker_state("acme"), "approved_until_ms")  # type: ignore[misc]


# -- bad input ---------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/mapping/preview", '{"userName": "a@example.com", "x": %s}'),
        ("PUT", "/mapping", '{"fields": {"job_role": {"sources": %s}}}'),
        ("PUT", "/mapping", "%s"),
        ("PUT", "/breaker", '{"share": %s}'),
        ("PATCH", "", '{"name": %s}'),
        ("POST", "/tokens", '{"label": %s}'),
        ("POST", "/replay", '{"user_id": %s}'),
        ("POST", "/erasures", '{"user": %s}'),
        ("PUT", "/webhook", '{"url": %s}'),
    ],
)
async def test_json_nested_a_thousand_deep_is_a_400_on_every_admin_body(
    api: Api, redis: Redis, method: str, path: str, body: str
) -> None:
    before = sorted(await redis.keys("*"))
    for depth in (65, 1000, 100_000):
        content = (body % nested(depth)).encode()
        response = await api.http.request(
            method, T + path, content=content, headers={**OP, "Content-Type": "application/json"}
        )
        assert "nested deeper than 64" in refused(response, 400)
    assert sorted(await redis.keys("*")) == before


async def test_a_body_over_the_size_limit_is_a_413_in_the_admin_shape(api: Api) -> None:
    big = json.dumps({"name": "x" * 2_000_000})
    response = await api.http.patch(
        T, content=big, headers={**OP, "Content-Type": "application/json"}
    )
    refused(response, 413)


@pytest.mark.parametrize(
    ("method", "path", "field", "most"),
    [
        ("PATCH", "", "name", 200),
        ("PATCH", "", "lms_url", 2000),
        ("PATCH", "", "lms_api_key", 1000),
        ("POST", "/tokens", "label", 100),
        ("POST", "/admin-keys", "label", 100),
        ("PUT", "/webhook", "url", 2000),
    ],
)
async def test_free_text_fields_have_bounded_lengths(
    api: Api, method: str, path: str, field: str, most: int
) -> None:
    def value(length: int) -> str:
        prefix = "https://h.test/" if "url" in field else ""
        return prefix + "a" * (length - len(prefix))

    over = await api.http.request(method, T + path, json={field: value(most + 1)}, headers=OP)
    assert field in refused(over, 400)
    at = await api.http.request(method, T + path, json={field: value(most)}, headers=OP)
    assert at.status_code < 300, at.text


async def test_a_tenant_name_of_a_hundred_thousand_characters_is_refused_at_creation(
    api: Api, redis: Redis
) -> None:
    body = {
        "slug": "big",
        "lms_url": "https://lms.test/",
        "lms_api_key": "k",
        "name": "n" * 100_000,
    }
    refused(await api.http.post("/admin/v1/tenants", json=body, headers=OP), 400)
    assert await TenantStore(redis).get("big") is None


async def test_mapping_values_have_bounded_lengths(api: Api) -> None:
    for overrides in (
        {"fields": {"job_role": {"sources": ["title"] * 21}}},
        {"fields": {"job_role": {"sources": ["a" * 201]}}},
        {"team_from_groups": {"patterns": ["p" * 201]}},
        {"team_from_groups": {"patterns": ["p"] * 101}},
    ):
        response = await api.http.put(f"{T}/mapping", json=overrides, headers=OP)
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "invalid_mapping"


# -- unknown URLs and methods --------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/admin/v1/nope", 404),
        ("GET", "/admin/v1", 404),
        ("PUT", "/admin/v1/tenants/acme", 405),
        ("POST", "/admin/v1/tenants/acme/status", 405),
        ("GET", "/admin/v1/tenants/acme/nope/deeper", 404),
    ],
)
async def test_unknown_admin_api_urls_and_methods_answer_the_admin_shape(
    api: Api, method: str, path: str, status: int
) -> None:
    for who in (OP, api.key, {}):
        response = await api.http.request(method, path, headers=who)
        assert response.headers["content-type"].startswith("application/json")
        assert set(response.json()) == {"error", "detail"}, response.text
        refused(response, status)
        assert response.headers["x-frame-options"] == "DENY"
        if status == 405:
            assert "GET" in response.headers["allow"] or "DELETE" in response.headers["allow"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/admin/nope", 404), ("DELETE", "/admin/login", 405), ("PUT", "/admin", 405)],
)
async def test_unknown_admin_page_urls_answer_an_admin_page(
    api: Api, method: str, path: str, status: int
) -> None:
    response = await api.http.request(method, path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text
    assert "urn:ietf:params:scim" not in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


async def test_scim_urls_still_answer_scim_errors(api: Api) -> None:
    response = await api.http.get("/scim/acme/v2/Nope")
    assert response.headers["content-type"].startswith("application/scim+json")


# -- admin keys expire ---------------------------------------------------------------


async def test_an_admin_key_may_expire(api: Api, redis: Redis) -> None:
    issued = await api.http.post(
        f"{T}/admin-keys", json={"label": "contractor", "expires_in_days": 7}, headers=OP
    )
    assert issued.status_code == 201, issued.text
    assert issued.json()["expires_at"]
    key_id = issued.json()["key_id"]
    listed = (await api.http.get(f"{T}/admin-keys", headers=OP)).json()["keys"]
    assert {k["key_id"]: k["expires_at"] for k in listed}[key_id] == issued.json()["expires_at"]
    holder = {"Authorization": f"Bearer {issued.json()['key']}"}
    assert (await api.http.get(T, headers=holder)).status_code == 200
    # The expiry passes (set in the record, as time would).
    raw = json.loads(await redis.hget(keys.admin_keys("acme"), key_id))  # type: ignore[misc]
    raw["expires_at"] = "2000-01-01T00:00:00.000Z"
    await redis.hset(keys.admin_keys("acme"), key_id, json.dumps(raw))  # type: ignore[misc]
    refused(await api.http.get(T, headers=holder), 401)
    never = await api.http.post(f"{T}/admin-keys", json={}, headers=OP)
    assert never.json()["expires_at"] is None
    for days in (0, 3651):
        wrong = await api.http.post(f"{T}/admin-keys", json={"expires_in_days": days}, headers=OP)
        refused(wrong, 400)


async def test_a_tenant_key_sees_its_own_queue_not_the_shared_one(api: Api) -> None:
    own = (await api.http.get(f"{T}/status", headers=api.key)).json()
    assert "queue_depth" in own
    assert "arq_queue_depth" not in own  # every tenant's jobs: the operator's business
    operator = (await api.http.get(f"{T}/status", headers=OP)).json()
    assert {"queue_depth", "arq_queue_depth"} <= set(operator)


async def test_a_tenant_key_cannot_delete_its_tenant(api: Api, redis: Redis) -> None:
    detail = refused(await api.http.delete(T, headers=api.key), 403)
    assert "operator" in detail
    assert await TenantStore(redis).get("acme") is not None
