"""Admin routes for tenants, their SCIM tokens, admin keys and mappings.

Thin handlers: the router's guards authorise (`authorize_first`, and
`operator_only` on the operator's routes), its dependencies give the
services and the URL's tenant, Litestar decodes the typed body; a handler
calls the store and returns a typed answer (api/admin/answers.py). The LMS
API key is write-only (never in an answer); a SCIM token or admin key is
shown once, when issued.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
from litestar import Request, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody
from redis.exceptions import RedisError

from api.admin.answers import (
    AdminKeyInfo,
    AdminKeyList,
    IssuedAdminKeyAnswer,
    IssuedTokenAnswer,
    MappingAnswer,
    MappingSetAnswer,
    Revoked,
    TenantAnswer,
    TenantList,
    TenantWithHealth,
    TokenInfoAnswer,
    TokenList,
)
from api.admin.auth import AdminDep, ServicesDep, TenantDep, audit, operator_only
from api.admin.errors import AdminError
from api.admin.policy import check_tenant_change
from api.admin.schemas import (
    JsonBody,
    KeyIssue,
    TenantCreate,
    TenantUpdate,
    TokenIssue,
    guard_json,
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
from ops.views import tenant_health, tenant_view
from scim.resource import canonicalize
from scim.schema import USER_RESOURCE
from shadow import MappingStore, Tenant, TenantError
from shadow.admin_keys import AdminKeyStore
from worker.rules import enqueue_rules_resync

Req = Request[Any, Any, Any]
Json = dict[str, Any]


def _answer(tenant: Tenant, services: Services) -> TenantAnswer:
    return msgspec.convert(tenant_view(tenant, services.settings), TenantAnswer)


async def _with_health(tenant: Tenant, services: Services) -> TenantWithHealth:
    view = {
        **tenant_view(tenant, services.settings),
        **await tenant_health(services.redis, tenant.slug),
    }
    return msgspec.convert(view, TenantWithHealth)


@get("/tenants", name="admin-tenants-list", guards=[operator_only])
async def list_tenants(services: ServicesDep) -> TenantList:
    """Every tenant with its health and its breaker's true state (operator only)."""
    found = []
    for slug in await services.tenants.slugs():
        tenant = await services.tenants.get(slug)
        if tenant is not None:
            found.append(await _with_health(tenant, services))
    return TenantList(tenants=found)


@post(
    "/tenants",
    name="admin-tenants-create",
    status_code=201,
    dto=json_body(TenantCreate),
    return_dto=None,
    guards=[operator_only],
)
async def create_tenant(
    request: Req, principal: AdminDep, services: ServicesDep, data: JSONBody[TenantCreate]
) -> TenantAnswer:
    """Create a tenant (operator only)."""
    values = msgspec.structs.asdict(data)
    values["name"] = data.name or data.slug
    check_tenant_change(principal, values)
    try:
        tenant = await services.tenants.create(Tenant(**values))
    except TenantError as exc:
        status = 409 if "already exists" in str(exc) else 422
        raise AdminError(status, str(exc)) from None
    request.state.tenant = tenant.slug
    audit(request, principal, "tenant create")
    return _answer(tenant, services)


@get("/tenants/{slug:str}", name="admin-tenant-read")
async def read_tenant(tenant: TenantDep, services: ServicesDep) -> TenantWithHealth:
    """The tenant with its health and its breaker's true state."""
    return await _with_health(tenant, services)


@patch(
    "/tenants/{slug:str}", name="admin-tenant-update", dto=json_body(TenantUpdate), return_dto=None
)
async def update_tenant(
    request: Req,
    principal: AdminDep,
    services: ServicesDep,
    tenant: TenantDep,
    data: JSONBody[TenantUpdate],
) -> TenantAnswer:
    """Change any of name, lms_url, lms_api_key, lms_rate, lms_burst, enabled,
    scim_rate, scim_burst.

    A tenant key may change the name only: suspending or resuming the tenant
    (`enabled`), its LMS settings and its SCIM limits are the operator's
    (api/admin/policy.py)."""
    values = set_fields(data)
    check_tenant_change(principal, values)
    tenant = msgspec.structs.replace(tenant, **values)  # never mutate the cached one
    await services.tenants.save(tenant)
    audit(request, principal, "tenant update", fields=sorted(values))
    return _answer(tenant, services)


# -- SCIM tokens ---------------------------------------------------------------


@get("/tenants/{slug:str}/tokens", name="admin-tokens-list")
async def list_tokens(tenant: TenantDep, services: ServicesDep) -> TokenList:
    tokens = await services.tenants.list_tokens(tenant.slug)
    return TokenList(
        tenant=tenant.slug,
        tokens=[msgspec.convert(msgspec.to_builtins(t), TokenInfoAnswer) for t in tokens],
    )


@post(
    "/tenants/{slug:str}/tokens",
    name="admin-tokens-issue",
    status_code=201,
    dto=json_body(TokenIssue),
    return_dto=None,
)
async def issue_token(
    request: Req,
    principal: AdminDep,
    services: ServicesDep,
    tenant: TenantDep,
    data: JSONBody[TokenIssue | None] = None,
) -> IssuedTokenAnswer:
    """Issue a SCIM token: shown this once, with the SCIM URL to copy."""
    body = data or TokenIssue()
    days = body.expires_in_days
    issued = await services.tenants.issue_token(
        tenant.slug, label=body.label, expires_in_s=days * 86_400 if days else None
    )
    audit(request, principal, "token issue", token_id=issued.token_id)
    return IssuedTokenAnswer(
        tenant=tenant.slug,
        token_id=issued.token_id,
        token=issued.token,
        scim_url=services.settings.scim_url(tenant.slug),
        expires_at=issued.expires_at,
    )


@delete("/tenants/{slug:str}/tokens/{token_id:str}", name="admin-tokens-revoke", status_code=200)
async def revoke_token(
    request: Req,
    principal: AdminDep,
    services: ServicesDep,
    tenant: TenantDep,
    token_id: FromPath[str],
) -> Revoked:
    if not await services.tenants.revoke_token(tenant.slug, token_id):
        raise AdminError(404, "no such token")
    audit(request, principal, "token revoke", token_id=token_id)
    return Revoked(tenant=tenant.slug, token_id=token_id, revoked=True)


# -- admin keys (operator only) -------------------------------------------------


@get("/tenants/{slug:str}/admin-keys", name="admin-keys-list", guards=[operator_only])
async def list_admin_keys(tenant: TenantDep, services: ServicesDep) -> AdminKeyList:
    found = await AdminKeyStore(services.redis).list_keys(tenant.slug)
    return AdminKeyList(
        tenant=tenant.slug,
        keys=[
            AdminKeyInfo(
                key_id=k.token_id,
                created_at=k.created_at,
                label=k.label,
                last_used_at=k.last_used_at,
                expires_at=k.expires_at,
            )
            for k in found
        ],
    )


@post(
    "/tenants/{slug:str}/admin-keys",
    name="admin-keys-issue",
    status_code=201,
    dto=json_body(KeyIssue),
    return_dto=None,
    guards=[operator_only],
)
async def issue_admin_key(
    request: Req,
    principal: AdminDep,
    services: ServicesDep,
    tenant: TenantDep,
    data: JSONBody[KeyIssue | None] = None,
) -> IssuedAdminKeyAnswer:
    """Issue an admin key for the tenant (shown this once); it may expire."""
    body = data or KeyIssue()
    days = body.expires_in_days
    issued = await AdminKeyStore(services.redis).issue(
        tenant.slug, label=body.label, expires_in_s=days * 86_400 if days else None
    )
    audit(request, principal, "admin key issue", key_id=issued.key_id)
    return IssuedAdminKeyAnswer(
        tenant=tenant.slug, key_id=issued.key_id, key=issued.key, expires_at=issued.expires_at
    )


@delete(
    "/tenants/{slug:str}/admin-keys/{key_id:str}",
    name="admin-keys-revoke",
    status_code=200,
    guards=[operator_only],
)
async def revoke_admin_key(
    request: Req,
    principal: AdminDep,
    services: ServicesDep,
    tenant: TenantDep,
    key_id: FromPath[str],
) -> Revoked:
    if not await AdminKeyStore(services.redis).revoke(tenant.slug, key_id):
        raise AdminError(404, "no such admin key")
    audit(request, principal, "admin key revoke", key_id=key_id)
    return Revoked(tenant=tenant.slug, key_id=key_id, revoked=True)


# -- mapping ------------------------------------------------------------------


def _invalid_mapping(exc: MappingConfigError) -> AdminError:
    return AdminError(
        422,
        "; ".join(p.message for p in exc.problems),
        error="invalid_mapping",
        problems=[{"field": p.field, "kind": p.kind, "message": p.message} for p in exc.problems],
    )


@get("/tenants/{slug:str}/mapping", name="admin-mapping-read")
async def read_mapping(tenant: TenantDep, services: ServicesDep) -> MappingAnswer:
    """The tenant's overrides (null: the defaults) and the merged rules."""
    stored = await MappingStore(services.redis).raw(tenant.slug)
    try:
        overrides = decode_overrides(stored) if stored else None
        rules = build_rules(overrides)
    except MappingConfigError as exc:  # stored under older rules: say what is wrong now
        return MappingAnswer(
            tenant=tenant.slug,
            overrides=msgspec.json.decode(stored or b"null"),
            rules=None,
            problems=[p.message for p in exc.problems],
        )
    return MappingAnswer(
        tenant=tenant.slug,
        overrides=msgspec.to_builtins(overrides) if overrides else None,
        rules=msgspec.to_builtins(rules.field_rules),
    )


class OverridesBody(JsonBody[MappingOverrides]):
    """A mapping body, read as `mappings.decode_overrides` reads JSON: a
    problem is a 422 naming every field (`_invalid_mapping`)."""

    def decode_bytes(self, value: bytes) -> Any:
        return _read_overrides(value)


def _read_overrides(body: bytes) -> MappingOverrides:
    guard_json(body)
    try:
        return decode_overrides(body, "json")
    except MappingConfigError as exc:
        raise _invalid_mapping(exc) from None


@put("/tenants/{slug:str}/mapping", name="admin-mapping-set", dto=OverridesBody, return_dto=None)
async def set_mapping(
    request: Req,
    principal: AdminDep,
    services: ServicesDep,
    tenant: TenantDep,
    data: JSONBody[MappingOverrides | None] = None,
) -> MappingSetAnswer:
    """Replace the overrides (JSON as `mappings.decode_overrides` reads it);
    every user is then re-synced under them (`resync` in the answer)."""
    overrides = data if data is not None else _read_overrides(b"")
    resync = await _replace_rules(services, tenant.slug, encode_overrides(overrides))
    audit(request, principal, "mapping set")
    return MappingSetAnswer(
        tenant=tenant.slug, overrides=msgspec.to_builtins(overrides), resync=resync
    )


@delete("/tenants/{slug:str}/mapping", name="admin-mapping-reset", status_code=200)
async def reset_mapping(
    request: Req, principal: AdminDep, services: ServicesDep, tenant: TenantDep
) -> MappingSetAnswer:
    """Back to the default mapping (every user re-synced under it)."""
    resync = await _replace_rules(services, tenant.slug, None)
    audit(request, principal, "mapping reset")
    return MappingSetAnswer(tenant=tenant.slug, overrides=None, resync=resync)


async def _replace_rules(services: Services, slug: str, overrides: bytes | None) -> Json:
    """Store the rules and start the re-sync in one step, then wake a worker
    (should that fail, the sweep starts the re-sync job: it is only late)."""
    store = MappingStore(services.redis)
    await store.replace(slug, overrides)
    with contextlib.suppress(RedisError):
        await enqueue_rules_resync(services.queue, slug)
    progress: Json = msgspec.to_builtins(await store.progress(slug))
    return progress


@post("/tenants/{slug:str}/mapping/preview", name="admin-mapping-preview", status_code=200)
async def preview_mapping(
    tenant: TenantDep, services: ServicesDep, data: JSONBody[dict[str, Any]]
) -> dict[str, Any]:
    """What a SCIM user (the body) would become under the tenant's rules,
    with the groups of the stored user of the same `id` (or the groups the
    body lists), as the worker would map it."""
    doc = canonicalize(USER_RESOURCE, data)  # a ScimError is a 400 here
    for name in ("id", "groups"):
        if name in data:
            doc[name] = data[name]
    try:
        result: dict[str, Any] = await MappingStore(services.redis).preview(tenant.slug, doc)
    except MappingConfigError as exc:
        raise _invalid_mapping(exc) from None
    return result


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
