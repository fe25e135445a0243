"""Hand-made junk against a real API process (docs/architecture.md, invariant 6, at scale).

Malformed and non-UTF-8 JSON, JSON nested thousands deep, bodies of
megabytes, wrong content types, a wrong type for every attribute, filters
of thousands of characters or terms, PATCH with thousands of operations,
hostile paging, garbage If-Match, ids with path traversal or odd unicode,
and every method on every route. Each gets a 4xx (a SCIM Error body under
/scim) within ANSWER_WITHIN_S, never a 5xx, and the keyspace is the same
after it as before. Last, the process's resident memory is measured before
and after a barrage of the worst of it, and must stay bounded.

The suite owns its API process and its Redis database
(tests/hardening/test_hardening_support.py); the existing no-trace suite
(tests/integration/api/test_api_no_trace.py) covers the protocol errors of
well-formed requests, this one covers what is not well-formed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.app import create_app
from scim.filter import MAX_FILTER_DEPTH, MAX_FILTER_LENGTH, MAX_FILTER_TERMS
from scim.names import all_attributes
from scim.patch import MAX_PATCH_OPERATIONS
from scim.schema import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE,
    GROUP_SCHEMA,
    PATCH_OP_SCHEMA,
    SEARCH_REQUEST_SCHEMA,
    USER_RESOURCE,
    USER_SCHEMA,
    Attribute,
    ResourceType,
)
from tests.hardening.test_hardening_support import (
    ADMIN_TOKEN,
    ERROR_SCHEMA,
    FOREIGN_USER,
    GROUP_ID,
    USER_ID,
    ApiProcess,
    World,
    api_process,
    hardening_url,
    seed_world,
    snapshot,
)
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.processes

SCIM_JSON = "application/scim+json"
MAX_BODY = 1_048_576  # Settings.max_body_bytes: the real process runs with the defaults
ANSWER_WITHIN_S = 2.0
NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"
# Growth of the API process's resident memory a junk barrage may cause: the
# first requests warm caches and allocator arenas, so this is generous; a
# body or a parse tree kept per request would blow through it.
RSS_GROWTH_LIMIT_KIB = 96 * 1024


class Junk:
    """The API process, its world, and one HTTP client."""

    def __init__(self, api: ApiProcess, world: World, redis_url: str) -> None:
        self.api = api
        self.world = world
        self.redis_url = redis_url
        self.http = httpx.Client(base_url=api.url, timeout=30)

    def send(
        self,
        method: str,
        path: str,
        body: bytes | Iterator[bytes] | None = None,
        *,
        content_type: str | None = SCIM_JSON,
        token: str | None = "acme",
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request, answered quickly and never with a 5xx (501 for what
        the bridge does not implement, /Me and /Bulk, is the RFC's answer)."""
        sent: dict[str, str] = {}
        if token is not None:
            bearer = ADMIN_TOKEN if token == "operator" else self.world.tokens.get(token, token)
            sent["Authorization"] = f"Bearer {bearer}"
        if content_type is not None:
            sent["Content-Type"] = content_type
        sent.update(headers or {})
        started = time.monotonic()
        response = self.http.request(method, path, content=body, headers=sent, params=params)
        elapsed = time.monotonic() - started
        where = f"{method} {path[:120]} -> {response.status_code}"
        unsupported = response.status_code == 501 and re.search(r"/v2/(Me|Bulk)$", path)
        assert response.status_code < 500 or unsupported, f"{where}: {response.text[:300]}"
        assert elapsed < ANSWER_WITHIN_S, f"{where} took {elapsed:.2f}s"
        return response


def assert_scim_error(
    response: httpx.Response, status: int | None = None, scim_type: str | None = None
) -> None:
    where = f"{response.request.method} {str(response.request.url)[:120]}"
    if status is not None:
        assert response.status_code == status, f"{where}: {response.text[:300]}"
    assert 400 <= response.status_code < 500, f"{where}: {response.text[:300]}"
    body = response.json()
    assert body["schemas"] == [ERROR_SCHEMA], where
    assert body["status"] == str(response.status_code), where
    assert body["detail"], where
    if scim_type is not None:
        assert body.get("scimType") == scim_type, f"{where}: {body}"
    assert "Traceback" not in response.text, where


@pytest.fixture(scope="module")
def junk(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Junk]:
    url = hardening_url(redis_server.url)
    world = seed_world(url, "acme", "globex")
    # Junk with no or broken credentials comes by the thousand from one
    # address: past the failure limit even the operator token would get a
    # 429 on the admin API (its own test: test_hardening_access.py).
    workdir = tmp_path_factory.mktemp("junk")
    with api_process(url, workdir, BRIDGE_AUTH_FAILURES_PER_MINUTE="1000000") as api:
        found = Junk(api, world, url)
        yield found
        found.http.close()
        assert api.alive(), api.log_text()[-3000:]
        assert "Traceback" not in api.log_text(), api.log_text()[-3000:]


@pytest.fixture
def unchanged(junk: Junk) -> Iterator[None]:
    """The test must leave the keyspace exactly as it found it."""
    before = snapshot(junk.redis_url)
    yield
    assert snapshot(junk.redis_url) == before


# -- bodies ---------------------------------------------------------------------

BASE = "/scim/acme/v2"
# Every route that reads a JSON body (PUT and PATCH aim at real resources).
WRITES = [
    ("POST", f"{BASE}/Users"),
    ("PUT", f"{BASE}/Users/{USER_ID}"),
    ("PATCH", f"{BASE}/Users/{USER_ID}"),
    ("POST", f"{BASE}/Groups"),
    ("PUT", f"{BASE}/Groups/{GROUP_ID}"),
    ("PATCH", f"{BASE}/Groups/{GROUP_ID}"),
    ("POST", f"{BASE}/Users/.search"),
    ("POST", f"{BASE}/Groups/.search"),
    ("POST", f"{BASE}/.search"),
]
DEEP = 5000
USER_START = b'{"schemas": ["' + USER_SCHEMA.encode() + b'"], "userName": "deep", "title": '
# (name, body, content type, status, scimType)
JUNK_BODIES: list[tuple[str, bytes, str | None, int, str | None]] = [
    ("empty", b"", SCIM_JSON, 400, "invalidSyntax"),
    ("whitespace", b" \r\n\t ", SCIM_JSON, 400, "invalidSyntax"),
    ("truncated", b'{"schemas": [', SCIM_JSON, 400, "invalidSyntax"),
    ("trailing comma", b'{"userName": "x",}', SCIM_JSON, 400, "invalidSyntax"),
    ("trailing garbage", b'{"userName": "x"} {}', SCIM_JSON, 400, "invalidSyntax"),
    ("single quotes", b"{'userName': 'x'}", SCIM_JSON, 400, "invalidSyntax"),
    ("NaN", b'{"count": NaN}', SCIM_JSON, 400, "invalidSyntax"),
    ("bare string", b'"userName"', SCIM_JSON, 400, "invalidSyntax"),
    ("array", b"[]", SCIM_JSON, 400, "invalidSyntax"),
    ("null", b"null", SCIM_JSON, 400, "invalidSyntax"),
    ("number", b"1e999999", SCIM_JSON, 400, "invalidSyntax"),
    ("NUL bytes", b'{"userName": "x"}\x00\x00', SCIM_JSON, 400, "invalidSyntax"),
    ("UTF-8 BOM", b'\xef\xbb\xbf{"userName": "x"}', SCIM_JSON, 400, "invalidSyntax"),
    ("latin-1", '{"userName": "Jürgen"}'.encode("latin-1"), SCIM_JSON, 400, "invalidSyntax"),
    ("UTF-16", '{"userName": "x"}'.encode("utf-16"), SCIM_JSON, 400, "invalidSyntax"),
    ("lone surrogate escape", b'{"userName": "\\ud800"}', SCIM_JSON, 400, None),
    ("overlong UTF-8", b'{"userName": "\xc0\xaf"}', SCIM_JSON, 400, "invalidSyntax"),
    ("invalid UTF-8", b'{"userName": "\xff\xfe\xfd"}', SCIM_JSON, 400, "invalidSyntax"),
    ("arrays 5000 deep", b"[" * DEEP + b"]" * DEEP, SCIM_JSON, 400, "invalidSyntax"),
    ("objects 5000 deep", b'{"a":' * DEEP + b"1" + b"}" * DEEP, SCIM_JSON, 400, "invalidSyntax"),
    ("unclosed 100000 deep", b"[" * 100_000, SCIM_JSON, 400, "invalidSyntax"),
    ("deep attribute", USER_START + b"[" * DEEP + b"]" * DEEP + b"}", SCIM_JSON, 400, None),
    ("over the limit", b'{"a": "' + b"x" * MAX_BODY + b'"}', SCIM_JSON, 413, None),
    ("8 MiB", b"[" + b"1," * (4 * MAX_BODY) + b"1]", SCIM_JSON, 413, None),
    ("text/plain", b'{"userName": "x"}', "text/plain", 415, None),
    ("xml", b"<user><userName>x</userName></user>", "application/xml", 415, None),
    ("form", b"userName=x", "application/x-www-form-urlencoded", 415, None),
    ("multipart", b"--b\r\n\r\nx\r\n--b--", "multipart/form-data; boundary=b", 415, None),
    ("no content type", b'{"userName": "x"}', None, 415, None),
    ("json-ish type", b'{"userName": "x"}', "application/jsonx", 415, None),
    ("wildcard type", b'{"userName": "x"}', "*/*", 415, None),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "scim_type"),
    [case[1:] for case in JUNK_BODIES],
    ids=[case[0] for case in JUNK_BODIES],
)
def test_junk_bodies_are_refused_on_every_route_that_reads_one(
    junk: Junk,
    unchanged: None,
    body: bytes,
    content_type: str | None,
    status: int,
    scim_type: str | None,
) -> None:
    for method, path in WRITES:
        response = junk.send(method, path, body, content_type=content_type)
        assert_scim_error(response, status, scim_type)


def test_bodies_of_megabytes_without_a_length_are_cut_off(junk: Junk, unchanged: None) -> None:
    """Chunked uploads declare no Content-Length: the limit holds as they stream."""

    def chunks(total: int) -> Iterator[bytes]:
        yield b'{"userName": "'
        piece = b"x" * 65_536
        for _ in range(total // len(piece)):
            yield piece
        yield b'"}'

    for method, path in WRITES:
        assert_scim_error(junk.send(method, path, chunks(8 * MAX_BODY)), 413)


# -- a wrong type for every attribute ---------------------------------------------


def wrong_values(attr: Attribute) -> list[object]:
    """Values of the wrong JSON type for `attr`, none of them "unassigned" (null,
    "", [], {}) and none a shape an IdP quirk repairs (a bare manager or member
    id; a member that is no user of the tenant is left out, not refused)."""
    if attr.type == "complex":
        values: list[object] = [7, True, 2.5, [7]]
        return values if attr.name in ("manager", "members") else [*values, "text"]
    if attr.type == "boolean":
        return ["perhaps", 2, {"v": True}, [True]]
    return [7, False, {"v": "x"}, ["x"]]


def attribute_cases(rtype: ResourceType) -> list[tuple[str, dict[str, Any], str, object]]:
    """(label, body fragment, PATCH path, wrong value) for every writable
    attribute and sub-attribute of `rtype`."""
    cases = []
    for container, attr in all_attributes(rtype):
        if attr.mutability == "readOnly":
            continue
        path = attr.name if container is None else f"{container}:{attr.name}"
        for value in wrong_values(attr):
            fragment = {attr.name: value}
            cases.append(
                (path, fragment if container is None else {container: fragment}, path, value)
            )
        for sub in attr.sub_attributes:
            if sub.mutability == "readOnly":
                continue
            for value in wrong_values(sub)[:2]:
                element: object = {sub.name: value}
                inner = {attr.name: [element] if attr.multi_valued else element}
                label = f"{path}.{sub.name}"
                cases.append(
                    (label, inner if container is None else {container: inner}, label, value)
                )
    return cases


@pytest.mark.parametrize(
    ("rtype", "schema", "target", "required"),
    [
        (USER_RESOURCE, USER_SCHEMA, USER_ID, {"userName": "typed@example.com"}),
        (GROUP_RESOURCE, GROUP_SCHEMA, GROUP_ID, {"displayName": "Typed"}),
    ],
    ids=["User", "Group"],
)
def test_a_wrong_type_for_every_attribute_is_invalid_value(
    junk: Junk,
    unchanged: None,
    rtype: ResourceType,
    schema: str,
    target: str,
    required: dict[str, str],
) -> None:
    endpoint = f"{BASE}{rtype.endpoint}"
    failures = []
    for label, fragment, path, value in attribute_cases(rtype):
        body = {"schemas": [schema, ENTERPRISE_USER_SCHEMA], **required, **fragment}
        patch = {
            "schemas": [PATCH_OP_SCHEMA],
            "Operations": [{"op": "replace", "path": path, "value": value}],
        }
        for method, url, sent in (
            ("POST", endpoint, body),
            ("PUT", f"{endpoint}/{target}", body),
            ("PATCH", f"{endpoint}/{target}", patch),
        ):
            response = junk.send(method, url, json.dumps(sent).encode())
            if response.status_code != 400 or response.json().get("scimType") not in (
                "invalidValue",
                "invalidSyntax",
                "invalidPath",
                "mutability",  # a Group member's sub-attributes are not patched one by one
            ):
                failures.append((method, label, value, response.status_code, response.text[:160]))
    assert not failures, "\n".join(map(str, failures))


# -- filters, PATCH operations, paging, If-Match -------------------------------------


def long_filters() -> list[tuple[str, str]]:
    over = 'userName eq "' + "a" * MAX_FILTER_LENGTH + '"'
    return [
        ("one character over", over),
        ("thousands of terms", " or ".join(["title pr"] * 500)),
        ("just over the terms", " or ".join(["a pr"] * (MAX_FILTER_TERMS + 1))),
        ("parentheses thousands deep", "(" * 2000 + "a pr" + ")" * 2000),
        ("not thousands deep", "not (" * 600 + "a pr" + ")" * 600),
        (
            "just over the depth",
            "(" * (MAX_FILTER_DEPTH + 1) + "a pr" + ")" * (MAX_FILTER_DEPTH + 1),
        ),
        ("value paths nested", "emails[" * 50 + "value pr" + "]" * 50),
        ("unbalanced", "(" * 3000),
        ("escapes past the length", 'title eq "' + "\\u0041" * 700 + '"'),
        ("control characters", "title eq \x00\x01\x02"),
        # A lone surrogate escape reached the Redis index lookups (a 500) once.
        ("lone surrogate on userName", 'userName eq "\\ud800"'),
        ("lone surrogate on externalId", 'externalId eq "x\\udfff"'),
        ("lone surrogate on displayName", 'displayName eq "\\udc00" and id pr'),
        ("unicode", "ti\u0301tle eq \U0001f4a9"),
    ]


@pytest.mark.parametrize("text", [f for _, f in long_filters()], ids=[n for n, _ in long_filters()])
def test_hostile_filters_are_invalid_filter(junk: Junk, unchanged: None, text: str) -> None:
    search = {"schemas": [SEARCH_REQUEST_SCHEMA], "filter": text}
    for path in ("/Users/.search", "/Groups/.search", "/.search"):
        response = junk.send("POST", BASE + path, json.dumps(search).encode())
        assert_scim_error(response, 400, "invalidFilter")
    if len(text.encode()) < 8000:  # a query string past uvicorn's line limit: see below
        for path in ("/Users", "/Groups"):
            response = junk.send("GET", BASE + path, params={"filter": text})
            assert_scim_error(response, 400, "invalidFilter")


def test_filter_in_a_request_line_longer_than_the_server_reads(junk: Junk, unchanged: None) -> None:
    """uvicorn refuses a request line past its buffer (h11, 16 KiB) before the
    app sees it: a plain 4xx, not a SCIM body, and the process carries on."""
    response = junk.send("GET", f"{BASE}/Users?filter=" + "a" * 20_000)
    assert 400 <= response.status_code < 500
    assert junk.send("GET", f"{BASE}/ServiceProviderConfig").status_code == 200


@pytest.mark.parametrize(
    ("count", "status"),
    [(MAX_PATCH_OPERATIONS + 1, 400), (5000, 400), (60_000, 413)],
    ids=["one over", "thousands", "past the body limit"],
)
def test_patch_with_thousands_of_operations_is_refused(
    junk: Junk, unchanged: None, count: int, status: int
) -> None:
    operation = {"op": "replace", "path": "title", "value": "x"}
    body = json.dumps({"schemas": [PATCH_OP_SCHEMA], "Operations": [operation] * count}).encode()
    for path in (f"/Users/{USER_ID}", f"/Groups/{GROUP_ID}"):
        response = junk.send("PATCH", BASE + path, body)
        assert_scim_error(response, status, "invalidValue" if status == 400 else None)


HOSTILE_NUMBERS = [
    "-1", "0", "-99999999999999999999999999999", "99999999999999999999999999999999999999",
    "1e3", "0x10", " 7", "7 ", "NaN", "inf", "٣", "1_000", "+5", "--1", "", "\x00", "9" * 5000,
]  # fmt: skip


def test_hostile_paging_is_clamped_or_invalid_value(junk: Junk, unchanged: None) -> None:
    """RFC 7644 §3.4.2.4: below 1 reads as 1, a negative count as 0, a count
    over maxResults as maxResults; text that is no integer is invalidValue."""
    for value in HOSTILE_NUMBERS:
        for name in ("startIndex", "count", "STARTINDEX"):
            for path in ("/Users", "/Groups"):
                response = junk.send("GET", BASE + path, params={name: value})
                if response.status_code == 200:
                    page = response.json()
                    assert page["startIndex"] >= 1
                    assert 0 <= page["itemsPerPage"] <= 200
                else:
                    assert_scim_error(response, 400, "invalidValue")
    numbers: list[object] = [-1, 0, -(10**30), 10**30, 10**400, 1.5, "7", True, None, [1], {}]
    for number in numbers:
        for name in ("startIndex", "count"):
            search = json.dumps({"schemas": [SEARCH_REQUEST_SCHEMA], name: number}).encode()
            for path in ("/Users/.search", "/.search"):
                response = junk.send("POST", BASE + path, search)
                if response.status_code == 200:
                    assert 0 <= response.json()["itemsPerPage"] <= 200
                else:
                    assert_scim_error(response, 400)


GARBAGE_TAGS = [
    "garbage", "W/", '""', "W/\"\"", "*garbage", 'W/"1" garbage', ",,,,", "W/" * 2000,
    '"' + "9" * 4000 + '"', 'w/"0"', 'W/"-1"', 'W/"1.0"', 'W/"1e0"', "null",
]  # fmt: skip


def test_garbage_if_match_is_a_precondition_failure(junk: Junk, unchanged: None) -> None:
    patch = json.dumps(
        {
            "schemas": [PATCH_OP_SCHEMA],
            "Operations": [{"op": "replace", "path": "title", "value": "x"}],
        }
    ).encode()
    user = json.dumps({"schemas": [USER_SCHEMA], "userName": "ann@example.com", "title": "x"})
    for tag in GARBAGE_TAGS:
        headers = {"If-Match": tag}
        for method, body in (("PATCH", patch), ("PUT", user.encode()), ("DELETE", None)):
            response = junk.send(method, f"{BASE}/Users/{USER_ID}", body, headers=headers)
            assert_scim_error(response, 412)
        read = junk.send("GET", f"{BASE}/Users/{USER_ID}", headers={"If-None-Match": tag})
        assert read.status_code == 200, read.text


# -- ids, slugs and methods -------------------------------------------------------------

# Ids that decode to path separators or dot segments route elsewhere (a list,
# no route at all): any refusal will do, and a read may list.
ROUTING_IDS = ["..", "%2e%2e", "..%2F..%2Fadmin%2Fv1%2Ftenants", "%2F", "%2F..%2F..%2FGroups"]
HOSTILE_IDS = [
    "ids", "seq", "idx:un", "queued", f"{USER_ID}:groups", f"{GROUP_ID}:members",
    f"%7Bt:globex%7D:u:{FOREIGN_USER}", FOREIGN_USER,
    USER_ID.replace("1", "\uff11"), f"{USER_ID}%00", f"%20{USER_ID}", "%00", "%F0%9F%92%A9",
    "%E2%80%AE" + USER_ID, "%ff%fe", "%C0%AF", "a" * 6000, "*", "%25", "NaN", "null",
    "'or'1'='1", "$(reboot)", "{{7*7}}", "\u0130d",
]  # fmt: skip


@pytest.mark.parametrize("rid", ROUTING_IDS + HOSTILE_IDS, ids=lambda rid: repr(rid[:40]))
def test_hostile_ids_are_refused(junk: Junk, unchanged: None, rid: str) -> None:
    """A hostile id names no resource (404), whatever store key it spells."""
    patch = json.dumps(
        {"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "add", "path": "title", "value": "x"}]}
    ).encode()
    routing = rid in ROUTING_IDS
    for kind, body in (
        ("Users", {"schemas": [USER_SCHEMA], "userName": "z@example.com"}),
        ("Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Z"}),
    ):
        for method, sent in (
            ("GET", None),
            ("PUT", json.dumps(body).encode()),
            ("PATCH", patch),
            ("DELETE", None),
        ):
            response = junk.send(method, f"{BASE}/{kind}/{rid}", sent)
            if routing and method == "GET" and response.status_code == 200:
                continue
            assert_scim_error(response, None if routing else 404)


HOSTILE_SLUGS = [
    "%7Bt:acme%7D", "acme%00", "ACME", "acme%20", "%61cme", "ac%2Fme", "*", "..", "a" * 300,
    "%F0%9F%92%A9", "globex", "ac%2Fme",
]  # fmt: skip


def test_hostile_tenant_slugs_are_unauthorised(junk: Junk, unchanged: None) -> None:
    """With acme's token: a slug that is not literally "acme" is a 401."""
    for slug in HOSTILE_SLUGS:
        for path in ("/Users", f"/Users/{USER_ID}", "/ServiceProviderConfig"):
            response = junk.send("GET", f"/scim/{slug}/v2{path}")
            if slug == "%61cme":  # percent-decoded to "acme" by the server: the same URL
                assert response.status_code == 200
                continue
            # A slug that is or decodes to a path separator or a dot segment
            # matches no route at all.
            assert_scim_error(response, 404 if slug in ("ac%2Fme", "..") else 401)


METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "FOO"]


def served_paths() -> list[str]:
    """Every route of the app, its parameters filled with names that exist
    nowhere: a request that is not refused must still change nothing."""
    values = {"tenant_slug": "acme", "slug": "ghost", "file_path": "nope.css"}

    def fill(match: re.Match[str]) -> str:
        return values.get(match[1], NO_SUCH_ID)

    return sorted(
        {re.sub(r"\{([^}:]+)(?::[^}]*)?\}", fill, route.path) for route in create_app().routes}
    )


@pytest.mark.parametrize("token", ["acme", "operator", None, "garbage"])
def test_every_method_on_every_route(junk: Junk, unchanged: None, token: str | None) -> None:
    """Junk with any method on any route (SCIM, admin API, admin pages, probes)
    is refused or, for a read, answered; refusals have the route's shape."""
    for path in served_paths():
        for method in METHODS:
            response = junk.send(
                method, path, b"\x00\xff{junk", content_type="text/plain", token=token
            )
            if response.status_code < 400 or response.status_code == 501 or method == "HEAD":
                continue
            if response.text == "Invalid HTTP request received.":
                continue  # uvicorn refused the method itself; the app never saw it
            if path.startswith("/scim/"):
                assert_scim_error(response)
            elif path.startswith("/admin/v1/") and response.status_code not in (404, 405):
                assert {"error", "detail"} <= set(response.json()), response.text


ADMIN_IDS = [f"{USER_ID}:groups", "ids", "idx:un", f"{GROUP_ID}:members", "%2e%2e", "a" * 5000]


def test_hostile_ids_on_the_admin_api(junk: Junk, unchanged: None) -> None:
    for rid in ADMIN_IDS:
        for slug in ("acme", "%7Bt:acme%7D", "acme%00"):
            timeline = junk.send("GET", f"/admin/v1/tenants/{slug}/users/{rid}", token="operator")
            assert timeline.status_code in (400, 404), timeline.text
            replay = junk.send(
                "POST",
                f"/admin/v1/tenants/{slug}/replay",
                json.dumps({"user_id": rid}).encode(),
                content_type="application/json",
                token="operator",
            )
            assert replay.status_code in (400, 404), replay.text
            revoke = junk.send("DELETE", f"/admin/v1/tenants/{slug}/tokens/{rid}", token="operator")
            assert revoke.status_code in (400, 404), revoke.text


# -- memory ---------------------------------------------------------------------


def barrage(junk: Junk) -> int:
    """The heaviest junk above, once; the number of requests sent."""
    sent = 0
    heavy = [body for name, body, _, status, _ in JUNK_BODIES if status in (400, 413)]
    many_ops = json.dumps(
        {
            "schemas": [PATCH_OP_SCHEMA],
            "Operations": [{"op": "add", "path": "title", "value": "x" * 20}] * 5000,
        }
    ).encode()

    def chunks() -> Iterator[bytes]:
        for _ in range(128):
            yield b"[" * 65_536

    for method, path in WRITES:
        for body in heavy:
            junk.send(method, path, body)
            sent += 1
        junk.send(method, path, many_ops)
        junk.send(method, path, chunks())
        sent += 2
    for _, text in long_filters():
        search = json.dumps({"schemas": [SEARCH_REQUEST_SCHEMA], "filter": text}).encode()
        junk.send("POST", f"{BASE}/.search", search)
        sent += 1
    for rid in HOSTILE_IDS:
        junk.send("GET", f"{BASE}/Users/{rid}")
        sent += 1
    return sent


def test_memory_stays_bounded_under_a_junk_barrage(junk: Junk, unchanged: None) -> None:
    """RSS of the real API process (VmRSS, /proc/<pid>/status) before and after
    rounds of the worst junk: what a refused request allocates is freed."""
    cold = junk.api.memory_kib()
    barrage(junk)  # warm-up: imports, caches and allocator arenas reach their size
    before = junk.api.memory_kib()
    sent = sum(barrage(junk) for _ in range(4))
    after = junk.api.memory_kib()
    peak = junk.api.memory_kib("VmHWM")
    print(  # the figures, for `pytest -s`
        f"\nAPI RSS: {cold / 1024:.1f} MiB cold, {before / 1024:.1f} MiB after a warm-up round, "
        f"{after / 1024:.1f} MiB after "
        f"{sent} junk requests (growth {(after - before) / 1024:.1f} MiB), "
        f"peak {peak / 1024:.1f} MiB"
    )
    assert after - before < RSS_GROWTH_LIMIT_KIB
    assert peak < 512 * 1024
    assert junk.send("GET", f"{BASE}/Users/{USER_ID}").status_code == 200
