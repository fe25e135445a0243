"""Admin routes for tenants, their SCIM tokens, admin keys and mappings.

Thin handlers: authorise, decode, call the store, return JSON. The LMS API
key is write-only (never in an answer); a SCIM token or admin key is shown
once, when issued.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody
from redis.exceptions import RedisError

from api.admin.auth import AdminDep, audit, reach_tenant, require_operator
from api.admin.errors import AdminError
from api.admin.schemas import (
    JsonBody,
    KeyIssue,
    TenantCreate,
    TenantUpdate,
    TokenIssue,
    json_body,
    set_fields,
)
from api.services import Services
from mappings import (
    MappingConfigError,
    MappingOverrides,
    build_rules,
    decode_overrides,
    encode_overrides,
)
from ops.views import check_tenant_settings, tenant_health, tenant_view
from scim.resource import canonicalize
from scim.schema import USER_RESOURCE
from shadow import MappingStore, Tenant, TenantError
from shadow.admin_keys import AdminKeyStore
from worker.rules import enqueue_rules_resync

Req = Request[Any, Any, Any]
Json = dict[str, Any]

#: What a tenant admin key may change about its own tenant; the rest
#: (where the LMS is and how hard it may be driven) is the operator's.
TENANT_KEY_FIELDS = frozenset({"name", "lms_api_key", "enabled"})


def _services(request: Req) -> Services:
    services: Services = request.app.state.services
    return services


def _problems(values: Json) -> None:
    problems = check_tenant_settings(values)
    if problems:
        raise AdminError(422, "; ".join(problems))


@get("/tenants", name="admin-tenants-list")
async def list_tenants(request: Req, principal: AdminDep) -> Json:
    """Every tenant with its health (operator only)."""
    require_operator(principal)
    s = _services(request)
    views = []
    for slug in await s.tenants.slugs():
        tenant = await s.tenants.get(slug)
        if tenant is not None:
            views.append({**tenant_view(tenant, s.settings), **await tenant_health(s.redis, slug)})
    return {"tenants": views}


@post("/tenants", name="admin-tenants-create", status_code=201, dto=json_body(TenantCreate))
async def create_tenant(request: Req, principal: AdminDep, data: JSONBody[TenantCreate]) -> Json:
    """Create a tenant (operator only)."""
    require_operator(principal)
    body = data
    values = msgspec.structs.asdict(body)
    values["name"] = body.name or body.slug
    _problems(values)
    s = _services(request)
    try:
        tenant = await s.tenants.create(Tenant(**values))
    except TenantError as exc:
        status = 409 if "already exists" in str(exc) else 422
        raise AdminError(status, str(exc)) from None
    request.state.tenant = tenant.slug
    audit(request, principal, "tenant create")
    return tenant_view(tenant, s.settings)


@get("/tenants/{slug:str}", name="admin-tenant-read")
async def read_tenant(request: Req, principal: AdminDep, slug: FromPath[str]) -> Json:
    tenant = await reach_tenant(request, principal, slug)
    return tenant_view(tenant, _services(request).settings)


@patch("/tenants/{slug:str}", name="admin-tenant-update", dto=json_body(TenantUpdate))
async def update_tenant(
    request: Req, principal: AdminDep, slug: FromPath[str], data: JSONBody[TenantUpdate]
) -> Json:
    """Change any of name, lms_url, lms_api_key, lms_rate, lms_burst, enabled,
    scim_rate, scim_burst.

    A tenant key may change name, lms_api_key and enabled; the LMS URL and
    its rate and burst, and the tenant's SCIM request rate and burst, are
    the operator's."""
    tenant = await reach_tenant(request, principal, slug)
    values = set_fields(data)
    if not principal.operator and (denied := sorted(set(values) - TENANT_KEY_FIELDS)):
        raise AdminError(403, f"only the operator may change {', '.join(denied)}")
    _problems(values)
    tenant = msgspec.structs.replace(tenant, **values)  # never mutate the cached one
    s = _services(request)
    await s.tenants.save(tenant)
    audit(request, principal, "tenant update", fields=sorted(values))
    return tenant_view(tenant, s.settings)


# -- SCIM tokens ---------------------------------------------------------------


@get("/tenants/{slug:str}/tokens", name="admin-tokens-list")
async def list_tokens(request: Req, principal: AdminDep, slug: FromPath[str]) -> Json:
    await reach_tenant(request, principal, slug)
    tokens = await _services(request).tenants.list_tokens(slug)
    return {"tenant": slug, "tokens": msgspec.to_builtins(tokens)}


@post(
    "/tenants/{slug:str}/tokens",
    name="admin-tokens-issue",
    status_code=201,
    dto=json_body(TokenIssue),
)
async def issue_token(
    request: Req, principal: AdminDep, slug: FromPath[str], data: JSONBody[TokenIssue | None] = None
) -> Json:
    """Issue a SCIM token: shown this once, with the SCIM URL to copy."""
    await reach_tenant(request, principal, slug)
    body = data or TokenIssue()
    s = _services(request)
    days = body.expires_in_days
    issued = await s.tenants.issue_token(
        slug, label=body.label, expires_in_s=days * 86_400 if days else None
    )
    audit(request, principal, "token issue", token_id=issued.token_id)
    return {
        "tenant": slug,
        "token_id": issued.token_id,
        "token": issued.token,
        "scim_url": s.settings.scim_url(slug),
        "expires_at": issued.expires_at,
    }


@delete("/tenants/{slug:str}/tokens/{token_id:str}", name="admin-tokens-revoke", status_code=200)
async def revoke_token(
    request: Req, principal: AdminDep, slug: FromPath[str], token_id: FromPath[str]
) -> Json:
    await reach_tenant(request, principal, slug)
    if not await _services(request).tenants.revoke_token(slug, token_id):
        raise AdminError(404, "no such token")
    audit(request, principal, "token revoke", token_id=token_id)
    return {"tenant": slug, "token_id": token_id, "revoked": True}


# -- admin keys (operator only) -------------------------------------------------


@get("/tenants/{slug:str}/admin-keys", name="admin-keys-list")
async def list_admin_keys(request: Req, principal: AdminDep, slug: FromPath[str]) -> Json:
    require_operator(principal)
    await reach_tenant(request, principal, slug)
    found = await AdminKeyStore(_services(request).redis).list_keys(slug)
    return {
        "tenant": slug,
        "keys": [
            {
                "key_id": k.token_id,
                "created_at": k.created_at,
                "label": k.label,
                "last_used_at": k.last_used_at,
            }
            for k in found
        ],
    }


@post(
    "/tenants/{slug:str}/admin-keys",
    name="admin-keys-issue",
    status_code=201,
    dto=json_body(KeyIssue),
)
async def issue_admin_key(
    request: Req, principal: AdminDep, slug: FromPath[str], data: JSONBody[KeyIssue | None] = None
) -> Json:
    require_operator(principal)
    await reach_tenant(request, principal, slug)
    body = data or KeyIssue()
    issued = await AdminKeyStore(_services(request).redis).issue(slug, label=body.label)
    audit(request, principal, "admin key issue", key_id=issued.key_id)
    return {"tenant": slug, "key_id": issued.key_id, "key": issued.key}


@delete("/tenants/{slug:str}/admin-keys/{key_id:str}", name="admin-keys-revoke", status_code=200)
async def revoke_admin_key(
    request: Req, principal: AdminDep, slug: FromPath[str], key_id: FromPath[str]
) -> Json:
    require_operator(principal)
    await reach_tenant(request, principal, slug)
    if not await AdminKeyStore(_services(request).redis).revoke(slug, key_id):
        raise AdminError(404, "no such admin key")
    audit(request, principal, "admin key revoke", key_id=key_id)
    return {"tenant": slug, "key_id": key_id, "revoked": True}


# -- mapping ------------------------------------------------------------------


def _invalid_mapping(exc: MappingConfigError) -> AdminError:
    return AdminError(
        422,
        "; ".join(p.message for p in exc.problems),
        error="invalid_mapping",
        problems=[{"field": p.field, "kind": p.kind, "message": p.message} for p in exc.problems],
    )


@get("/tenants/{slug:str}/mapping", name="admin-mapping-read")
async def read_mapping(request: Req, principal: AdminDep, slug: FromPath[str]) -> Json:
    """The tenant's overrides (null: the defaults) and the merged rules."""
    await reach_tenant(request, principal, slug)
    stored = await MappingStore(_services(request).redis).raw(slug)
    try:
        overrides = decode_overrides(stored) if stored else None
        rules = build_rules(overrides)
    except MappingConfigError as exc:  # stored under older rules: say what is wrong now
        return {
            "tenant": slug,
            "overrides": msgspec.json.decode(stored or b"null"),
            "rules": None,
            "problems": [p.message for p in exc.problems],
        }
    return {
        "tenant": slug,
        "overrides": msgspec.to_builtins(overrides) if overrides else None,
        "rules": msgspec.to_builtins(rules.field_rules),
    }


class OverridesBody(JsonBody[MappingOverrides]):
    """A mapping body, read as `mappings.decode_overrides` reads JSON: a
    problem is a 422 naming every field (`_invalid_mapping`)."""

    def decode_bytes(self, value: bytes) -> Any:
        return _read_overrides(value)


def _read_overrides(body: bytes) -> MappingOverrides:
    try:
        return decode_overrides(body, "json")
    except MappingConfigError as exc:
        raise _invalid_mapping(exc) from None


@put("/tenants/{slug:str}/mapping", name="admin-mapping-set", dto=OverridesBody)
async def set_mapping(
    request: Req,
    principal: AdminDep,
    slug: FromPath[str],
    data: JSONBody[MappingOverrides | None] = None,
) -> Json:
    """Replace the overrides (JSON as `mappings.decode_overrides` reads it);
    every user is then re-synced under them (`resync` in the answer)."""
    await reach_tenant(request, principal, slug)
    overrides = data if data is not None else _read_overrides(b"")
    resync = await _replace_rules(request, slug, encode_overrides(overrides))
    audit(request, principal, "mapping set")
    return {"tenant": slug, "overrides": msgspec.to_builtins(overrides), "resync": resync}


@delete("/tenants/{slug:str}/mapping", name="admin-mapping-reset", status_code=200)
async def reset_mapping(request: Req, principal: AdminDep, slug: FromPath[str]) -> Json:
    """Back to the default mapping (every user re-synced under it)."""
    await reach_tenant(request, principal, slug)
    resync = await _replace_rules(request, slug, None)
    audit(request, principal, "mapping reset")
    return {"tenant": slug, "overrides": None, "resync": resync}


async def _replace_rules(request: Req, slug: str, overrides: bytes | None) -> Json:
    """Store the rules and start the re-sync in one step, then wake a worker
    (should that fail, the sweep starts the re-sync job: it is only late)."""
    s = _services(request)
    store = MappingStore(s.redis)
    await store.replace(slug, overrides)
    with contextlib.suppress(RedisError):
        await enqueue_rules_resync(s.queue, slug)
    progress: Json = msgspec.to_builtins(await store.progress(slug))
    return progress


@post("/tenants/{slug:str}/mapping/preview", name="admin-mapping-preview", status_code=200)
async def preview_mapping(request: Req, principal: AdminDep, slug: FromPath[str]) -> Response[Json]:
    """What a SCIM user (the body) would become under the tenant's rules,
    with the groups of the stored user of the same `id` (or the groups the
    body lists), as the worker would map it."""
    await reach_tenant(request, principal, slug)
    try:
        user = msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        raise AdminError(400, f"the body is not valid JSON: {exc}") from None
    doc = canonicalize(USER_RESOURCE, user)  # a ScimError is a 400 here
    if isinstance(user, dict):
        for name in ("id", "groups"):
            if name in user:
                doc[name] = user[name]
    try:
        result = await MappingStore(_services(request).redis).preview(slug, doc)
    except MappingConfigError as exc:
        raise _invalid_mapping(exc) from None
    return Response(result, status_code=200)


TENANT_HANDLERS = [
    list_tenants,
    create_tenant,
    read_tenant,
    update_tenant,
    list_tokens,
    issue_token,
    revoke_token,
    list_admin_keys,
    issue_admin_key,
    revoke_admin_key,
    read_mapping,
    set_mapping,
    reset_mapping,
    preview_mapping,
]
