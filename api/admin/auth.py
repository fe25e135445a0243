"""Who is calling the admin API, and what they may reach.

Two kinds of bearer:
- the operator token (`BRIDGE_ADMIN_TOKEN`): every tenant, and the
  operator-only routes (create and list tenants, admin keys). Empty means the
  operator API is off: no presented value matches it.
- a tenant admin key (shadow/admin_keys.py): that one tenant only.

Missing, malformed, revoked or wrong credentials are a 401. A valid key on
another tenant's URL, or on an operator-only route, is a 403, the same answer
whether that tenant exists or not, so a tenant key learns nothing about other
tenants. Comparisons are constant-time (digests of equal length).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any, NoReturn

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.params import FromPath

from api.admin.errors import AdminError
from api.auth import (
    AUTH_FAILURE_WINDOW_S,
    already_over_failure_limit,
    bearer_token,
    over_failure_limit,
)
from api.services import Services
from shadow import Tenant
from shadow.admin_keys import AdminKeyStore

__all__ = [
    "AdminDep",
    "Principal",
    "ServicesDep",
    "TenantDep",
    "admin_principal",
    "audit",
    "authorize_first",
    "operator_only",
    "provide_services",
    "provide_tenant",
    "reach_tenant",
]

audit_log = logging.getLogger("scim_bridge.admin.audit")


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated admin caller."""

    operator: bool
    tenant: str | None = None
    key_id: str | None = None

    def may_reach(self, slug: str) -> bool:
        return self.operator or self.tenant == slug


#: How a handler asks for the caller (the router provides `principal`).
AdminDep = NamedDependency[Principal]


def same_secret(presented: str, expected: str) -> bool:
    a = hashlib.sha256(presented.encode()).digest()
    b = hashlib.sha256(expected.encode()).digest()
    return hmac.compare_digest(a, b)


def _throttled() -> AdminError:
    return AdminError(
        429,
        "too many failed authentications from this client; retry later",
        headers={"Retry-After": str(AUTH_FAILURE_WINDOW_S)},
    )


async def _refuse(request: Request[Any, Any, Any], services: Services, detail: str) -> NoReturn:
    """401, or 429 with Retry-After once this client keeps failing (the
    counter is shared with SCIM authentication)."""
    if await over_failure_limit(request, services):
        raise _throttled()
    raise AdminError(401, detail)


async def authorize_first(connection: ASGIConnection[Any, Any, Any, Any], _: object) -> None:
    """Router guard: the caller is authenticated, and may reach the URL's
    tenant, before a typed route reads its body (Litestar decodes `data`
    before the handler runs), so a stranger's body is never even parsed and
    a key on another tenant's URL is a 403 whatever it sends."""
    principal = await admin_principal(connection)  # type: ignore[arg-type]
    slug = connection.path_params.get("slug")
    if isinstance(slug, str) and not principal.may_reach(slug):
        raise AdminError(403, "this key does not reach that tenant")


async def admin_principal(request: Request[Any, Any, Any]) -> Principal:
    """Litestar dependency: the authenticated caller of an admin route
    (authenticated once per request, by the guard)."""
    known = getattr(request.state, "admin_principal", None)
    if isinstance(known, Principal):
        return known
    principal = await _authenticate(request)
    request.state.admin_principal = principal
    return principal


async def _authenticate(request: Request[Any, Any, Any]) -> Principal:
    services: Services = request.app.state.services
    if await already_over_failure_limit(request, services):
        raise _throttled()  # before any comparison: a right guess now is not told apart
    token = bearer_token(request)
    if token is None:
        await _refuse(request, services, "missing bearer token (Authorization: Bearer <token>)")
    operator_token = services.settings.admin_token
    # Always do the operator comparison, so timing does not say which kind failed.
    is_operator = same_secret(token, operator_token or "\x00disabled")
    if is_operator and operator_token:
        return Principal(operator=True)
    found = await AdminKeyStore(services.redis).authenticate(token)
    if found is None:
        await _refuse(request, services, "the bearer token is not a valid admin token or key")
    tenant, key_id = found
    return Principal(operator=False, tenant=tenant, key_id=key_id)


async def operator_only(connection: ASGIConnection[Any, Any, Any, Any], _: object) -> None:
    """Route guard of the operator's routes (api/admin/policy.py): after
    `authorize_first`, so a key on another tenant's URL is refused the same
    way on every route."""
    principal = await admin_principal(connection)  # type: ignore[arg-type]
    if not principal.operator:
        raise AdminError(403, "this needs the operator token")


def provide_services(request: Request[Any, Any, Any]) -> Services:
    """Litestar dependency: the process's services (built by the lifespan)."""
    services: Services = request.app.state.services
    return services


async def provide_tenant(
    request: Request[Any, Any, Any], principal: AdminDep, slug: FromPath[str]
) -> Tenant:
    """Litestar dependency: the URL's tenant, if the caller may reach it."""
    return await reach_tenant(request, principal, slug)


#: How a handler asks for the services and the URL's tenant (router dependencies).
ServicesDep = NamedDependency[Services]
TenantDep = NamedDependency[Tenant]


async def reach_tenant(request: Request[Any, Any, Any], principal: Principal, slug: str) -> Tenant:
    """The tenant of a tenant-scoped route, if the caller may reach it.

    A tenant key on another tenant's URL is a 403 before any lookup; only a
    caller who may reach `slug` learns whether it exists (404).
    """
    if not principal.may_reach(slug):
        raise AdminError(403, "this key does not reach that tenant")
    services: Services = request.app.state.services
    tenant = await services.tenants.get(slug)
    if tenant is None:
        raise AdminError(404, f"no tenant {slug!r}")
    request.state.tenant = tenant.slug  # the access log names it (api.middleware)
    return tenant


def audit(
    request: Request[Any, Any, Any], principal: Principal, action: str, **fields: Any
) -> None:
    """One log line per change made through the admin API: who, what, which
    tenant. Never a secret: callers pass ids and counts only."""
    who = "operator" if principal.operator else f"admin key {principal.key_id}"
    tenant = getattr(request.state, "tenant", None) or request.path_params.get("slug")
    audit_log.info(
        "admin %s by %s on %s",
        action,
        who,
        tenant,
        extra={"action": action, "by": who, "tenant": tenant, **fields},
    )
