"""Bearer-token authentication of SCIM requests, per tenant.

The tenant comes from the URL; the token must be one of that tenant's live
tokens. A token of another tenant, a revoked one, or none at all is a 401
with a SCIM error body: the URL alone never reveals whether a tenant exists.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

from litestar import Request
from litestar.params import FromPath

from api.inflight import TenantInFlight
from api.scim_io import header
from api.services import Services
from scim.errors import TooManyRequests, Unauthorized
from shadow import Tenant
from shadow.limits import ScimRateLimiter
from shadow.tenants import is_slug, parse_token


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    """The bearer credential of a request; two Authorization fields are no
    credential at all."""
    scheme, _, value = (header(request, b"authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


AUTH_FAILURE_WINDOW_S = 60


def _failure_key(request: Request[Any, Any, Any]) -> str:
    client = request.client.host if request.client else "unknown"
    return f"scim-bridge:authfail:{client}"


async def already_over_failure_limit(request: Request[Any, Any, Any], services: Services) -> bool:
    """Is this client over its failure limit already? Read only: the admin
    API and the admin page ask it before comparing any credential, so a
    client that keeps guessing learns nothing more until the window ends,
    not even from a right guess (docs/operations.md, "Throttling")."""
    failures = await services.redis.get(_failure_key(request))
    return failures is not None and int(failures) > services.settings.auth_failures_per_minute


async def over_failure_limit(request: Request[Any, Any, Any], services: Services) -> bool:
    """Count a failed authentication of this client; True once it has failed
    more than the allowed number of times in the window.

    Only failures are counted and a valid credential is always accepted, so a
    flood of bad tokens from a shared address (Entra's are shared) never locks
    out a tenant. The SCIM, admin and web logins share the counter.
    """
    key = _failure_key(request)
    async with services.redis.pipeline(transaction=False) as pipe:
        pipe.incr(key)
        pipe.expire(key, AUTH_FAILURE_WINDOW_S, nx=True)
        failures, _ = await pipe.execute()
    return int(failures) > services.settings.auth_failures_per_minute


async def _failed_attempt(
    request: Request[Any, Any, Any], services: Services, detail: str
) -> NoReturn:
    """Refuse a SCIM request's credentials: 401, or 429 with Retry-After once
    this client keeps failing."""
    if await over_failure_limit(request, services):
        raise TooManyRequests(
            "too many failed authentications from this client; retry later",
            headers={"Retry-After": str(AUTH_FAILURE_WINDOW_S)},
        )
    raise Unauthorized(detail)


async def _within_rate(
    request: Request[Any, Any, Any], limiter: ScimRateLimiter, tenant: Tenant
) -> None:
    """429 with Retry-After once the tenant is over its SCIM request rate
    (shadow/limits.py), counted per tenant in /metrics."""
    wait = await limiter.wait_s(tenant.slug, tenant.scim_rate, tenant.scim_burst)
    if wait > 0:
        request.app.state.request_metrics.throttled(tenant.slug)
        raise TooManyRequests(
            f"over this tenant's {tenant.scim_rate:g} SCIM requests a second; retry later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


async def scim_tenant(request: Request[Any, Any, Any], tenant_slug: FromPath[str]) -> Tenant:
    """Litestar dependency: the authenticated tenant of a SCIM request."""
    services: Services = request.app.state.services
    token = bearer_token(request)
    if token is None:
        await _failed_attempt(
            request, services, "missing bearer token (Authorization: Bearer <token>)"
        )
    if not is_slug(tenant_slug) or parse_token(token) is None:
        # No tenant can have this slug and no token has this shape: refused
        # before any lookup, so a stranger's guesses leave nothing behind.
        await _failed_attempt(request, services, "the bearer token is not valid for this tenant")
    tenant, token_id = await services.tenants.credentials(tenant_slug, token)
    if tenant is None or token_id is None:
        await _failed_attempt(request, services, "the bearer token is not valid for this tenant")
    if not tenant.enabled:
        raise Unauthorized("this tenant is disabled")
    if services.scim_limiter is not None:
        await _within_rate(request, services.scim_limiter, tenant)
    inflight: TenantInFlight = request.app.state.inflight
    if not inflight.admit(request.scope, tenant.slug):  # api/inflight.py
        request.app.state.request_metrics.throttled(tenant.slug)
        raise TooManyRequests(
            f"this tenant has {inflight.cap} SCIM requests in progress here; retry later",
            headers={"Retry-After": "1"},
        )
    await inflight.take_turn(request.scope, tenant.slug)  # fair turns (api/fair_turns.py)
    # Straight into the scope's state dict (Litestar always sets it): the
    # access log names the tenant (api.middleware). `request.state` would
    # build a State wrapper on every request.
    request.scope["state"]["tenant"] = tenant.slug
    return tenant
