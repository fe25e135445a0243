"""Schemathesis against a real API process: every SCIM and admin route.

The SCIM routes have no OpenAPI document (RFC 7644 describes them, and
/Schemas), and the admin API's generated one (/admin/v1/schema) describes
any string where the fuzzer needs real resources. `OPENAPI` below is
written for the fuzzer instead: each route with its parameters, headers
and request bodies, loose enough that schemathesis reaches the handlers'
own validation, and aimed at real resources (fixed ids seeded into the
store). Tests check it names every route the app serves (the admin web
pages, HTML forms behind a session cookie, are left to the junk suite) and
every operation of the generated admin document but those in
`NOT_FUZZED`, so a new route cannot go unfuzzed.

Each generated request (conforming and not; schemathesis's coverage phase
adds boundary values and a wrong type for every property, its fuzzing phase
EXAMPLES random cases per mode; the same cases every run) must be answered
within ANSWER_WITHIN_S and never with a 5xx (501 for /Me and /Bulk is the
RFC's answer); a refusal must have the route's error shape (a SCIM Error
under /scim, `{"error", "detail"}` under /admin/v1, where a route or method
the router does not know is still answered in the SCIM shape by the app's
handler: reported) and must leave the keyspace as it was. A last test checks
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

from api.app import create_app
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


def admin_paths() -> dict[str, Schema]:
    slug = [param("slug", "path", choice(ADMIN_TENANT))]
    page = [param("offset", "query", INT), param("limit", "query", INT)]
    tenant_fields: dict[str, Schema] = {
        "name": TEXT,
        "lms_url": choice("https://lms.test/org/x", "http://127.0.0.1:9/org/y"),
        "lms_api_key": TEXT,
        "lms_rate": {"type": "number", "minimum": 0.5, "maximum": 10_000},
        "lms_burst": {"type": "integer", "minimum": 1, "maximum": 100_000},
        "enabled": BOOL,
    }
    label = obj(label=TEXT)
    mapping = obj(
        fields=obj(
            job_role=obj(sources=array(choice("title", 'emails[type eq "work"].value'))),
            team=obj(drop=BOOL),
        ),
        team_from_groups=obj(patterns=array(TEXT)),
    )
    breaker = obj(enabled=BOOL, share={"type": "number"}, min_learners=INT, window_s=INT)

    def admin(params: list[Schema] | None = None, body: Schema | None = None) -> Schema:
        return op([*slug, *(params or [])], body, media="json")

    slug_pattern = string(pattern="^[a-z0-9][a-z0-9-]{0,20}[a-z0-9]$")
    return {
        "/admin/v1/tenants": {
            "get": op(),
            "post": op(
                body=obj(("slug", "lms_url", "lms_api_key"), slug=slug_pattern, **tenant_fields),
                media="json",
            ),
        },
        ADMIN: {"get": admin(), "patch": admin(body=obj(**tenant_fields))},
        f"{ADMIN}/tokens": {"get": admin(), "post": admin(body=label)},
        f"{ADMIN}/tokens/{{token_id}}": {"delete": admin([param("token_id", "path", TEXT)])},
        f"{ADMIN}/admin-keys": {"get": admin(), "post": admin(body=label)},
        f"{ADMIN}/admin-keys/{{key_id}}": {"delete": admin([param("key_id", "path", TEXT)])},
        f"{ADMIN}/mapping": {"get": admin(), "put": admin(body=mapping), "delete": admin()},
        f"{ADMIN}/mapping/preview": {"post": admin(body=USER)},
        f"{ADMIN}/status": {"get": admin()},
        f"{ADMIN}/users/failed": {"get": admin(page)},
        f"{ADMIN}/users/{{user_id}}": {
            "get": admin([param("user_id", "path", choice(FOREIGN_USER)), *page[1:]])
        },
        f"{ADMIN}/replay": {"post": admin(body=obj(user_id=choice(FOREIGN_USER)))},
        f"{ADMIN}/breaker": {"get": admin(), "put": admin(body=breaker)},
        f"{ADMIN}/breaker/approve": {"post": admin()},
        f"{ADMIN}/breaker/cancel": {"post": admin()},
        f"{ADMIN}/reconcile": {"get": admin(), "post": admin(body=obj(repair=BOOL))},
        f"{ADMIN}/erasures": {"post": admin(body=obj(("user",), user=choice(FOREIGN_USER)))},
        f"{ADMIN}/webhook": {
            "get": admin(),
            "put": admin(
                body=obj(
                    ("url",),
                    url=choice("https://hooks.example.com/scim", "http://127.0.0.1:9/hook"),
                    secret=string(minLength=16, maxLength=40),
                )
            ),
            "delete": admin(),
        },
        f"{ADMIN}/webhook/test": {"post": admin()},
        "/admin/v1/schema": {"get": op()},
        "/admin/v1/schema/openapi.json": {"get": op()},
    }


#: Admin operations the fuzzer leaves alone, and why.
NOT_FUZZED = {
    ("delete", ADMIN): "purges the tenant every other admin route is fuzzed on "
    "(tests/integration/lifecycle covers it)",
    ("get", "/admin/v1/schema/{path}"): "Litestar's HTML 404 for a schema file it does not serve",
}
#: Writes that cannot both succeed and be refused here: an erasure needs a
#: user of the admin tenant, a test delivery a webhook set just before.
WRITES_NOT_BOTH = ("/erasures", "/webhook/test")


OPENAPI: Schema = {
    "openapi": "3.0.3",
    "info": {"title": "scim-bridge (as the fuzzer sees it)", "version": "1"},
    "paths": {
        **scim_paths(),
        **admin_paths(),
        "/healthz": {"get": op()},
        "/readyz": {"get": op()},
        "/metrics": {"get": op()},
    },
}


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
    described = {(m, p) for p, item in OPENAPI["paths"].items() for m in item}
    assert described | set(NOT_FUZZED) == served


def test_the_document_covers_the_generated_admin_document() -> None:
    generated = create_app().openapi_schema.to_schema()["paths"]
    admin = {(m, p) for p, item in generated.items() for m in item}
    fuzzed = {
        (m, p)
        for p, item in OPENAPI["paths"].items()
        for m in item
        if p.startswith("/admin/v1/tenants")
    }
    left_out = {(m, p) for m, p in NOT_FUZZED if p.startswith("/admin/v1/tenants")}
    assert fuzzed | left_out == admin


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
    with api_process(url, tmp_path_factory.mktemp("schemathesis")) as api:
        found = Target(api, world, url)
        yield found
        found.session.close()
        assert api.alive(), api.log_text()[-3000:]
        assert "Traceback" not in api.log_text(), api.log_text()[-3000:]


schema = schemathesis.openapi.from_dict(OPENAPI)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
# Every method on every route is the junk suite's (test_hardening_junk.py).
schema.config.phases.coverage.unexpected_methods = set()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,  # the same requests every run: CI stays reproducible
)
@pytest.mark.processes
def test_fuzzed_requests_get_quick_well_formed_answers_and_refusals_change_nothing(
    case: schemathesis.Case[Any], target: Target
) -> None:
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
    scim_shape = body.get("schemas") == [ERROR_SCHEMA] and body.get("status") == status
    admin_shape = {"error", "detail"} <= set(body)
    if not admin:
        assert scim_shape, where
        assert body["detail"], where
    elif response.status_code in (404, 405):
        # No such admin route or method: the app's own handler answers, in the
        # SCIM shape (reported to the lead; either shape is accepted here).
        assert scim_shape or admin_shape, where
    else:
        assert admin_shape, where
        assert body["detail"], where
    assert after == before, f"{where} changed the store"


@pytest.mark.processes
def test_the_fuzzer_reached_the_handlers(target: Target) -> None:
    """Real coverage: every write was both accepted and refused at least once."""
    writes = [
        (method.upper(), path)
        for path, item in OPENAPI["paths"].items()
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
