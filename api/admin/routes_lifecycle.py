"""Admin routes of the data lifecycle: offboard a tenant, erase a person.

A purge of a large tenant can outlast an HTTP request, so one DELETE works
for at most `PURGE_BUDGET_S` and answers 202 with its progress when there is
more to do; a second DELETE (or `scim-bridge tenant delete`) goes on where it
stopped. The person to erase is named in the body, never the URL, so an
address does not reach access logs.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, post
from litestar.params import FromPath, FromQuery, JSONBody

from api.admin.auth import AdminDep, ServicesDep, TenantDep, audit, operator_only
from api.admin.errors import AdminError
from api.admin.schemas import json_body
from shadow import TenantError
from shadow.lifecycle import UserBusy, find_user
from worker.lifecycle import deactivate_learners as deactivate_learners_first
from worker.lifecycle import erase_person, offboard_tenant, withdraw_first

Req = Request[Any, Any, Any]
Json = dict[str, Any]

PURGE_BUDGET_S = 20.0


class EraseRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Who to erase: the bridge's id, the userName or an email address."""

    user: str
    #: First deactivate the learner (as an IdP's delete would), then erase.
    deactivate_learner: bool = False


@delete("/tenants/{slug:str}", name="admin-tenant-delete", status_code=200, guards=[operator_only])
async def delete_tenant(
    request: Req,
    principal: AdminDep,
    services: ServicesDep,
    slug: FromPath[str],
    deactivate_learners: FromQuery[bool] = False,
) -> Response[Json]:
    """Offboard a tenant (operator only): 200 once every key is gone, 202
    while some remain (send it again). `?deactivate_learners=true` first
    deactivates its learners through the breaker: 202 with what it waits
    for until none is left."""
    s = services
    try:
        if deactivate_learners:
            waiting = await deactivate_learners_first(s.redis, s.queue, slug)
            if not waiting.done:
                return Response(msgspec.to_builtins(waiting), status_code=202)
        result = await offboard_tenant(
            s.redis, s.queue, slug, time_budget_s=PURGE_BUDGET_S, lock_wait_s=PURGE_BUDGET_S
        )
    except TenantError as exc:
        raise AdminError(404, str(exc)) from None
    request.state.tenant = slug
    audit(request, principal, "tenant delete", removed=result.removed, state=result.state)
    status = 200 if result.state == "deleted" else 202
    return Response(msgspec.to_builtins(result), status_code=status)


@post(
    "/tenants/{slug:str}/erasures",
    name="admin-user-erase",
    status_code=200,
    dto=json_body(EraseRequest),
    return_dto=None,
)
async def erase_user(
    request: Req,
    principal: AdminDep,
    services: ServicesDep,
    tenant: TenantDep,
    data: JSONBody[EraseRequest],
) -> Response[Json]:
    """Erase one person's data from the bridge; the LMS learner stays unless
    `deactivate_learner` (then `202` until the worker has deactivated it:
    send it again, naming the `user_id` answered)."""
    body, slug, s = data, tenant.slug, services
    try:
        user_id = await find_user(s.redis, slug, body.user)
        if body.deactivate_learner:
            state = await withdraw_first(s.redis, s.queue, slug, user_id)
            if state is not None:
                waiting = {"tenant": slug, "user_id": user_id, "state": state}
                return Response(waiting, status_code=202)
        erased = await erase_person(s.redis, s.queue, slug, user_id)
    except UserBusy as exc:
        raise AdminError(409, str(exc)) from None
    except TenantError as exc:
        raise AdminError(404, str(exc)) from None
    audit(request, principal, "user erase", keys_removed=erased.keys_removed)
    return Response(msgspec.to_builtins(erased), status_code=200)


LIFECYCLE_HANDLERS = [delete_tenant, erase_user]
