"""Access (issue "Hardening", part "Access"), beyond the existing suites:

- tests/integration/api/test_api_isolation.py walls tenants off on every
  SCIM route; tests/integration/admin/test_admin_auth.py checks who gets a
  401 or 403 on every admin route. Here, table-driven over every admin route
  the app serves: tenant A's credentials (SCIM token or admin key), on B's
  URL or naming B's ids under A's URL, never read or change anything of B:
  B's keyspace is unchanged and no answer carries B's data.
- revoked tokens and admin keys, and a disabled tenant, fail at once, also
  when the revocation comes from another process (the API caches tokens and
  evicts them on a pub/sub message);
- every secret is compared with `hmac.compare_digest`, on digests of equal
  length (spied at run time, and no `==` on a secret in the auth code);
- repeated failed authentication is throttled with a 429 and Retry-After
  that expires, without locking out a valid credential.
"""

from __future__ import annotations

import ast
import hmac
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.admin import auth as admin_auth
from api.app import create_app
from cli.redis_server import wait_until
from shadow import ResourceStore, Tenant, TenantStore
from shadow.admin_keys import AdminKeyStore
from tests.hardening.test_hardening_support import api_process, hardening_url, seed_world
from tests.support.api import USER_SCHEMA, api_settings
from tests.support.redis_server import RedisServer

OPERATOR = "access-operator-token-0123456789"
A_USER = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
B_USER = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
ROOT = Path(__file__).resolve().parents[2]


class Tenants:
    """Tenants "acme" (A) and "globex" (B): a user, a SCIM token and an admin key each."""

    def __init__(self, http: AsyncTestClient[Any], redis: Redis) -> None:
        self.http = http
        self.redis = redis
        self.scim: dict[str, str] = {}
        self.scim_ids: dict[str, str] = {}
        self.keys: dict[str, str] = {}
        self.key_ids: dict[str, str] = {}

    async def call(
        self, method: str, path: str, bearer: str | None, body: Any = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return await self.http.request(method, path, json=body, headers=headers)

    async def b_keys(self) -> dict[bytes, object]:
        from tests.support.api import keyspace

        found = await keyspace(self.redis, "{t:globex}:*")
        return {k: v for k, v in found.items() if not k.endswith((b":used",))}


@pytest.fixture
async def tenants(redis: Redis, redis_url: str) -> AsyncIterator[Tenants]:
    store, resources = TenantStore(redis), ResourceStore(redis)
    settings = api_settings(redis_url, admin_token=OPERATOR)
    async with AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as http:
        found = Tenants(http, redis)
        for slug, uid in (("acme", A_USER), ("globex", B_USER)):
            await store.create(
                Tenant(
                    slug=slug,
                    name=f"{slug.title()} Corp",
                    lms_url=f"https://lms.test/org/{slug}",
                    lms_api_key=f"lms-key-of-{slug}",
                )
            )
            issued = await store.issue_token(slug)
            found.scim[slug], found.scim_ids[slug] = issued.token, issued.token_id
            key = await AdminKeyStore(redis).issue(slug)
            found.keys[slug], found.key_ids[slug] = key.key, key.key_id
            doc = {"schemas": [USER_SCHEMA], "userName": f"person@{slug}.test", "active": True}
            await resources.write(slug, "u", uid, "create", doc)
        yield found


def admin_routes() -> list[tuple[str, str]]:
    """(method, path template) of every tenant-scoped admin API route."""
    return sorted(
        (method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.path))
        for route in create_app(api_settings("redis://unused")).routes
        if route.path.startswith("/admin/v1/tenants/{slug")
        for method in getattr(route, "methods", ())
        if method not in ("OPTIONS", "HEAD")
    )


# Bodies that would do something if the route let them through.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", ""): {"name": "Hijacked", "enabled": False, "lms_api_key": "stolen"},
    ("POST", "/tokens"): {"label": "intruder"},
    ("POST", "/admin-keys"): {"label": "intruder"},
    ("PUT", "/mapping"): {"fields": {"job_role": {"sources": ["title"]}}},
    ("POST", "/mapping/preview"): {"schemas": [USER_SCHEMA], "userName": "x@example.com"},
    ("POST", "/replay"): {"user_id": B_USER},
    ("PUT", "/breaker"): {"share": 0.01},
    ("POST", "/reconcile"): {"repair": True},
}


def aimed(template: str, slug: str, tenants: Tenants, ids_of: str) -> str:
    """The route for tenant `slug`, its other ids taken from tenant `ids_of`."""
    values = {
        "slug": slug,
        "user_id": {"acme": A_USER, "globex": B_USER}[ids_of],
        "token_id": tenants.scim_ids[ids_of],
        "key_id": tenants.key_ids[ids_of],
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m[1]], template)


def leaks(text: str, tenants: Tenants) -> list[str]:
    """B's data that appears in `text`."""
    secrets = [
        B_USER, "person@globex.test", "Globex Corp", "lms.test/org/globex", "lms-key-of-globex",
        tenants.scim["globex"], tenants.scim_ids["globex"], tenants.keys["globex"],
        tenants.key_ids["globex"],
    ]  # fmt: skip
    return [s for s in secrets if s in text]


async def test_the_table_is_every_tenant_scoped_admin_route() -> None:
    suffixes = {re.sub(r"^/admin/v1/tenants/\{slug\}", "", p) for _, p in admin_routes()}
    assert len(admin_routes()) >= 20
    assert {s for _, s in BODIES} <= suffixes


async def test_tenant_a_credentials_never_read_or_change_tenant_b(tenants: Tenants) -> None:
    before = await tenants.b_keys()
    failures = []
    for method, template in admin_routes():
        suffix = re.sub(r"^/admin/v1/tenants/\{slug\}", "", template)
        body = BODIES.get((method, re.sub(r"/\{\w+\}$", "", suffix)))
        attempts: list[tuple[str, str, str | None, set[int]]] = [
            # A's admin key on B's URL: forbidden before anything is looked up.
            ("A key, B url", aimed(template, "globex", tenants, "globex"), tenants.keys["acme"],
             {403}),
            # A's admin key on spellings of B's URL.
            ("A key, B url spelt oddly", aimed(template, "GLOBEX", tenants, "globex"),
             tenants.keys["acme"], {403, 404}),
            ("A key, traversal to B", aimed(template, "acme%2F..%2Fglobex", tenants, "globex"),
             tenants.keys["acme"], {403, 404}),
            # A's admin key on A's URL naming B's ids: not found (or A's own business).
            ("A key, A url, B ids", aimed(template, "acme", tenants, "globex"),
             tenants.keys["acme"], {200, 201, 202, 400, 403, 404, 409, 422}),
            # A's SCIM token is no admin credential, on any URL.
            ("A SCIM token, B url", aimed(template, "globex", tenants, "globex"),
             tenants.scim["acme"], {401}),
            ("A SCIM token, A url", aimed(template, "acme", tenants, "globex"),
             tenants.scim["acme"], {401}),
        ]  # fmt: skip
        for name, path, bearer, allowed in attempts:
            response = await tenants.call(method, path, bearer, body)
            if response.status_code not in allowed or leaks(response.text, tenants):
                failures.append(
                    (name, method, path, response.status_code, leaks(response.text, tenants))
                )
    assert not failures, "\n".join(map(str, failures))
    assert await tenants.b_keys() == before
    # A's admin key never opens B's SCIM API either, and B's credentials still work.
    for path in ("/Users", f"/Users/{B_USER}"):
        refused = await tenants.call("GET", f"/scim/globex/v2{path}", tenants.keys["acme"])
        assert refused.status_code == 401
        assert (
            await tenants.call("GET", f"/scim/globex/v2{path}", tenants.scim["globex"])
        ).status_code == 200
    own = await tenants.call("GET", "/admin/v1/tenants/globex", tenants.keys["globex"])
    assert own.status_code == 200


# -- revocation -----------------------------------------------------------------------


async def test_revoked_tokens_and_keys_and_a_disabled_tenant_fail_at_once(
    tenants: Tenants,
) -> None:
    scim = "/scim/acme/v2/Users"
    issued = await tenants.call("POST", "/admin/v1/tenants/acme/tokens", OPERATOR, {})
    token, token_id = issued.json()["token"], issued.json()["token_id"]
    key = (await tenants.call("POST", "/admin/v1/tenants/acme/admin-keys", OPERATOR, {})).json()
    for _ in range(3):  # warm every cache there is
        assert (await tenants.call("GET", scim, token)).status_code == 200
        assert (await tenants.call("GET", "/admin/v1/tenants/acme", key["key"])).status_code == 200

    revoke = await tenants.call("DELETE", f"/admin/v1/tenants/acme/tokens/{token_id}", OPERATOR)
    assert revoke.status_code == 200
    assert (await tenants.call("GET", scim, token)).status_code == 401
    path = f"/admin/v1/tenants/acme/admin-keys/{key['key_id']}"
    assert (await tenants.call("DELETE", path, OPERATOR)).status_code == 200
    assert (await tenants.call("GET", "/admin/v1/tenants/acme", key["key"])).status_code == 401

    # Disabled by the operator: the tenant's valid token stops working at once.
    assert (await tenants.call("GET", scim, tenants.scim["acme"])).status_code == 200
    off = await tenants.call("PATCH", "/admin/v1/tenants/acme", OPERATOR, {"enabled": False})
    assert off.status_code == 200
    assert (await tenants.call("GET", scim, tenants.scim["acme"])).status_code == 401
    on = await tenants.call("PATCH", "/admin/v1/tenants/acme", OPERATOR, {"enabled": True})
    assert on.status_code == 200
    assert (await tenants.call("GET", scim, tenants.scim["acme"])).status_code == 200


async def _revoke_elsewhere(url: str, slug: str, token_id: str | None, enabled: bool) -> None:
    redis = Redis.from_url(url)
    try:
        store = TenantStore(redis)  # another process's store: no cache of its own
        if token_id is not None:
            assert await store.revoke_token(slug, token_id)
        else:
            tenant = await store.get(slug)
            assert tenant is not None
            tenant.enabled = enabled
            await store.save(tenant)
    finally:
        await redis.aclose()


@pytest.mark.processes
def test_a_revocation_by_another_process_is_seen_by_the_api_at_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The API process caches credentials (30 s) and evicts on pub/sub: a
    token revoked by the CLI (another process) must fail on the very next
    request, every time."""
    import asyncio

    url = hardening_url(redis_server.url)
    world = seed_world(url, "acme")
    late = []
    with api_process(url, tmp_path) as api, httpx.Client(base_url=api.url) as http:

        def status(token: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            return http.get("/scim/acme/v2/Users", headers=headers).status_code

        async def issue() -> tuple[str, str]:
            redis = Redis.from_url(url)
            try:
                issued = await TenantStore(redis).issue_token("acme")
            finally:
                await redis.aclose()
            return issued.token, issued.token_id

        for attempt in range(15):
            token, token_id = asyncio.run(issue())
            assert status(token) == 200  # now cached by the API process
            assert status(token) == 200
            asyncio.run(_revoke_elsewhere(url, "acme", token_id, enabled=False))
            if status(token) != 401:
                late.append(attempt)
        assert status(world.tokens["acme"]) == 200
        asyncio.run(_revoke_elsewhere(url, "acme", None, enabled=False))
        disabled_late = status(world.tokens["acme"]) != 401
    assert not late, f"a revoked token still worked right after revocation in attempts {late}"
    assert not disabled_late, "a disabled tenant's token still worked right after"


@pytest.mark.processes
def test_an_expired_token_is_refused_by_the_api_the_moment_it_expires(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The API process holds the token's record in its cache; expiry is
    checked on every request, so nothing has to evict it."""
    import asyncio

    url = hardening_url(redis_server.url)
    seed_world(url, "acme")

    async def issue_brief() -> str:
        redis = Redis.from_url(url)
        try:
            return (await TenantStore(redis).issue_token("acme", expires_in_s=1.0)).token
        finally:
            await redis.aclose()

    with api_process(url, tmp_path) as api, httpx.Client(base_url=api.url) as http:
        headers = {"Authorization": f"Bearer {asyncio.run(issue_brief())}"}
        assert http.get("/scim/acme/v2/Users", headers=headers).status_code == 200  # cached
        answers: list[httpx.Response] = []

        def refused() -> bool:
            answers.append(http.get("/scim/acme/v2/Users", headers=headers))
            return answers[-1].status_code == 401

        # Well before any cache would drop it by age: expiry is checked per request.
        wait_until(refused, "the expired token to be refused", timeout=10)
        assert {a.status_code for a in answers[:-1]} <= {200}
        refused_answer = answers[-1]
        assert refused_answer.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


# -- constant-time comparison -------------------------------------------------------------


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """Every call of hmac.compare_digest, with its arguments."""
    calls: list[tuple[Any, Any]] = []
    real: Callable[[Any, Any], bool] = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


def _other(secret: str) -> str:
    """The same secret but its last character: always a different one."""
    return secret[:-1] + ("A" if secret[-1] != "A" else "B")


async def test_every_credential_is_compared_in_constant_time(
    tenants: Tenants, compared: list[tuple[Any, Any]]
) -> None:
    token, key = tenants.scim["acme"], tenants.keys["acme"]
    # `<prefix>_<id>_<secret>`; the secret itself may hold "_".
    token_prefix, token_id, token_secret = token.split("_", 2)
    key_prefix, key_id, key_secret = key.split("_", 2)
    scim, admin = "/scim/acme/v2/Users", "/admin/v1/tenants/acme"
    cases = [
        ("scim: valid", scim, token, 200),
        ("scim: wrong secret", scim, f"{token_prefix}_{token_id}_{_other(token_secret)}", 401),
        ("scim: unknown id", scim, f"{token_prefix}_0123456789abcdef_{token_secret}", 401),
        ("admin: operator", admin, OPERATOR, 200),
        ("admin: near operator", admin, OPERATOR[:-1] + "x", 401),
        ("admin: key", admin, key, 200),
        ("admin: wrong key secret", admin, f"{key_prefix}_{key_id}_{_other(key_secret)}", 401),
    ]
    for name, path, bearer, status in cases:
        compared.clear()
        response = await tenants.call("GET", path, bearer)
        assert response.status_code == status, name
        assert compared, f"{name}: no hmac.compare_digest"
        for a, b in compared:
            assert len(a) == len(b), f"{name}: compared values of different lengths"


AUTH_MODULES = [
    "api/auth.py", "api/admin/auth.py", "shadow/tenants.py", "shadow/admin_keys.py",
    "api/web/session.py",
]  # fmt: skip
# Names that hold a secret or its digest (ids, schemes and headers are no secrets).
_SECRET_WORDS = re.compile(
    r"digest|secret|_mac\b|\bmac\b|csrf|password|presented|fingerprint|^(token|key)$",
    re.IGNORECASE,
)


def test_no_secret_is_compared_with_equality() -> None:
    """`==` on a secret or its digest returns early on the first differing byte."""
    found = []
    for name in AUTH_MODULES:
        path = ROOT / name
        if not path.exists():
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
            ):
                operands = [node.left, *node.comparators]
                if any(
                    isinstance(o, ast.Name | ast.Attribute) and _SECRET_WORDS.search(ast.unparse(o))
                    for o in operands
                ) and not any(isinstance(o, ast.Constant) for o in operands):
                    found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert not found, found


# -- throttling ----------------------------------------------------------------------------


async def test_the_failed_auth_counter_expires(tenants: Tenants, redis: Redis) -> None:
    """The SCIM throttle counts failures per client in a window that ends:
    never a lock-out that outlives it."""
    await tenants.call("GET", "/scim/acme/v2/Users", "scimb_0123456789abcdef_nope")
    counters = await redis.keys("scim-bridge:authfail:*")
    assert counters
    for counter in counters:
        assert 0 < await redis.ttl(counter) <= 60


async def test_failed_admin_authentication_is_throttled_before_any_comparison(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a client is over its failure limit, the admin API answers 429
    without comparing what it sent: a right guess then is not told apart
    from a wrong one, until the window ends."""
    compared: list[str] = []
    same_secret = admin_auth.same_secret
    authenticate = AdminKeyStore.authenticate

    def counting_same_secret(presented: str, expected: str) -> bool:
        compared.append("operator")
        return same_secret(presented, expected)

    async def counting_authenticate(self: AdminKeyStore, key: str) -> tuple[str, str] | None:
        compared.append("key")
        return await authenticate(self, key)

    monkeypatch.setattr(admin_auth, "same_secret", counting_same_secret)
    monkeypatch.setattr(AdminKeyStore, "authenticate", counting_authenticate)
    allowed = 5
    settings = api_settings(redis_url, admin_token=OPERATOR, auth_failures_per_minute=allowed)
    good = {"Authorization": f"Bearer {OPERATOR}"}
    async with AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as http:
        assert (await http.get("/admin/v1/tenants", headers=good)).status_code == 200
        bad = {"Authorization": "Bearer adm_guess"}
        answers = [(await http.get("/admin/v1/tenants", headers=bad)).status_code for _ in range(8)]
        assert answers == [401] * allowed + [429] * 3
        compared.clear()
        for headers in (good, bad, {"Authorization": f"Bearer {OPERATOR}x"}):
            throttled = await http.get("/admin/v1/tenants", headers=headers)
            assert throttled.status_code == 429, throttled.text
            assert throttled.headers["retry-after"].isdigit()
            assert throttled.json()["error"] == "too_many_requests"
        assert compared == []  # nothing was compared while throttled
        # The window ends (its counter expires): the right token works again.
        for counter in await redis.keys("scim-bridge:authfail:*"):
            await redis.delete(counter)
        assert (await http.get("/admin/v1/tenants", headers=good)).status_code == 200
        assert compared
