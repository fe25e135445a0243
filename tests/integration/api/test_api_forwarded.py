"""`X-Forwarded-Proto/Host` from trusted proxies name SCIM URLs and
`meta.location` when BRIDGE_PUBLIC_URL is unset (api/forwarded.py); from
anyone else, or with BRIDGE_PUBLIC_URL set, they change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from api.forwarded import forwarded_base
from core.settings import ConfigError, Settings, load_settings, parse_proxies
from shadow import Tenant, TenantStore

USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "userName": "ann@example.com",
    "name": {"givenName": "Ann", "familyName": "Example"},
}
PROXY = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "bridge.example.com"}
GUESSED = "http://127.0.0.1:8000"


def test_only_a_trusted_peer_with_sane_headers_names_the_base() -> None:
    proxies = parse_proxies("10.0.0.0/8, ::1")
    sane = {"x-forwarded-proto": "https", "x-forwarded-host": "bridge.example.com"}
    assert forwarded_base("10.1.2.3", sane, proxies) == "https://bridge.example.com"
    assert forwarded_base("::1", sane, proxies) == "https://bridge.example.com"
    assert forwarded_base("192.0.2.7", sane, proxies) is None  # not a proxy of ours
    assert forwarded_base("10.1.2.3", {"host": "x"}, proxies) is None  # no forwarded headers
    chain = {"x-forwarded-proto": "https, http", "x-forwarded-host": "a.example, b.internal"}
    assert forwarded_base("10.1.2.3", chain, proxies) == "https://a.example"
    only_proto = {"x-forwarded-proto": "https", "host": "bridge.example.com:8443"}
    assert forwarded_base("10.1.2.3", only_proto, proxies) == "https://bridge.example.com:8443"
    for bad in (
        {**sane, "x-forwarded-proto": "javascript"},
        {**sane, "x-forwarded-host": "evil.example/path"},
        {**sane, "x-forwarded-host": "user@evil.example"},
        {**sane, "x-forwarded-host": ""},
    ):
        assert forwarded_base("10.1.2.3", {**bad, "host": ""}, proxies) is None, bad


def test_a_bad_proxy_list_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match=r"BRIDGE_TRUSTED_PROXIES: 'proxy\.internal'"):
        load_settings({"BRIDGE_TRUSTED_PROXIES": "10.0.0.1, proxy.internal"})
    assert load_settings({"BRIDGE_TRUSTED_PROXIES": "10.0.0.1,fd00::/8"}).trusted_proxies


@pytest.fixture
async def token(redis: Redis) -> str:
    store = TenantStore(redis)
    await store.create(
        Tenant(slug="acme", name="Acme", lms_url="https://lms.test", lms_api_key="k")
    )
    return (await store.issue_token("acme")).token


@pytest.mark.parametrize(
    ("public_url_set", "proxies", "expected"),
    [
        (False, "127.0.0.1", "https://bridge.example.com"),  # a trusted proxy names it
        (False, "10.9.9.9", GUESSED),  # another peer's headers are ignored
        (False, "", GUESSED),  # no proxies configured
        (True, "127.0.0.1", GUESSED),  # BRIDGE_PUBLIC_URL wins
    ],
)
async def test_meta_location_and_scim_urls_follow_a_trusted_proxy(
    redis_url: str, token: str, public_url_set: bool, proxies: str, expected: str
) -> None:
    settings = Settings(
        redis_url=redis_url,
        public_url=GUESSED,
        public_url_set=public_url_set,
        trusted_proxies=proxies,
    )
    app = create_app(settings)
    inner = app.asgi_handler

    async def from_loopback(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": ("127.0.0.1", 50000)}
        await inner(scope, receive, send)

    app.asgi_handler = from_loopback
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    async with AsyncTestClient(app=app) as client:
        created = await client.post("/scim/acme/v2/Users", json=USER, headers={**headers, **PROXY})
        assert created.status_code == 201, created.text
        location = created.json()["meta"]["location"]
        assert location == f"{expected}/scim/acme/v2/Users/{created.json()['id']}"
        assert created.headers["location"] == location
        spc = await client.get("/scim/acme/v2/ResourceTypes/User", headers={**headers, **PROXY})
        assert spc.json()["meta"]["location"].startswith(f"{expected}/scim/acme/v2/")
        # Without the headers, the configured URL.
        plain = await client.get(f"/scim/acme/v2/Users/{created.json()['id']}", headers=headers)
        assert plain.json()["meta"]["location"].startswith(f"{GUESSED}/scim/acme/v2/")
