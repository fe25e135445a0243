"""Bearer-token authentication of SCIM requests, per tenant.

The tenant comes from the URL; the token must be one of that tenant's live
tokens. A token of another tenant, a revoked one, or none at all is a 401
with a SCIM error body: the URL alone never reveals whether a tenant exists.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.params import FromPath

from api.services import Services
from scim.errors import Unauthorized
from shadow import Tenant


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def scim_tenant(request: Request[Any, Any, Any], tenant_slug: FromPath[str]) -> Tenant:
    """Litestar dependency: the authenticated tenant of a SCIM request."""
    services: Services = request.app.state.services
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    tenant = await services.tenants.get(tenant_slug)
    token_id = await services.tenants.authenticate(tenant_slug, token) if tenant else None
    if tenant is None or token_id is None:
        raise Unauthorized("the bearer token is not valid for this tenant")
    if not tenant.enabled:
        raise Unauthorized("this tenant is disabled")
    request.state.tenant = tenant.slug
    return tenant
