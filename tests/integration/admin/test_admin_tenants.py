"""Tenants, SCIM tokens, admin keys and mappings through the admin API.

What the LMS's own settings page needs: generate a SCIM token and copy the
SCIM URL with a tenant admin key; the operator manages tenants and keys.
The LMS API key is write-only: it never appears in an answer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from shadow import TenantStore
from tests.support.api import OP

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def create_acme(http: AsyncTestClient[Any]) -> dict[str, Any]:
    response = await http.post(
        "/admin/v1/tenants",
        json={
            "slug": "acme",
            "name": "Acme Ltd",
            "lms_url": "https://lms.example.com/org/acme",
            "lms_api_key": "lms-secret-key",
            "lms_rate": 10,
            "lms_burst": 20,
        },
        headers=OP,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def tenant_key(http: AsyncTestClient[Any], slug: str = "acme") -> dict[str, str]:
    response = await http.post(f"/admin/v1/tenants/{slug}/admin-keys", json={}, headers=OP)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


async def test_create_read_update_list_never_show_the_lms_key(
    http: AsyncTestClient[Any], redis: Redis
) -> None:
    created = await create_acme(http)
    assert created == {
        "tenant": "acme",
        "name": "Acme Ltd",
        "scim_url": "https://bridge.test/scim/acme/v2",
        "lms_url": "https://lms.example.com/org/acme",
        "lms_rate": 10.0,
        "lms_burst": 20,
        "enabled": True,
        "created_at": created["created_at"],
        "scim_rate": 100.0,
        "scim_burst": 200,
    }
    again = await http.post(
        "/admin/v1/tenants",
        json={"slug": "acme", "lms_url": "https://x.test", "lms_api_key": "k"},
        headers=OP,
    )
    assert again.status_code == 409
    bad = await http.post(
        "/admin/v1/tenants",
        json={"slug": "acme2", "lms_url": "https://x", "lms_api_key": "k", "lms_rate": 0},
        headers=OP,
    )
    assert bad.status_code == 422
    assert "lms_rate" in bad.json()["detail"]
    for field, value in (("slug", "Bad Slug"), ("lms_url", "ftp://x")):
        body = {"slug": "acme2", "lms_url": "https://x", "lms_api_key": "k", field: value}
        shape = await http.post("/admin/v1/tenants", json=body, headers=OP)
        assert shape.status_code == 400  # the documented pattern (OpenAPI) does not match
        assert field in shape.json()["detail"]
    unknown = await http.post(
        "/admin/v1/tenants", json={"slug": "x", "lms_url": "https://x", "colour": 1}, headers=OP
    )
    assert unknown.status_code == 400

    updated = await http.patch(
        "/admin/v1/tenants/acme",
        json={"name": "Acme", "lms_api_key": "rotated", "lms_rate": 15, "enabled": False},
        headers=OP,
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["name"], updated.json()["lms_rate"]) == ("Acme", 15.0)
    stored = await TenantStore(redis).get("acme")
    assert stored is not None
    assert (stored.lms_api_key, stored.enabled) == ("rotated", False)

    listing = await http.get("/admin/v1/tenants", headers=OP)
    [row] = listing.json()["tenants"]
    assert row["tenant"] == "acme"
    assert (row["pending"], row["synced"], row["failed"], row["held"]) == (0, 0, 0, 0)
    assert row["oldest_pending_seconds"] == 0.0
    assert row["breaker_tripped"] is False
    for response in (listing, updated, await http.get("/admin/v1/tenants/acme", headers=OP)):
        assert "lms-secret-key" not in response.text
        assert "rotated" not in response.text
        assert "lms_api_key" not in response.text


async def test_a_tenant_admin_issues_lists_and_revokes_scim_tokens(
    http: AsyncTestClient[Any],
) -> None:
    await create_acme(http)
    key = await tenant_key(http)

    issued = await http.post("/admin/v1/tenants/acme/tokens", json={"label": "entra"}, headers=key)
    assert issued.status_code == 201, issued.text
    token = issued.json()
    assert token["scim_url"] == "https://bridge.test/scim/acme/v2"
    scim = {"Authorization": f"Bearer {token['token']}"}
    assert (await http.get("/scim/acme/v2/Users", headers=scim)).status_code == 200

    listed = (await http.get("/admin/v1/tenants/acme/tokens", headers=key)).json()
    [row] = listed["tokens"]
    assert row["token_id"] == token["token_id"]
    assert row["label"] == "entra"
    assert row["created_at"]
    assert row["last_used_at"]  # Test Connection was just made with it
    assert token["token"] not in str(listed)

    revoked = await http.delete(f"/admin/v1/tenants/acme/tokens/{token['token_id']}", headers=key)
    assert revoked.status_code == 200
    assert revoked.json()["revoked"] is True
    assert (await http.get("/scim/acme/v2/Users", headers=scim)).status_code == 401
    gone = await http.delete(f"/admin/v1/tenants/acme/tokens/{token['token_id']}", headers=key)
    assert gone.status_code == 404
    assert (await http.get("/admin/v1/tenants/acme/tokens", headers=key)).json()["tokens"] == []


async def test_the_operator_issues_lists_and_revokes_admin_keys(
    http: AsyncTestClient[Any],
) -> None:
    await create_acme(http)
    issued = await http.post(
        "/admin/v1/tenants/acme/admin-keys", json={"label": "lms settings page"}, headers=OP
    )
    assert issued.status_code == 201
    key = issued.json()
    headers = {"Authorization": f"Bearer {key['key']}"}
    assert (await http.get("/admin/v1/tenants/acme", headers=headers)).status_code == 200

    [row] = (await http.get("/admin/v1/tenants/acme/admin-keys", headers=OP)).json()["keys"]
    assert (row["key_id"], row["label"]) == (key["key_id"], "lms settings page")
    assert row["last_used_at"]
    assert key["key"] not in str(row)

    revoked = await http.delete(f"/admin/v1/tenants/acme/admin-keys/{key['key_id']}", headers=OP)
    assert revoked.json()["revoked"] is True
    assert (await http.get("/admin/v1/tenants/acme", headers=headers)).status_code == 401


async def test_mapping_set_read_preview_and_reset(http: AsyncTestClient[Any]) -> None:
    await create_acme(http)
    key = await tenant_key(http)
    user = {
        "schemas": [USER_SCHEMA],
        "id": "u-1",
        "userName": "ada@example.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "title": "Engineer",
        ENTERPRISE: {"department": "R&D", "costCenter": "CC-42"},
    }
    default = await http.post("/admin/v1/tenants/acme/mapping/preview", json=user, headers=key)
    assert default.status_code == 200, default.text
    assert default.json()["learner"]["job_role"] == "Engineer"
    assert default.json()["learner"]["external_ref"] == "u-1"

    overrides = {
        "fields": {
            "job_role": {"sources": [f"{ENTERPRISE}:costCenter"]},
            "company": {"constant": "Acme"},
        }
    }
    saved = await http.put("/admin/v1/tenants/acme/mapping", json=overrides, headers=key)
    assert saved.status_code == 200, saved.text
    read = (await http.get("/admin/v1/tenants/acme/mapping", headers=key)).json()
    assert read["overrides"]["fields"]["company"]["constant"] == "Acme"
    assert {r["field"] for r in read["rules"]} >= {"email", "job_role", "company"}

    preview = (
        await http.post("/admin/v1/tenants/acme/mapping/preview", json=user, headers=key)
    ).json()
    assert preview["ok"] is True
    assert (preview["learner"]["job_role"], preview["learner"]["company"]) == ("CC-42", "Acme")

    nameless = {k: v for k, v in user.items() if k != "name"}
    failing = await http.post("/admin/v1/tenants/acme/mapping/preview", json=nameless, headers=key)
    assert failing.status_code == 200
    assert failing.json()["ok"] is False
    assert {p["kind"] for p in failing.json()["problems"]} == {"missing_required"}

    not_scim = await http.post("/admin/v1/tenants/acme/mapping/preview", json=[1], headers=key)
    assert not_scim.status_code == 400
    assert set(not_scim.json()) == {"error", "detail"}

    wrong = await http.put(
        "/admin/v1/tenants/acme/mapping", json={"fields": {"shoe_size": {}}}, headers=key
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"] == "invalid_mapping"
    assert [p["kind"] for p in wrong.json()["problems"]] == ["unknown_field"]
    # The refused overrides left the saved ones in place.
    kept = (await http.get("/admin/v1/tenants/acme/mapping", headers=key)).json()
    assert kept["overrides"] == read["overrides"]

    reset = await http.delete("/admin/v1/tenants/acme/mapping", headers=key)
    assert reset.json()["overrides"] is None
    assert (await http.get("/admin/v1/tenants/acme/mapping", headers=key)).json()[
        "overrides"
    ] is None


async def test_a_scim_token_may_expire(http: AsyncTestClient[Any]) -> None:
    """A token issued with an expiry carries it in its listing and is refused
    from then on; a nonsense expiry is a 400 that issues nothing."""
    await create_acme(http)
    key = await tenant_key(http)
    url = "/admin/v1/tenants/acme/tokens"
    issued = await http.post(url, json={"label": "rotating", "expires_in_days": 30}, headers=key)
    assert issued.status_code == 201, issued.text
    expires_at = issued.json()["expires_at"]
    in_30_days = datetime.now(UTC) + timedelta(days=30)
    assert abs((datetime.fromisoformat(expires_at) - in_30_days).total_seconds()) < 60
    [row] = (await http.get(url, headers=key)).json()["tokens"]
    assert row["expires_at"] == expires_at
    scim = {"Authorization": f"Bearer {issued.json()['token']}"}
    assert (await http.get("/scim/acme/v2/Users", headers=scim)).status_code == 200

    for bad in (0, -1, 4000, "30"):
        refused = await http.post(url, json={"expires_in_days": bad}, headers=key)
        assert refused.status_code == 400, (bad, refused.text)
    assert len((await http.get(url, headers=key)).json()["tokens"]) == 1
