"""Schemathesis against a real API process: every SCIM and admin route.

The admin API is fuzzed from its own OpenAPI document, the one Litestar
generates from the typed routes and serves at `/admin/v1/schema`: every
body, query parameter and answer is typed, so the document is complete and
the fuzzer reaches the handlers' own validation. Only the URL's tenant is
pinned (to a tenant the fuzz may rewire: never the SCIM one); everything
else is generated from the document.

The SCIM routes have no OpenAPI document (RFC 7644 describes them, and
/Schemas), so `SCIM_OPENAPI` below is written for the fuzzer: each route
with its parameters, headers and request bodies, loose enough that
schemathesis reaches the handlers' own validation, and aimed at real
resources (fixed ids seeded into the store). Tests check that the two
documents name every route the app serves (the admin web pages, HTML forms
behind a session cookie, are left to the junk suite) but those in
`NOT_FUZZED`, so a new route cannot go unfuzzed.

Each generated request (conforming and not; schemathesis's coverage phase
adds boundary values and a wrong type for every property, its fuzzing phase
EXAMPLES random cases per mode; the same cases every run) must be answered
within ANSWER_WITHIN_S and never with a 5xx (501 for /Me and /Bulk is the
RFC's answer); a refusal must have the route's error shape (a SCIM Error
under /scim, `{"error", "detail"}` under /admin/v1, unknown routes and
methods included) and must leave the keyspace as it was. A last test checks
the fuzzer got both accepted and refused on every write route.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.schemas import OpenApiSchema

from api.app import create_app
from core.settings import Settings
from scim.schema import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_SCHEMA,
    LMS_USER_SCHEMA,
    PATCH_OP_SCHEMA,
    SEARCH_REQUEST_SCHEMA,
    USER_SCHEMA,
)
from tests.hardening.test_hardening_support import (
    ADMIN_TOKEN,
    ERROR_SCHEMA,
    FOREIGN_USER,
    GROUP_ID,
    SPARE_USER,
    USER_ID,
    ApiProcess,
    World,
    api_process,
    hardening_url,
    seed_world,
    snapshot,
)
from tests.support.redis_server import RedisServer

SCIM_TENANT = "acme"
ADMIN_TENANT = "fuzz"  # admin routes may disable or rewire it: never the SCIM tenant
SCIM = "/scim/{tenant_slug}/v2"
ADMIN = "/admin/v1/tenants/{slug}"
EXAMPLES = 6  # per route and generation mode, on top of the coverage phase: bounded run time
ANSWER_WITHIN_S = 2.0

Schema = dict[str, Any]


# -- the document ---------------------------------------------------------------


def string(**limits: Any) -> Schema:
    return {"type": "string", **limits}


def choice(*values: Any) -> Schema:
    """One of `values` (real ids, names, URN lists): the negative mode strays."""
    return {"enum": list(values)}


def choice_or_text(*values: Any) -> Schema:
    """One of `values`, or any text (a filter, a path: to reach the parsers)."""
    return {"anyOf": [choice(*values), string()]}


def obj(required: tuple[str, ...] = (), /, **properties: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def array(items: Schema, most: int = 3) -> Schema:
    return {"type": "array", "items": items, "maxItems": most}


def param(name: str, where: str, schema: Schema) -> Schema:
    return {"name": name, "in": where, "required": where == "path", "schema": schema}


TEXT = string(minLength=1, maxLength=40)
BOOL: Schema = {"type": "boolean"}
INT: Schema = {"type": "integer"}
ANY: Schema = {}
FILTERS = choice_or_text(
    'userName eq "ann@example.com"',
    f'id eq "{USER_ID}"',
    'emails[type eq "work" and value co "@"]',
    "not (active eq true) or title pr",
    f'{ENTERPRISE_USER_SCHEMA}:department sw "E"',
    'displayName eq "Team"',
    'meta.lastModified gt "2020-01-01T00:00:00Z"',
)
PATHS = choice_or_text(
    "title", "active", "userName", "name.givenName", 'emails[type eq "work"].value',
    f"{ENTERPRISE_USER_SCHEMA}:department", "members", f'members[value eq "{USER_ID}"]',
    "displayName", "externalId", "id", "meta.created",
)  # fmt: skip
MEMBER = obj(("value",), value=choice(USER_ID, FOREIGN_USER), type=choice("User"))


def user(user_name: Schema) -> Schema:
    return obj(
        ("schemas", "userName"),
        schemas=choice([USER_SCHEMA], [USER_SCHEMA, ENTERPRISE_USER_SCHEMA, LMS_USER_SCHEMA]),
        userName=user_name,
        externalId=TEXT,
        active=BOOL,
        displayName=TEXT,
        title=TEXT,
        name=obj(givenName=TEXT, familyName=TEXT, formatted=TEXT),
        emails=array(obj(value=TEXT, type=choice("work", "home"), primary=BOOL), 2),
        phoneNumbers=array(obj(value=TEXT, type=choice("mobile"))),
        groups=array(MEMBER),
        password=TEXT,
        **{
            ENTERPRISE_USER_SCHEMA: obj(
                department=TEXT, organization=TEXT, manager=obj(value=TEXT)
            ),
            LMS_USER_SCHEMA: obj(team=TEXT),
        },
    )


USER = user(TEXT)
# A replaced user keeps its own userName (any other is mostly taken by then).
REPLACED_USER = user(choice_or_text("ann@example.com"))
GROUP = obj(
    ("schemas", "displayName"),
    schemas=choice([GROUP_SCHEMA]),
    displayName=TEXT,
    externalId=TEXT,
    members=array(MEMBER),
)
PATCH_OPS = {
    "anyOf": [
        obj(("op", "path", "value"), op=choice("add", "Replace"), path=choice("title"), value=TEXT),
        obj(("op", "path", "value"), op=choice("replace"), path=choice("active"), value=BOOL),
        obj(("op", "path"), op=choice("remove"), path=choice("title", "externalId")),
        obj(
            ("op", "path", "value"),
            op=choice("add"),
            path=choice("members"),
            value=array(obj(("value",), value=choice(USER_ID)), 1),
        ),
        obj(("op",), op=choice("add", "replace", "remove"), path=PATHS, value=ANY),
    ]
}
PATCH_OP = obj(
    ("schemas", "Operations"),
    schemas=choice([PATCH_OP_SCHEMA]),
    Operations={**array(PATCH_OPS), "minItems": 1},
)
SEARCH = obj(
    schemas=choice([SEARCH_REQUEST_SCHEMA]),
    filter=FILTERS,
    startIndex=INT,
    count=INT,
    attributes=array(TEXT),
    excludedAttributes=array(TEXT),
)
LIST_QUERY = [
    param("filter", "query", FILTERS),
    param("startIndex", "query", INT),
    param("count", "query", INT),
    param("attributes", "query", choice_or_text("userName,emails", "members", "name.givenName")),
    param("excludedAttributes", "query", choice_or_text("groups", "members", "emails.value")),
]
VIEW_QUERY = LIST_QUERY[3:]
IF_MATCH = param("If-Match", "header", choice("*", 'W/"1"', 'W/"999", W/"2"'))
OVERRIDE = param("X-HTTP-Method-Override", "header", choice("PATCH", "patch", "POST"))


def op(
    params: list[Schema] | None = None, body: Schema | None = None, media: str = "scim"
) -> Schema:
    operation: Schema = {"responses": {"default": {"description": "any answer"}}}
    if params:
        operation["parameters"] = params
    if body is not None:
        types = ["application/scim+json"] if media == "scim" else ["application/json"]
        operation["requestBody"] = {
            "required": True,
            "content": {t: {"schema": body} for t in types},
        }
    return operation


def scim_paths() -> dict[str, Schema]:
    tenant = [param("tenant_slug", "path", choice(SCIM_TENANT))]
    paths: dict[str, Schema] = {}
    for name, body, new, live, spare in (
        ("Users", REPLACED_USER, USER, USER_ID, SPARE_USER),
        ("Groups", GROUP, GROUP, GROUP_ID, GROUP_ID),
    ):
        one = [*tenant, param("rid", "path", choice(live, FOREIGN_USER))]
        paths[f"{SCIM}/{name}"] = {
            "get": op([*tenant, *LIST_QUERY]),
            "post": op([*tenant, *VIEW_QUERY], new),
        }
        paths[f"{SCIM}/{name}/.search"] = {"post": op(tenant, SEARCH)}
        paths[f"{SCIM}/{name}/{{rid}}"] = {
            "get": op([*one, *VIEW_QUERY, param("If-None-Match", "header", TEXT)]),
            "put": op([*one, *VIEW_QUERY, IF_MATCH], body),
            "patch": op([*one, *VIEW_QUERY, IF_MATCH], PATCH_OP),
            # POST with X-HTTP-Method-Override (PingFederate); never DELETE here.
            "post": op([*one, *VIEW_QUERY, IF_MATCH, OVERRIDE], PATCH_OP),
            # Last, and of a spare resource where there is one.
            "delete": op([*tenant, param("rid", "path", choice(spare)), IF_MATCH]),
        }
    paths[f"{SCIM}/.search"] = {"post": op(tenant, SEARCH)}
    for name in ("Me", "Bulk"):
        paths[f"{SCIM}/{name}"] = {"get": op(tenant), "post": op(tenant, obj())}
    for name, sub, values in (
        ("ServiceProviderConfig", None, ()),
        ("ResourceTypes", "name", ("User", "group")),
        ("Schemas", "urn", (USER_SCHEMA, ENTERPRISE_USER_SCHEMA)),
    ):
        paths[f"{SCIM}/{name}"] = {"get": op(tenant)}
        if sub:
            paths[f"{SCIM}/{name}/{{{sub}}}"] = {
                "get": op([*tenant, param(sub, "path", choice(*values))])
            }
    return paths


#: Admin operations the fuzzer leaves alone, and why.
NOT_FUZZED = {
    ("delete", ADMIN): "purges the tenant every other admin route is fuzzed on "
    "(tests/integration/lifecycle covers it)",
    ("get", "/admin/v1/schema/{path}"): "Litestar's HTML 404 for a schema file it does not serve",
}
#: Writes that cannot both succeed and be refused here: an erasure needs a
#: user of the admin tenant, a test delivery a webhook set just before, and
#: approve and cancel something held (with nothing held both are a 409:
#: tests/integration/admin/test_admin_breaker.py holds users first).
WRITES_NOT_BOTH = ("/erasures", "/webhook/test", "/breaker/approve", "/breaker/cancel")


SCIM_OPENAPI: Schema = {
    "openapi": "3.0.3",
    "info": {"title": "scim-bridge SCIM (as the fuzzer sees it)", "version": "1"},
    "paths": {
        **scim_paths(),
        "/healthz": {"get": op()},
        "/readyz": {"get": op()},
        "/metrics": {"get": op()},
        "/admin/v1/schema": {"get": op()},
        "/admin/v1/schema/openapi.json": {"get": op()},
    },
}


def generated_admin_document() -> Schema:
    """The admin API's document as `/admin/v1/schema` serves it, less the
    operations in NOT_FUZZED."""
    document: Schema = create_app(Settings()).openapi_schema.to_schema()
    paths: Schema = {}
    for path, item in document["paths"].items():
        kept = {m: o for m, o in item.items() if (m, path) not in NOT_FUZZED}
        if kept:
            paths[path] = kept
    return {**document, "paths": paths}


ADMIN_OPENAPI = generated_admin_document()


def is_web_page(path: str) -> bool:
    """The admin web pages (HTML forms behind a session cookie) are not
    described: the junk suite sends every method with junk to them."""
    return path.startswith("/admin") and not path.startswith("/admin/v1/")


def test_the_document_names_every_route_the_app_serves() -> None:
    def plain(path: str) -> str:
        return re.sub(r"\{([^}:]+)(:[^}]*)?\}", r"{\1}", path)

    served = {
        (method.lower(), plain(route.path))
        for route in create_app().routes
        for method in getattr(route, "methods", ())
        if method not in ("OPTIONS", "HEAD") and not is_web_page(route.path)
    }
    described = {
        (m, p)
        for document in (SCIM_OPENAPI, ADMIN_OPENAPI)
        for p, item in document["paths"].items()
        for m in item
    }
    assert described | set(NOT_FUZZED) == served


def test_the_generated_admin_document_is_complete() -> None:
    """Every admin operation says what it takes and what it answers: typed
    bodies, query parameters and answers, and the refusals' shape."""
    for path, item in ADMIN_OPENAPI["paths"].items():
        for method, operation in item.items():
            where = f"{method} {path}"
            responses = operation["responses"]
            success = [r for status, r in responses.items() if status.startswith("2")]
            assert success, where
            assert all("content" in r for r in success), where
            for status in ("400", "401", "403", "404"):
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, where
            for name in re.findall(r"\{(\w+)\}", path):
                assert any(p["name"] == name for p in operation["parameters"]), where
            if method in ("put", "patch") or (method == "post" and "requestBody" in operation):
                assert operation["requestBody"]["content"]["application/json"]["schema"], where
    failed = ADMIN_OPENAPI["paths"][f"{ADMIN}/users/failed"]["get"]["parameters"]
    limits = {p["name"]: p["schema"] for p in failed if p["in"] == "query"}
    assert limits["limit"]["maximum"] == 500
    assert limits["offset"]["minimum"] == 0


# -- the run --------------------------------------------------------------------


class Target:
    """The API process under fuzz, one keep-alive session, and the store as
    it was after the previous request (nothing else writes meanwhile)."""

    def __init__(self, api: ApiProcess, world: World, redis_url: str) -> None:
        self.api = api
        self.world = world
        self.redis_url = redis_url
        self.session = requests.Session()
        self.store = snapshot(redis_url)
        self.answers: Counter[tuple[str, str, int]] = Counter()

    def after_call(self, method: str, path: str, status: int) -> tuple[object, object]:
        """(the store before the last call, after it)."""
        before, self.store = self.store, snapshot(self.redis_url)
        self.answers[(method, path, status // 100)] += 1
        return before, self.store


@pytest.fixture(scope="module")
def target(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    url = hardening_url(redis_server.url)
    world = seed_world(url, SCIM_TENANT, ADMIN_TENANT)
    # The fuzzer's negative cases send no or broken credentials by the
    # hundred: they test each refusal, not the failure throttle (which
    # would then answer every request, the right token too, with a 429).
    workdir = tmp_path_factory.mktemp("schemathesis")
    with api_process(url, workdir, BRIDGE_AUTH_FAILURES_PER_MINUTE="1000000") as api:
        found = Target(api, world, url)
        yield found
        found.session.close()
        assert api.alive(), api.log_text()[-3000:]
        assert "Traceback" not in api.log_text(), api.log_text()[-3000:]


def fuzzing(document: Schema) -> OpenApiSchema:
    schema = schemathesis.openapi.from_dict(document)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    # Every method on every route is the junk suite's (test_hardening_junk.py).
    schema.config.phases.coverage.unexpected_methods = set()
    return schema


scim_schema = fuzzing(SCIM_OPENAPI)
admin_schema = fuzzing(ADMIN_OPENAPI)
RUN = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,  # the same requests every run: CI stays reproducible
)


def check(case: schemathesis.Case[Any], target: Target) -> None:
    """Send `case` and check the answer: quick, never a 5xx, a refusal in
    the route's shape that changed nothing."""
    path = case.operation.path
    admin = path.startswith("/admin/")
    # /metrics is read by Prometheus with the operator token, as deployed.
    operator = admin or path == "/metrics"
    bearer = ADMIN_TOKEN if operator else target.world.tokens[SCIM_TENANT]
    started = time.monotonic()
    response = case.call(
        base_url=target.api.url,
        session=target.session,
        headers={"Authorization": f"Bearer {bearer}"},
    )
    elapsed = time.monotonic() - started
    before, after = target.after_call(case.method, path, response.status_code)
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    unsupported = response.status_code == 501 and path.endswith(("/Me", "/Bulk"))
    assert response.status_code < 500 or unsupported, f"{where}: {response.text[:500]}"
    assert elapsed < ANSWER_WITHIN_S, f"{where} took {elapsed:.2f}s"
    if response.status_code < 400:
        return
    assert "Traceback" not in response.text, where
    body = response.json()
    status = str(response.status_code)
    if admin:
        assert {"error", "detail"} <= set(body), where
        assert response.headers.get("x-content-type-options") == ["nosniff"], where
    else:
        assert body.get("schemas") == [ERROR_SCHEMA], where
        assert body.get("status") == status, where
    assert body["detail"], where
    assert after == before, f"{where} changed the store"


@scim_schema.parametrize()
@RUN
@pytest.mark.processes
def test_fuzzed_scim_requests_get_quick_well_formed_answers_and_refusals_change_nothing(
    case: schemathesis.Case[Any], target: Target
) -> None:
    check(case, target)


@admin_schema.parametrize()
@RUN
@pytest.mark.processes
def test_fuzzed_admin_requests_from_the_generated_document(
    case: schemathesis.Case[Any], target: Target
) -> None:
    if "slug" in (case.path_parameters or {}):
        case.path_parameters["slug"] = ADMIN_TENANT  # never the SCIM tenant
    check(case, target)


@pytest.mark.processes
def test_the_fuzzer_reached_the_handlers(target: Target) -> None:
    """Real coverage: every write was both accepted and refused at least once."""
    writes = [
        (method.upper(), path)
        for document in (SCIM_OPENAPI, ADMIN_OPENAPI)
        for path, item in document["paths"].items()
        for method in item
        if method in ("post", "put", "patch")
        and not path.endswith(("/Me", "/Bulk", "/preview", *WRITES_NOT_BOTH))
    ]
    missing = [
        (method, path, kind)
        for method, path in writes
        for kind in (2, 4)
        if not target.answers[(method, path, kind)]
    ]
    assert not missing, missing
