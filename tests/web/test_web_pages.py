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
import msgspec
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from api.web.config import load_web_settings
from core.settings import Settings
from shadow import Tenant, TenantStore, keys
from shadow.admin_keys import AdminKeyStore
from shadow.breaker import BreakerConfig, admit, breaker_state, get_config, set_config
from shadow.reconcile import ReconcileReport
from shadow.resources import ResourceStore

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


#: Every form of the page (each must need a session and its CSRF token).
FORMS = (
    "/admin/tenants/acme/tokens",
    "/admin/tenants/acme/replay",
    "/admin/tenants/acme/breaker/approve",
    "/admin/tenants/acme/breaker/cancel",
    "/admin/tenants/acme/breaker",
    "/admin/tenants/acme/preview",
    "/admin/tenants/acme/mapping",
    "/admin/tenants/acme/settings",
    "/admin/tenants/acme/enabled",
    "/admin/tenants/acme/reconcile",
    "/admin/tenants/acme/admin-keys",
    "/admin/new-tenant",
)


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
    if home.status_code == 303:  # a customer's admin lands on its own tenant
        home = await http.get(home.headers["location"])
    assert home.status_code == 200
    return csrf_of(home)


def goes_to_login(response: httpx.Response) -> bool:
    location = response.headers.get("location", "")
    return response.status_code == 303 and location.split("?")[0] == "/admin/login"


async def test_login_refuses_a_bad_key(redis: Redis, http: Client) -> None:
    scim_token = (await TenantStore(redis).issue_token("acme")).token
    for secret in ("wrong", OPERATOR + "x", scim_token, f"scimba_acme.{'0' * 16}_nope"):
        response = await login(http, secret)
        assert response.status_code == 401
        assert "That is not a valid key" in response.text
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
        # Over the limit, nothing is compared: the right key too is a 429 (so
        # a guesser learns nothing), with when to come back.
        refused = await login(http, OPERATOR)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "60"
        assert "Too many failed logins" in refused.text
        await redis.delete(*[k async for k in redis.scan_iter("scim-bridge:authfail:*")])
        assert (await login(http, OPERATOR)).status_code == 303  # once the window passed


@pytest.mark.parametrize(
    "path",
    [
        "/admin",
        "/admin/",
        "/admin/tenants/acme",
        "/admin/tenants/acme/mapping",
        "/admin/new-tenant",
        f"/admin/tenants/acme/users/{uuid.uuid4()}",
    ],
)
async def test_pages_need_a_session(http: Client, path: str) -> None:
    assert goes_to_login(await http.get(path))
    http.cookies.set("scim_bridge_admin", "eyJraW5kIjoib3BlcmF0b3IifQ.forged", path="/admin")
    assert goes_to_login(await http.get(path))


async def test_forms_need_a_session(redis: Redis, http: Client) -> None:
    csrf = csrf_of(await http.get("/admin/login"))  # an anonymous session: not enough
    for path in FORMS:
        assert goes_to_login(await http.post(path, data={"csrf_token": csrf}))
    assert await TenantStore(redis).list_tokens("acme") == []


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
async def test_forms_refuse_a_missing_or_wrong_csrf_token(
    redis: Redis, http: Client, token: str | None
) -> None:
    await logged_in(http, OPERATOR)
    data = {} if token is None else {"csrf_token": token}
    for path in (*FORMS, "/admin/logout"):
        response = await http.post(path, data={**data, "label": "x", "user": "{}"})
        assert response.status_code == 403, path
        assert "reload it and try again" in response.text
    assert await TenantStore(redis).list_tokens("acme") == []
    assert (await http.get("/admin")).status_code == 200  # still logged in


async def test_login_refuses_a_missing_or_wrong_csrf_token(http: Client) -> None:
    # No login form was ever shown to this browser: a fresh form, never a login.
    stale = await http.post("/admin/login", data={"secret": OPERATOR})
    assert (stale.status_code, stale.headers["location"]) == (303, "/admin/login?why=stale")
    await http.get("/admin/login")
    for data in ({"secret": OPERATOR}, {"secret": OPERATOR, "csrf_token": "forged"}):
        assert (await http.post("/admin/login", data=data)).status_code == 403
    assert goes_to_login(await http.get("/admin"))


async def test_a_tenant_key_cannot_open_another_tenants_page(
    redis: Redis, http: Client, acme_key: str
) -> None:
    csrf = await logged_in(http, acme_key)
    landing = await http.get("/admin")  # its own tenant, not a one-row list
    assert (landing.status_code, landing.headers["location"]) == (303, "/admin/tenants/acme")
    page = await http.get("/admin/tenants/acme")
    assert page.status_code == 200
    assert "globex" not in page.text.lower()
    for operator_thing in (
        "Admin keys",
        "Disable tenant",
        "LMS API key",
        "operator",
        "Tenants</a>",
    ):
        assert operator_thing not in page.text, operator_thing
    for slug in ("globex", "no-such-tenant"):  # the same answer: nothing learnt
        for path in ("", "/mapping", f"/users/{uuid.uuid4()}", "/breaker/approve"):
            response = await http.get(f"/admin/tenants/{slug}{path}")
            assert response.status_code == 403, (slug, path)
            assert "does not reach that tenant" in response.text
        for action in (
            "/tokens",
            "/replay",
            "/breaker/approve",
            "/breaker/cancel",
            "/breaker",
            "/settings",
            "/reconcile",
            "/mapping",
            "/preview",
        ):
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
    # Post/Redirect/Get: the POST answers a redirect, the page after it shows
    # the token once, from the server; a reload (or Back) shows none and
    # issues none.
    assert (issued.status_code, issued.headers["location"]) == (303, "/admin/tenants/acme#tokens")
    shown = await http.get("/admin/tenants/acme")
    assert shown.headers["cache-control"] == "no-store"
    token = re.search(r'value="(scimb_[^"]+)"', shown.text)
    assert token, shown.text
    assert await TenantStore(redis).authenticate("acme", token[1]) is not None
    again = await http.get("/admin/tenants/acme")
    assert token[1] not in again.text
    (info,) = await TenantStore(redis).list_tokens("acme")  # still the one token
    assert info.token_id in again.text  # listed by id, never by secret
    for path in ("/admin", "/admin/tenants/acme", "/admin/tenants/acme/mapping"):
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
    assert f"Token {issued.token_id} was revoked" in page.text


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


async def test_a_cookie_copied_before_logout_is_dead_after_it(http: Client) -> None:
    csrf = await logged_in(http, OPERATOR)
    copied = http.cookies["scim_bridge_admin"]
    await http.post("/admin/logout", data={"csrf_token": csrf})
    http.cookies.set("scim_bridge_admin", copied, path="/admin")  # replayed
    response = await http.get("/admin/tenants/acme")
    assert goes_to_login(response)
    assert "why=ended" in response.headers["location"]


async def test_everything_is_escaped(redis: Redis, http: Client) -> None:
    await add_tenant(redis, "evil", '<script>alert("x")</script>')
    await logged_in(http, OPERATOR)
    for path in ("/admin", "/admin/tenants/evil"):
        text = (await http.get(path)).text
        assert "<script>alert" not in text
        assert "&lt;script&gt;alert" in text


async def test_mapping_preview(http: Client) -> None:
    csrf = await logged_in(http, OPERATOR)

    async def preview(text: str) -> str:
        sent = await http.post(
            "/admin/tenants/acme/preview", data={"csrf_token": csrf, "user": text}
        )
        assert sent.status_code == 303
        assert sent.headers["location"] == "/admin/tenants/acme/mapping#preview"
        shown = await http.get("/admin/tenants/acme/mapping")
        assert shown.status_code == 200
        return shown.text

    user = '{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x"}'
    text = await preview(user)
    assert "would fail" in text
    assert "first_name" in text
    assert "would fail" not in (await http.get("/admin/tenants/acme/mapping")).text  # once
    for sent, why in (
        ("{nope", "Not valid JSON"),
        ("[]", "A SCIM user is a JSON object"),
        ("[" * 100 + "]" * 100, "nested deeper than 64 levels"),
        ("[" * 40_000 + "]" * 40_000, "more than 64 KiB"),
        ('{"userName": 7}', "Not a valid SCIM user"),
    ):
        assert why in await preview(sent), sent[:20]


async def test_a_retry_of_an_unknown_user_is_a_404(redis: Redis, http: Client) -> None:
    csrf = await logged_in(http, OPERATOR)
    for user_id in (str(uuid.uuid4()), "ids", "x:groups"):
        response = await http.post(
            "/admin/tenants/acme/replay", data={"csrf_token": csrf, "user_id": user_id}
        )
        assert response.status_code == 404
    assert await redis.exists(keys.queued("acme")) == 0


# -- ended sessions, return-to, errors of the admin site ----------------------------


async def test_a_form_sent_after_the_session_ended_says_so_and_comes_back(
    redis: Redis, http: Client
) -> None:
    csrf = await logged_in(http, OPERATOR)
    await redis.delete(*[k async for k in redis.scan_iter("scim-bridge:web:session:*")])
    sent = await http.post(
        "/admin/tenants/acme/tokens",
        data={"csrf_token": csrf, "label": "late"},
        headers={"referer": "https://bridge.test/admin/tenants/acme?q=ada"},
    )
    assert goes_to_login(sent)
    location = sent.headers["location"]
    assert "why=ended" in location
    assert "next=%2Fadmin%2Ftenants%2Facme%3Fq%3Dada" in location
    assert await TenantStore(redis).list_tokens("acme") == []  # nothing done
    form = await http.get(location)
    assert "Your session ended" in form.text
    assert 'name="next" value="/admin/tenants/acme?q=ada"' in form.text
    back = await http.post(
        "/admin/login",
        data={"csrf_token": csrf_of(form), "secret": OPERATOR, "next": "/admin/tenants/acme?q=ada"},
    )
    assert back.headers["location"] == "/admin/tenants/acme?q=ada"


async def test_a_page_asked_for_without_a_session_is_where_login_goes_back_to(
    http: Client,
) -> None:
    response = await http.get("/admin/tenants/acme/mapping")
    assert response.headers["location"] == "/admin/login?next=%2Fadmin%2Ftenants%2Facme%2Fmapping"
    assert "why=" not in response.headers["location"]  # no session: nothing ended


@pytest.mark.parametrize(
    "next_url",
    [
        "//evil.example/admin",
        "https://evil.example/admin",
        "/\\evil.example",
        "/admin\\..\\x",
        "/admin/../scim/acme/v2/Users",
        "/admin/v1/tenants",
        "/admin/static/admin.css",
        "/elsewhere",
        "javascript:alert(1)",
        "/admin/\ttenants",
    ],
)
async def test_login_goes_back_only_to_pages_of_this_site(http: Client, next_url: str) -> None:
    form = await http.get("/admin/login", params={"next": next_url})
    assert f'value="{next_url}"' not in form.text
    done = await http.post(
        "/admin/login", data={"csrf_token": csrf_of(form), "secret": OPERATOR, "next": next_url}
    )
    assert done.headers["location"] == "/admin"


async def test_the_login_page_tells_customers_nothing_about_the_operator(http: Client) -> None:
    text = (await http.get("/admin/login")).text
    assert "BRIDGE_ADMIN_TOKEN" not in text
    assert "operator" not in text.lower()


SECURITY = ("content-security-policy", "x-frame-options", "x-content-type-options")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/admin/nope", 404),
        ("GET", "/admin/tenants/acme/nope/deeper", 404),
        ("DELETE", "/admin/tenants/acme", 405),
        ("PUT", "/admin/tenants/acme/tokens", 405),
    ],
)
async def test_errors_under_admin_are_pages_of_the_admin_site(
    http: Client, method: str, path: str, status: int
) -> None:
    await logged_in(http, OPERATOR)
    response = await http.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert all(h in response.headers for h in SECURITY), response.headers
    assert "<h1>" in response.text
    assert "scim:api:messages" not in response.text


async def test_a_form_address_opened_in_the_address_bar_goes_to_its_section(
    http: Client,
) -> None:
    await logged_in(http, OPERATOR)
    response = await http.get("/admin/tenants/acme/tokens")
    assert (response.status_code, response.headers["location"]) == (
        303,
        "/admin/tenants/acme#tokens",
    )


# -- confirmations -------------------------------------------------------------------


async def test_revoking_a_token_asks_first_naming_the_token(redis: Redis, http: Client) -> None:
    await logged_in(http, OPERATOR)
    issued = await TenantStore(redis).issue_token("acme", label="Entra production")
    tenant_page = await http.get("/admin/tenants/acme")
    assert f'aria-label="Revoke token Entra production {issued.token_id}"' in tenant_page.text
    confirm = await http.get(f"/admin/tenants/acme/tokens/{issued.token_id}/revoke")
    assert confirm.status_code == 200
    assert f"Revoke token “Entra production” ({issued.token_id})" in confirm.text
    assert await TenantStore(redis).authenticate("acme", issued.token) is not None  # untouched
    done = await http.post(
        f"/admin/tenants/acme/tokens/{issued.token_id}/revoke",
        data={"csrf_token": csrf_of(confirm)},
    )
    assert done.headers["location"] == "/admin/tenants/acme#tokens"
    assert await TenantStore(redis).authenticate("acme", issued.token) is None
    shown = await http.get("/admin/tenants/acme")
    assert "Token “Entra production” was revoked" in shown.text


async def test_disabling_a_tenant_asks_first_and_is_the_operators(
    redis: Redis, http: Client, acme_key: str
) -> None:
    await logged_in(http, OPERATOR)
    confirm = await http.get("/admin/tenants/acme/disable")
    assert "Disable Acme Ltd?" in confirm.text
    assert "requests for this tenant are refused" in confirm.text
    assert (await TenantStore(redis).get("acme")).enabled  # type: ignore[union-attr]
    csrf = csrf_of(confirm)
    await http.post("/admin/tenants/acme/enabled", data={"csrf_token": csrf, "enabled": "0"})
    assert not (await TenantStore(redis).get("acme")).enabled  # type: ignore[union-attr]
    assert "This tenant is disabled" in (await http.get("/admin/tenants/acme")).text
    await http.post("/admin/tenants/acme/enabled", data={"csrf_token": csrf, "enabled": "1"})
    assert (await TenantStore(redis).get("acme")).enabled  # type: ignore[union-attr]
    http.cookies.clear()
    csrf = await logged_in(http, acme_key)
    assert (await http.get("/admin/tenants/acme/disable")).status_code == 403
    refused = await http.post(
        "/admin/tenants/acme/enabled", data={"csrf_token": csrf, "enabled": "0"}
    )
    assert refused.status_code == 403
    assert (await TenantStore(redis).get("acme")).enabled  # type: ignore[union-attr]


# -- operator tasks on the page ---------------------------------------------------------


async def test_the_operator_creates_a_tenant_and_a_refusal_keeps_what_was_typed(
    redis: Redis, http: Client
) -> None:
    csrf = await logged_in(http, OPERATOR)
    form = {"csrf_token": csrf, "slug": "initech", "name": "Initech", "lms_api_key": "k" * 20}
    bad = await http.post("/admin/new-tenant", data={**form, "lms_url": "ftp://nope"})
    assert bad.headers["location"] == "/admin/new-tenant#create"
    again = await http.get("/admin/new-tenant")
    assert "Lms_url must be an http(s) URL" in again.text
    assert 'value="initech"' in again.text  # kept, but never the key
    assert "k" * 20 not in again.text
    assert await TenantStore(redis).get("initech") is None
    made = await http.post("/admin/new-tenant", data={**form, "lms_url": "https://lms.test/i"})
    assert made.headers["location"] == "/admin/tenants/initech#tokens"
    tenant = await TenantStore(redis).get("initech")
    assert tenant is not None
    assert tenant.name == "Initech"
    assert "Tenant Initech created" in (await http.get("/admin/tenants/initech")).text
    too_long = await http.post(
        "/admin/new-tenant",
        data={**form, "slug": "longname", "name": "x" * 201, "lms_url": "https://lms.test/l"},
    )
    assert too_long.status_code == 303
    assert await TenantStore(redis).get("longname") is None
    assert "at most 200 characters" in (await http.get("/admin/new-tenant")).text


async def test_a_customer_admin_cannot_create_tenants(http: Client, acme_key: str) -> None:
    csrf = await logged_in(http, acme_key)
    assert (await http.get("/admin/new-tenant")).status_code == 403
    data = {"csrf_token": csrf, "slug": "x", "lms_url": "https://l.test", "lms_api_key": "k"}
    assert (await http.post("/admin/new-tenant", data=data)).status_code == 403


async def test_admin_keys_are_issued_once_and_revoked_after_asking(
    redis: Redis, http: Client
) -> None:
    csrf = await logged_in(http, OPERATOR)
    sent = await http.post(
        "/admin/tenants/acme/admin-keys", data={"csrf_token": csrf, "label": "Jane"}
    )
    assert sent.headers["location"] == "/admin/tenants/acme#admin-keys"
    shown = (await http.get("/admin/tenants/acme")).text
    key = re.search(r'value="(scimba_[^"]+)"', shown)
    assert key, shown
    assert await AdminKeyStore(redis).authenticate(key[1]) is not None
    assert key[1] not in (await http.get("/admin/tenants/acme")).text
    (info,) = await AdminKeyStore(redis).list_keys("acme")
    confirm = await http.get(f"/admin/tenants/acme/admin-keys/{info.token_id}/revoke")
    assert f"Revoke admin key “Jane” ({info.token_id})" in confirm.text
    await http.post(
        f"/admin/tenants/acme/admin-keys/{info.token_id}/revoke", data={"csrf_token": csrf}
    )
    assert await AdminKeyStore(redis).authenticate(key[1]) is None


async def test_settings_the_lms_key_is_the_operators(
    redis: Redis, http: Client, acme_key: str
) -> None:
    csrf = await logged_in(http, OPERATOR)
    await http.post(
        "/admin/tenants/acme/settings",
        data={"csrf_token": csrf, "name": "Acme Group", "lms_api_key": "new-lms-key-123"},
    )
    tenant = await TenantStore(redis).get("acme")
    assert tenant is not None
    assert (tenant.name, tenant.lms_api_key) == ("Acme Group", "new-lms-key-123")
    page = (await http.get("/admin/tenants/acme")).text
    assert "Saved: name and LMS key changed" in page
    assert "new-lms-key-123" not in page
    http.cookies.clear()
    csrf = await logged_in(http, acme_key)
    assert 'name="lms_api_key"' not in (await http.get("/admin/tenants/acme")).text
    refused = await http.post(
        "/admin/tenants/acme/settings",
        data={"csrf_token": csrf, "name": "Acme", "lms_api_key": "customer-key"},
    )
    assert refused.status_code == 403
    await http.post("/admin/tenants/acme/settings", data={"csrf_token": csrf, "name": "Acme Ltd"})
    tenant = await TenantStore(redis).get("acme")
    assert tenant is not None
    assert (tenant.name, tenant.lms_api_key) == ("Acme Ltd", "new-lms-key-123")


async def test_breaker_thresholds_and_only_the_operator_turns_it_off(
    redis: Redis, http: Client, acme_key: str
) -> None:
    csrf = await logged_in(http, acme_key)
    form = {"csrf_token": csrf, "share_percent": "10", "window_minutes": "120", "min_learners": "5"}
    await http.post("/admin/tenants/acme/breaker", data={**form, "enabled": ""})
    config = await get_config(redis, "acme")
    assert (config.share, config.window_s, config.min_learners, config.enabled) == (
        0.1,
        7200,
        5,
        True,  # a customer's admin has no off switch, and sending one does nothing
    )
    # Tighter only (the admin policy): a looser share than the operator's is refused.
    loose = await http.post("/admin/tenants/acme/breaker", data={**form, "share_percent": "50"})
    assert loose.headers["location"] == "/admin/tenants/acme#breaker"
    assert "may only tighten the breaker" in (await http.get("/admin/tenants/acme")).text
    assert (await get_config(redis, "acme")).share == 0.1
    bad = await http.post("/admin/tenants/acme/breaker", data={**form, "share_percent": "150"})
    assert bad.headers["location"] == "/admin/tenants/acme#breaker"
    assert "Share must be more than 0 and at most 1" in (await http.get("/admin/tenants/acme")).text
    http.cookies.clear()
    csrf = await logged_in(http, OPERATOR)
    await http.post("/admin/tenants/acme/breaker", data={**form, "csrf_token": csrf})
    assert not (await get_config(redis, "acme")).enabled
    listing = (await http.get("/admin")).text
    assert '<span class="badge warn">off</span>' in listing  # the list says so


async def test_a_reconcile_is_queued_once(redis: Redis, http: Client) -> None:
    csrf = await logged_in(http, OPERATOR)
    for _ in range(2):
        sent = await http.post(
            "/admin/tenants/acme/reconcile", data={"csrf_token": csrf, "repair": "0"}
        )
        assert sent.headers["location"] == "/admin/tenants/acme#reconcile"
    page = (await http.get("/admin/tenants/acme")).text
    assert "Reconcile report queued" in page
    assert "already queued or running" in page
    assert "Reconcile queued" in page  # its progress
    assert await redis.exists("arq:job:reconcile:acme") == 1


async def test_the_mapping_is_edited_on_the_page(redis: Redis, http: Client) -> None:
    csrf = await logged_in(http, OPERATOR)
    bad = '{"fields": {"nope": {"drop": true}}}'
    await http.post("/admin/tenants/acme/mapping", data={"csrf_token": csrf, "overrides": bad})
    page = (await http.get("/admin/tenants/acme/mapping")).text
    assert "nope: not a learner field" in page
    assert "&#34;nope&#34;" in page or "&quot;nope&quot;" in page  # the draft stays
    assert await redis.get(keys.mapping("acme")) is None
    deep = "[" * 1000 + "]" * 1000
    await http.post("/admin/tenants/acme/mapping", data={"csrf_token": csrf, "overrides": deep})
    assert "nested deeper than" in (await http.get("/admin/tenants/acme/mapping")).text
    good = '{"fields": {"job_role": {"drop": true}}}'
    await http.post("/admin/tenants/acme/mapping", data={"csrf_token": csrf, "overrides": good})
    assert await redis.get(keys.mapping("acme")) is not None
    page = (await http.get("/admin/tenants/acme/mapping")).text
    assert "Mapping saved" in page
    assert "job_role" in page


async def test_free_text_is_bounded(redis: Redis, http: Client) -> None:
    csrf = await logged_in(http, OPERATOR)
    for label, days in (("x" * 101, ""), ("ok", "0"), ("ok", "99999"), ("two\nlines", "")):
        data = {"csrf_token": csrf, "label": label, "expires_in_days": days}
        assert (await http.post("/admin/tenants/acme/tokens", data=data)).status_code == 303
        assert "New SCIM token" not in (await http.get("/admin/tenants/acme")).text
    assert await TenantStore(redis).list_tokens("acme") == []
    data = {"csrf_token": csrf, "label": "ok", "expires_in_days": "30"}
    await http.post("/admin/tenants/acme/tokens", data=data)
    (token,) = await TenantStore(redis).list_tokens("acme")
    assert token.expires_at
    assert "It expires in 30 days" in (await http.get("/admin/tenants/acme")).text


async def test_with_nothing_held_the_breaker_confirmation_offers_nothing(http: Client) -> None:
    await logged_in(http, OPERATOR)
    for action in ("approve", "cancel"):
        page = await http.get(f"/admin/tenants/acme/breaker/{action}")
        assert page.status_code == 200
        assert "Nothing is held" in page.text
        assert f'action="/admin/tenants/acme/breaker/{action}"' not in page.text


async def test_cancelling_held_deactivations_asks_first_and_keeps_the_learners(
    redis: Redis, http: Client
) -> None:
    await set_config(redis, "acme", BreakerConfig(share=0.01, min_learners=0))
    user_id = str(uuid.uuid4())
    doc = {"userName": "ada@entra.example", "name": {"givenName": "Ada", "familyName": "L"}}
    written = await ResourceStore(redis).write("acme", "u", user_id, "create", doc)
    assert await admit(redis, "acme", user_id, written.version) == "held"
    await logged_in(http, OPERATOR)
    confirm = await http.get("/admin/tenants/acme/breaker/cancel")
    assert "Keep 1 learner active?" in confirm.text
    assert "Ada L" in confirm.text
    assert (await breaker_state(redis, "acme")).held == 1  # nothing yet
    done = await http.post(
        "/admin/tenants/acme/breaker/cancel", data={"csrf_token": csrf_of(confirm)}
    )
    assert done.headers["location"] == "/admin/tenants/acme#breaker"
    assert (await breaker_state(redis, "acme")).held == 0
    assert "Cancelled: 1 learner stay active" in (await http.get("/admin/tenants/acme")).text


async def test_the_last_reconcile_reads_in_words(redis: Redis, http: Client) -> None:
    report = ReconcileReport(
        tenant="acme",
        repair=True,
        started_at="2026-01-02T10:00:00.000Z",
        finished_at="2026-01-02T10:01:00.000Z",
        users_checked=40,
        in_sync=37,
        drift_counts={"missing": 2, "deactivated_by_hand": 1},
        repaired=3,
    )
    await redis.set(keys.reconcile_last("acme"), msgspec.json.encode(report))
    await logged_in(http, OPERATOR)
    text = (await http.get("/admin/tenants/acme")).text
    assert "2026-01-02 10:01:00 UTC (repair)" in text
    assert "2 learners missing from the LMS" in text
    assert "1 learner deactivated by hand in the LMS" in text
    assert "3, 3 repaired" in text


async def test_approving_with_nothing_held_changes_nothing_and_says_so(
    redis: Redis, http: Client
) -> None:
    csrf = await logged_in(http, OPERATOR)
    for action in ("approve", "cancel"):
        sent = await http.post(f"/admin/tenants/acme/breaker/{action}", data={"csrf_token": csrf})
        assert sent.headers["location"] == "/admin/tenants/acme#breaker"
        assert "Nothing is held any more" in (await http.get("/admin/tenants/acme")).text
    state = await breaker_state(redis, "acme")
    assert state.approved_until is None  # the breaker was not disarmed
