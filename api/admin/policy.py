"""Who may do what to a tenant: the one place the admin API and the admin
page ask (docs/operations.md, "Who may do what").

The operator (`BRIDGE_ADMIN_TOKEN`) may do everything. A tenant's admin key
reaches its own tenant only, and there it may not take the operator's
decisions:

- suspending or resuming the tenant (`enabled`): a suspension by the
  operator is one the tenant cannot lift;
- the LMS settings (`lms_url`, `lms_api_key`, `lms_rate`, `lms_burst`) and
  the tenant's SCIM limits (`scim_rate`, `scim_burst`);
- turning the mass-deactivation breaker off or loosening it: a tenant admin
  may tighten it (a lower share or minimum, a longer window), within the
  operator's thresholds (`shadow.breaker.get_bound`).

Every refusal is an `AdminError` (403 for who, 422 for what, 409 for when):
the admin API answers it as `{"error","detail"}`, the page as its error page.
What a value may be (`check_tenant_settings`, the bounded lengths `MAX_*`)
is ops/views.py's, shared with the CLI; who may set it is decided here.
"""

from __future__ import annotations

from typing import Any

import msgspec
from arq.connections import ArqRedis
from redis.asyncio import Redis

from api.admin.auth import Principal
from api.admin.errors import AdminError
from ops.commands import approve, cancel
from ops.views import (
    MAX_LABEL_LENGTH,
    MAX_NAME_LENGTH,
    MAX_SECRET_LENGTH,
    MAX_URL_LENGTH,
    URL_PATTERN,
    check_tenant_settings,
)
from shadow.breaker import BreakerConfig, breaker_state, get_bound, get_config, set_config

__all__ = [
    "MAX_LABEL_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_SECRET_LENGTH",
    "MAX_URL_LENGTH",
    "TENANT_KEY_FIELDS",
    "URL_PATTERN",
    "approve_held",
    "cancel_held",
    "change_breaker",
    "check_tenant_change",
    "check_tenant_settings",
    "require_operator",
]

#: What a tenant admin key may change about its own tenant (the rest is the operator's).
TENANT_KEY_FIELDS = frozenset({"name"})


def require_operator(principal: Principal) -> None:
    if not principal.operator:
        raise AdminError(403, "this needs the operator token")


def check_tenant_change(principal: Principal, values: dict[str, Any]) -> None:
    """May `principal` change these tenant settings? 403 naming the
    operator's fields, else 422 naming every bad value."""
    if not principal.operator and (denied := sorted(set(values) - TENANT_KEY_FIELDS)):
        raise AdminError(403, f"only the operator may change {', '.join(denied)}")
    if problems := check_tenant_settings(values):
        raise AdminError(422, "; ".join(problems))


async def change_breaker(
    redis: Redis, principal: Principal, slug: str, update: dict[str, Any]
) -> BreakerConfig:
    """Apply a change of the breaker's thresholds, if `principal` may: the
    operator any valid one, a tenant admin only a tightening."""
    current = await get_config(redis, slug)
    config = msgspec.structs.replace(current, **update)
    if problems := config.problems():
        raise AdminError(422, "; ".join(problems))
    bound = None if principal.operator else await get_bound(redis, slug)
    if bound is not None and (loosened := config.loosened_from(bound, current)):
        refused = "; ".join(loosened)
        raise AdminError(403, f"a tenant admin may only tighten the breaker: {refused}")
    await set_config(redis, slug, config, by_operator=principal.operator)
    return config


async def _awaiting(redis: Redis, slug: str, verb: str) -> None:
    if not (await breaker_state(redis, slug)).awaits_decision:
        raise AdminError(409, f"nothing to {verb}: the breaker has not tripped and holds no one")


async def approve_held(redis: Redis, queue: ArqRedis, slug: str, *, interval_ms: int) -> int:
    """Release the held deactivations; 409 when nothing is held (an approval
    then would only disarm the breaker for a window)."""
    await _awaiting(redis, slug, "approve")
    return await approve(redis, queue, slug, interval_ms=interval_ms)


async def cancel_held(redis: Redis, slug: str) -> int:
    """Drop the held deactivations; 409 when nothing is held."""
    await _awaiting(redis, slug, "cancel")
    return await cancel(redis, slug)
