"""The admin page without a browser: login, sessions, CSRF, tenant walls.

The real app (real lifespan) on the test Redis through Litestar's
AsyncTestClient: a bad key does not log in, every page needs a session,
every form needs the session's CSRF token, a tenant key reaches only its
tenant, and the session cookie is HttpOnly and SameSite=Strict (Secure
when the public URL is https).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from api.web.config import load_web_settings
from core.settings import Settings
from shadow import Tenant, TenantStore, keys
from shadow.admin_keys import AdminKeyStore

OPERATOR = "operator-secret-0123456789"
LMS_KEY = "lms-api-key-never-shown-42"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
Client = AsyncTestClient[Any]


async def add_tenant(redis: Redis, slug: str, name: str | None = None) -> None:
    await TenantStore(redis).create(
        Tenant(
            slug=slug,
            name=name or slug.title(),
            lms_url=f"https://lms.test/org/{slug}",
            lms_api_key=LMS_KEY,
        )
    )


@asynccontextmanager
async def client(
    redis_url: str, public_url: str = "https://bridge.test", **settings: Any
) -> AsyncIterator[Client]:
    values: dict[str, Any] = {"admin_token": OPERATOR, **settings}
    app = create_app(Settings(redis_url=redis_url, public_url=public_url, **values))
    async with AsyncTestClient(app=app, base_url=public_url) as http:
        http.follow_redirects = False  # a test looks at every redirect
        yield http


@pytest.fixture
async def http(redis: Redis, redis_url: str) -> AsyncIterator[Client]:
    await add_tenant(redis, "acme", "Acme Ltd")
    await add_tenant(redis, "globex")
    async with client(redis_url) as http:
        yield http


@pytest.fixture
async def acme_key(redis: Redis, http: Client) -> str:
    return (await AdminKeyStore(redis).issue("acme")).key


def csrf_of(response: httpx.Response) -> str:
    found = CSRF_RE.search(response.text)
    assert found, f"no CSRF field in {response.request.url}"
    return found[1]


async def login(http: Client, secret: str) -> httpx.Response:
    form = await http.get("/admin/login")
    assert form.status_code == 200
    return await http.post("/admin/login", data={"csrf_token": csrf_of(form), "secret": secret})


async def logged_in(http: Client, secret: str) -> str:
    """Log in; the session's CSRF token (from the page it lands on)."""
    response = await login(http, secret)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/admin"
    home = await http.get("/admin")
    assert home.status_code == 200
    return csrf_of(home)


def goes_to_login(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"] == "/admin/login"


async def test_login_refuses_a_bad_key(redis: Redis, http: Client) -> None:
    scim_token = (await TenantStore(redis).issue_token("acme")).token
    for secret in ("wrong", OPERATOR + "x", scim_token, f"scimba_acme.{'0' * 16}_nope"):
        response = await login(http, secret)
        assert response.status_code == 401
        assert "not a valid operator token or tenant admin key" in response.text
        assert secret not in response.text  # never echoed back
        assert goes_to_login(await http.get("/admin"))
    assert (await login(http, OPERATOR)).status_code == 303


async def test_an_empty_operator_token_turns_operator_login_off(
    redis: Redis, redis_url: str
) -> None:
    async with client(redis_url, admin_token="") as http:
        for secret in ("", " ", "\x00disabled"):
            response = await login(http, secret)
            assert response.status_code in (400, 401), response.text
            assert goes_to_login(await http.get("/admin"))


async def test_failed_logins_are_throttled(redis: Redis, redis_url: str) -> None:
    async with client(redis_url, auth_failures_per_minute=2) as http:
        statuses = [(await login(http, "wrong")).status_code for _ in range(4)]
        assert statuses == [401, 401, 429, 429]
        assert (await login(http, OPERATOR)).status_code == 303  # a valid one always passes


@pytest.mark.parametrize(
    "path",
    [
        "/admin",
        "/admin/",
        "/admin/tenants/acme",
        "/admin/tenants/acme/preview",
        f"/admin/tenants/acme/users/{uuid.uuid4()}",
    ],
)
async def test_pages_need_a_session(http: Client, path: str) -> None:
    assert goes_to_login(await http.get(path))
    http.cookies.set("scim_bridge_admin", "eyJraW5kIjoib3BlcmF0b3IifQ.forged", path="/admin")
    assert goes_to_login(await http.get(path))


async def test_forms_need_a_session(redis: Redis, http: Client) -> None:
    csrf = csrf_of(await http.get("/admin/login"))  # an anonymous session: not enough
    for path in (
        "/admin/tenants/acme/tokens",
        "/admin/tenants/acme/replay",
        "/admin/tenants/acme/breaker/approve",
        "/admin/tenants/acme/breaker/cancel",
        "/admin/tenants/acme/preview",
    ):
        assert goes_to_login(await http.post(path, data={"csrf_token": csrf}))
    assert await TenantStore(redis).list_tokens("acme") == []


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
async def test_forms_refuse_a_missing_or_wrong_csrf_token(
    redis: Redis, http: Client, token: str | None
) -> None:
    await logged_in(http, OPERATOR)
    data = {} if token is None else {"csrf_token": token}
    for path in (
        "/admin/tenants/acme/tokens",
        "/admin/tenants/acme/replay",
        "/admin/tenants/acme/breaker/approve",
        "/admin/tenants/acme/breaker/cancel",
        "/admin/tenants/acme/preview",
        "/admin/logout",
    ):
        response = await http.post(path, data={**data, "label": "x", "user": "{}"})
        assert response.status_code == 403, path
        assert "reload it and try again" in response.text
    assert await TenantStore(redis).list_tokens("acme") == []
    assert (await http.get("/admin")).status_code == 200  # still logged in


async def test_login_refuses_a_missing_or_wrong_csrf_token(http: Client) -> None:
    assert (await http.post("/admin/login", data={"secret": OPERATOR})).status_code == 403
    await http.get("/admin/login")
    for data in ({"secret": OPERATOR}, {"secret": OPERATOR, "csrf_token": "forged"}):
        assert (await http.post("/admin/login", data=data)).status_code == 403
    assert goes_to_login(await http.get("/admin"))


async def test_a_tenant_key_cannot_open_another_tenants_page(
    redis: Redis, http: Client, acme_key: str
) -> None:
    csrf = await logged_in(http, acme_key)
    listing = await http.get("/admin")
    assert "/admin/tenants/acme" in listing.text
    assert "globex" not in listing.text.lower()
    assert (await http.get("/admin/tenants/acme")).status_code == 200
    for slug in ("globex", "no-such-tenant"):  # the same answer: nothing learnt
        for path in ("", "/preview", f"/users/{uuid.uuid4()}"):
            response = await http.get(f"/admin/tenants/{slug}{path}")
            assert response.status_code == 403, (slug, path)
            assert "does not reach that tenant" in response.text
        for action in ("/tokens", "/replay", "/breaker/approve", "/breaker/cancel"):
            response = await http.post(f"/admin/tenants/{slug}{action}", data={"csrf_token": csrf})
            assert response.status_code == 403, (slug, action)
    assert await TenantStore(redis).list_tokens("globex") == []


async def test_the_operator_sees_every_tenant(http: Client) -> None:
    await logged_in(http, OPERATOR)
    listing = await http.get("/admin")
    assert "/admin/tenants/acme" in listing.text
    assert "/admin/tenants/globex" in listing.text
    assert (await http.get("/admin/tenants/globex")).status_code == 200
    assert (await http.get("/admin/tenants/no-such-tenant")).status_code == 404


async def test_session_cookie_is_httponly_samesite_strict_and_secure_on_https(
    http: Client,
) -> None:
    for response in (await http.get("/admin/login"), await login(http, OPERATOR)):
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("scim_bridge_admin=")
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "secure", "path=/admin"} <= attributes
        assert OPERATOR not in cookie


async def test_session_cookie_is_not_secure_on_plain_http(redis: Redis, redis_url: str) -> None:
    async with client(redis_url, public_url="http://127.0.0.1:8000") as http:
        cookie = (await login(http, OPERATOR)).headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "secure" not in cookie


async def test_a_token_is_shown_once_and_never_the_lms_api_key(redis: Redis, http: Client) -> None:
    csrf = await logged_in(http, OPERATOR)
    issued = await http.post("/admin/tenants/acme/tokens", data={"csrf_token": csrf, "label": "e"})
    assert issued.status_code == 201
    assert issued.headers["cache-control"] == "no-store"
    token = re.search(r'value="(scimb_[^"]+)"', issued.text)
    assert token, issued.text
    assert await TenantStore(redis).authenticate("acme", token[1]) is not None
    again = await http.get("/admin/tenants/acme")
    assert token[1] not in again.text
    (info,) = await TenantStore(redis).list_tokens("acme")
    assert info.token_id in again.text  # listed by id, never by secret
    for path in ("/admin", "/admin/tenants/acme", "/admin/tenants/acme/preview"):
        assert LMS_KEY not in (await http.get(path)).text


async def test_revoking_a_token(redis: Redis, http: Client) -> None:
    csrf = await logged_in(http, OPERATOR)
    issued = await TenantStore(redis).issue_token("acme")
    response = await http.post(
        f"/admin/tenants/acme/tokens/{issued.token_id}/revoke", data={"csrf_token": csrf}
    )
    assert response.status_code == 303
    assert await TenantStore(redis).authenticate("acme", issued.token) is None
    page = await http.get(response.headers["location"])
    assert "The token was revoked" in page.text


async def test_revoking_the_admin_key_ends_its_sessions(
    redis: Redis, http: Client, acme_key: str
) -> None:
    await logged_in(http, acme_key)
    (info,) = await AdminKeyStore(redis).list_keys("acme")
    assert await AdminKeyStore(redis).revoke("acme", info.token_id)
    assert goes_to_login(await http.get("/admin/tenants/acme"))


async def test_a_shared_session_secret_carries_sessions_until_the_operator_token_rotates(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_SESSION_SECRET", "a-secret-the-whole-fleet-shares")
    async with client(redis_url) as first:
        await logged_in(first, OPERATOR)
        cookie = first.cookies["scim_bridge_admin"]
    async with client(redis_url) as second:  # another API process, same secret
        second.cookies.set("scim_bridge_admin", cookie, path="/admin")
        assert (await second.get("/admin")).status_code == 200
    async with client(redis_url, admin_token="rotated-operator-token") as third:
        third.cookies.set("scim_bridge_admin", cookie, path="/admin")
        assert goes_to_login(await third.get("/admin"))
    monkeypatch.delenv("BRIDGE_SESSION_SECRET")
    async with client(redis_url) as fourth:  # a random secret of its own
        fourth.cookies.set("scim_bridge_admin", cookie, path="/admin")
        assert goes_to_login(await fourth.get("/admin"))


def test_a_short_session_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        load_web_settings({"BRIDGE_SESSION_SECRET": "short"})
    assert len(load_web_settings({}).session_secret) == 32


async def test_logout(http: Client) -> None:
    csrf = await logged_in(http, OPERATOR)
    response = await http.post("/admin/logout", data={"csrf_token": csrf})
    assert goes_to_login(response)
    assert "max-age=0" in response.headers["set-cookie"].lower()
    assert goes_to_login(await http.get("/admin"))


async def test_everything_is_escaped(redis: Redis, http: Client) -> None:
    await add_tenant(redis, "evil", '<script>alert("x")</script>')
    await logged_in(http, OPERATOR)
    for path in ("/admin", "/admin/tenants/evil"):
        text = (await http.get(path)).text
        assert "<script>alert" not in text
        assert "&lt;script&gt;alert" in text


async def test_mapping_preview(http: Client) -> None:
    await logged_in(http, OPERATOR)
    form = await http.get("/admin/tenants/acme/preview")
    user = '{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x"}'
    response = await http.post(
        "/admin/tenants/acme/preview", data={"csrf_token": csrf_of(form), "user": user}
    )
    assert response.status_code == 200
    assert "would fail" in response.text
    assert "first_name" in response.text
    bad = await http.post(
        "/admin/tenants/acme/preview", data={"csrf_token": csrf_of(form), "user": "{nope"}
    )
    assert bad.status_code == 422
    assert "Not valid JSON" in bad.text
    for text, why in (
        ("[]", "A SCIM user is a JSON object"),
        ("[" * 100 + "]" * 100, "nested deeper than 64 levels"),
        ('{"userName": 7}', "Not a valid SCIM user"),
    ):
        odd = await http.post(
            "/admin/tenants/acme/preview", data={"csrf_token": csrf_of(form), "user": text}
        )
        assert odd.status_code == 422, text
        assert why in odd.text


async def test_a_retry_of_an_unknown_user_is_a_404(redis: Redis, http: Client) -> None:
    csrf = await logged_in(http, OPERATOR)
    for user_id in (str(uuid.uuid4()), "ids", "x:groups"):
        response = await http.post(
            "/admin/tenants/acme/replay", data={"csrf_token": csrf, "user_id": user_id}
        )
        assert response.status_code == 404
    assert await redis.exists(keys.queued("acme")) == 0
