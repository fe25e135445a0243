"""SCIM routes under /scim/<tenant>/v2 (RFC 7644 §3): thin handlers over
`UserEndpoint` and `GroupEndpoint` (api/endpoints/).

A handler parses HTTP (the body, If-Match / If-None-Match, the query) and
hands the endpoint plain values. These are the hottest routes, so two
measured shortcuts stay: headers are read straight from the ASGI scope
(`scim_io.header`, no header mapping built per request), and the tenant is
authenticated by a direct call rather than through dependency injection
(`_tenant`); the API benchmark (bench/api_bench.py) holds both.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, delete, get, patch, post, put
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from api.auth import scim_tenant
from api.endpoints import ListQuery, ResourceEndpoint, View, search_all
from api.routes.discovery import TenantDep, discovery_handlers
from api.scim_io import ScimResponse, header, read_json_object, scim_response
from scim.errors import InvalidSyntax, InvalidValue, MethodNotAllowed, ScimError
from scim.quirks import method_override
from scim.schema import SEARCH_REQUEST_SCHEMA
from shadow import Tenant

Req = Request[Any, Any, Any]


def _endpoint(request: Req, name: str) -> ResourceEndpoint:
    endpoints: dict[str, ResourceEndpoint] = request.app.state.endpoints
    return endpoints[name]


def _split_names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    return names or None


def _int_param(name: str, raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidValue(f"{name} must be an integer, not {raw[:40]!r}") from None


def view_from_params(request: Req) -> View:
    """`attributes` / `excludedAttributes` of any request (RFC 7644 §3.9)."""
    params = {k.lower(): v for k, v in request.query_params.items()}
    return View(
        attributes=_split_names(params.get("attributes")),
        excluded=_split_names(params.get("excludedattributes")),
    )


def query_from_params(request: Req) -> ListQuery:
    """List parameters, names matched case-insensitively (RFC 7644 §3.4.2)."""
    params = {k.lower(): v for k, v in request.query_params.items()}
    start = _int_param("startIndex", params.get("startindex"))
    return ListQuery(
        filter=params.get("filter"),
        start_index=1 if start is None else start,
        count=_int_param("count", params.get("count")),
        attributes=_split_names(params.get("attributes")),
        excluded_attributes=_split_names(params.get("excludedattributes")),
    )


def query_from_body(body: dict[str, Any]) -> ListQuery:
    """A SearchRequest body (RFC 7644 §3.4.3)."""
    lowered = {k.lower(): v for k, v in body.items()}
    schemas = lowered.get("schemas")
    if schemas is not None and (
        not isinstance(schemas, list) or SEARCH_REQUEST_SCHEMA not in schemas
    ):
        raise InvalidSyntax(f"schemas must contain {SEARCH_REQUEST_SCHEMA}")

    def names(key: str) -> list[str] | None:
        value = lowered.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return _split_names(value)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value or None
        raise InvalidValue(f"{key} must be a list of attribute names")

    def number(key: str) -> int | None:
        value = lowered.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(f"{key} must be an integer")
        return value

    flt = lowered.get("filter")
    if flt is not None and not isinstance(flt, str):
        raise InvalidValue("filter must be a string")
    start = number("startindex")
    return ListQuery(
        filter=flt,
        start_index=1 if start is None else start,
        count=number("count"),
        attributes=names("attributes"),
        excluded_attributes=names("excludedattributes"),
    )


async def _body(request: Req) -> dict[str, Any]:
    """The request body as a JSON object, within the configured size."""
    return await read_json_object(request, request.app.state.services.settings.max_body_bytes)


async def _search_body(request: Req) -> ListQuery:
    return query_from_body(await _body(request))


def _if_match(request: Req) -> str | None:
    return header(request, b"if-match")


async def _tenant(request: Req) -> Tenant:
    """The authenticated tenant, called directly by the resource handlers (the
    hottest routes) rather than through dependency injection."""
    return await scim_tenant(request, request.path_params["tenant_slug"])


async def _replace(request: Req, name: str) -> ScimResponse:
    tenant, rid = await _tenant(request), request.path_params["rid"]
    view = view_from_params(request)
    body = await _body(request)
    return await _endpoint(request, name).replace(tenant, rid, body, _if_match(request), view)


async def _modify(request: Req, name: str) -> ScimResponse:
    tenant, rid = await _tenant(request), request.path_params["rid"]
    view = view_from_params(request)
    body = await _body(request)
    return await _endpoint(request, name).patch(tenant, rid, body, _if_match(request), view)


async def _remove(request: Req, name: str) -> ScimResponse:
    tenant, rid = await _tenant(request), request.path_params["rid"]
    return await _endpoint(request, name).delete(tenant, rid, _if_match(request))


_OVERRIDES = {"PUT": _replace, "PATCH": _modify, "DELETE": _remove}


def _resource_handlers(name: str) -> list[Any]:
    base = f"/{name}"

    @get(base, name=f"{name}-list")
    async def list_resources(request: Req) -> ScimResponse:
        tenant = await _tenant(request)
        return await _endpoint(request, name).search(tenant, query_from_params(request))

    @post(f"{base}/.search", name=f"{name}-search", status_code=200)
    async def search(request: Req) -> ScimResponse:
        tenant = await _tenant(request)
        return await _endpoint(request, name).search(tenant, await _search_body(request))

    @post(base, name=f"{name}-create")
    async def create(request: Req) -> ScimResponse:
        tenant = await _tenant(request)
        view = view_from_params(request)
        return await _endpoint(request, name).create(tenant, await _body(request), view)

    @get(f"{base}/{{rid:str}}", name=f"{name}-get")
    async def read(request: Req) -> ScimResponse:
        tenant, rid = await _tenant(request), request.path_params["rid"]
        if_none_match = header(request, b"if-none-match")
        return await _endpoint(request, name).get(
            tenant, rid, if_none_match, view_from_params(request)
        )

    @put(f"{base}/{{rid:str}}", name=f"{name}-replace")
    async def replace(request: Req) -> ScimResponse:
        return await _replace(request, name)

    @patch(f"{base}/{{rid:str}}", name=f"{name}-patch")
    async def modify(request: Req) -> ScimResponse:
        return await _modify(request, name)

    @delete(f"{base}/{{rid:str}}", name=f"{name}-delete", status_code=200)
    async def remove(request: Req) -> ScimResponse:
        return await _remove(request, name)

    @post(f"{base}/{{rid:str}}", name=f"{name}-override", status_code=200)
    async def overridden(request: Req) -> ScimResponse:
        """POST with X-HTTP-Method-Override (PingFederate; `quirks.method_override`)."""
        wanted = method_override("POST", header(request, b"x-http-method-override"))
        if wanted is None:
            raise MethodNotAllowed(
                "POST is not allowed on a resource; use PUT, PATCH or DELETE",
                headers={"Allow": "GET, PUT, PATCH, DELETE"},
            )
        return await _OVERRIDES[wanted](request, name)

    return [list_resources, search, create, read, replace, modify, remove, overridden]


@post("/.search", name="root-search", status_code=200)
async def root_search(request: Req, tenant: TenantDep) -> ScimResponse:
    """Search across Users and Groups (RFC 7644 §3.4.3)."""
    query = await _search_body(request)
    return scim_response(await search_all(request.app.state.endpoints, tenant, query))


@get(["/Me", "/Bulk"], name="not-implemented")
async def not_implemented_get(tenant: TenantDep) -> ScimResponse:
    raise ScimError("not implemented by this service provider", status=501)


@post(["/Me", "/Bulk"], name="not-implemented-post")
async def not_implemented_post(tenant: TenantDep) -> ScimResponse:
    raise ScimError("not implemented by this service provider", status=501)


# The endpoints under a tenant's base URL, by lower-cased name.
_SEGMENTS = {
    name.lower(): name
    for name in (
        "Users", "Groups", "ServiceProviderConfig", "ResourceTypes", "Schemas", "Me", "Bulk",
        ".search",
    )
}  # fmt: skip


def canonical_scim_path(path: str) -> str:
    """`/scim/<t>/V2/users/.SEARCH` as `/scim/<t>/v2/Users/.search`: endpoint
    names in any letter case. RFC 7644 §3.2 spells them in one case, but
    clients written against other servers send `/users`, and no two
    endpoints differ in case only, so this changes no meaning. Ids and
    other segments are left as they are; the same object comes back when
    nothing changes."""
    parts = path.split("/", 6)
    if len(parts) < 5 or parts[1] != "scim":
        return path
    fixed = list(parts)
    if parts[3].lower() == "v2":
        fixed[3] = "v2"
    fixed[4] = _SEGMENTS.get(parts[4].lower(), parts[4])
    if len(parts) > 5 and parts[5].lower() == ".search":
        fixed[5] = ".search"
    return path if fixed == parts else "/".join(fixed)


class ScimPathCase:
    """ASGI wrapper that gives SCIM endpoint names their canonical case
    before Litestar routes the request (`canonical_scim_path`)."""

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            path = scope["path"]
            fixed = canonical_scim_path(path)
            if fixed is not path:
                scope["path"] = fixed
        await self.app(scope, receive, send)


def scim_router() -> Router:
    return Router(
        path="/scim/{tenant_slug:str}/v2",
        route_handlers=[
            *_resource_handlers("Users"),
            *_resource_handlers("Groups"),
            root_search,
            not_implemented_get,
            not_implemented_post,
            *discovery_handlers(),
        ],
        dependencies={"tenant": Provide(scim_tenant)},
        include_in_schema=False,  # described by /Schemas and /ResourceTypes (RFC 7644)
    )
