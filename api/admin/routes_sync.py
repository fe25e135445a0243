"""Admin routes for provisioning: status, users, replay, breaker, reconcile.

The API never calls the LMS (docs/architecture.md, "Parts and layering"): a
reconcile asked for here is an arq job that a worker runs
(`ops.commands.request_reconcile`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter

from api.admin.answers import (
    BreakerAnswer,
    BreakerApproved,
    BreakerCancelled,
    FailedPage,
    Reconcile,
    ReconcileQueued,
    Replayed,
    Status,
    Timeline,
)
from api.admin.auth import AdminDep, ServicesDep, TenantDep, audit
from api.admin.errors import AdminError
from api.admin.policy import approve_held, cancel_held, change_breaker
from api.admin.schemas import BreakerUpdate, ReconcileRequest, ReplayRequest, json_body
from api.admin.schemas import set_fields as given
from ops.commands import reconcile_state, replay, request_reconcile
from ops.views import breaker_view, failed_page, tenant_status, user_exists, user_timeline

Req = Request[Any, Any, Any]
Json = dict[str, Any]
MAX_PAGE = 500
# The user ids the SCIM API issues (lower-case UUIDs). Anything else names no
# user and must never reach a key: "ids" or "<id>:groups" would address the
# tenant's own index keys.
_USER_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def checked_user_id(text: str) -> str:
    """The user id of a URL or body, or a 404: odd text never reaches key names."""
    if _USER_ID_RE.fullmatch(text) is None:
        raise AdminError(404, "no such user")
    return text


#: Paging of the failed users and a timeline's events (typed, so the
#: OpenAPI document states the bounds and Litestar refuses others with a 400).
Offset = Annotated[int, QueryParameter(ge=0, le=10**9, description="first row")]
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE, description="rows at most")]


@get("/tenants/{slug:str}/status", name="admin-status")
async def status(principal: AdminDep, services: ServicesDep, tenant: TenantDep) -> Status:
    """Counts per sync state, oldest pending, LMS error rate, breaker."""
    data = await tenant_status(services.redis, services.queue, tenant.slug)
    if not principal.operator:
        data.pop("arq_queue_depth", None)  # the shared queue: other tenants' business
    return msgspec.convert(data, Status)


@get("/tenants/{slug:str}/users/failed", name="admin-users-failed")
async def users_failed(
    services: ServicesDep, tenant: TenantDep, offset: Offset = 0, limit: Limit = 100
) -> FailedPage:
    """Failed users with their reasons, paged by `offset` and `limit`."""
    page = await failed_page(services.redis, tenant.slug, offset, limit)
    return msgspec.convert(page, FailedPage)


@get("/tenants/{slug:str}/users/{user_id:str}", name="admin-user-timeline")
async def user(
    services: ServicesDep, tenant: TenantDep, user_id: FromPath[str], limit: Limit = 100
) -> Timeline:
    """One user's timeline: shadow, sync record and the provisioning log."""
    data = await user_timeline(services.redis, tenant.slug, checked_user_id(user_id), limit)
    if data["shadow"] is None and data["state"] is None and not data["events"]:
        raise AdminError(404, "no such user")
    return msgspec.convert(data, Timeline)


@post(
    "/tenants/{slug:str}/replay",
    name="admin-replay",
    status_code=200,
    dto=json_body(ReplayRequest),
    return_dto=None,
)
async def replay_users(
    request: Req,
    principal: AdminDep,
    services: ServicesDep,
    tenant: TenantDep,
    data: JSONBody[ReplayRequest | None] = None,
) -> Replayed:
    """Retry one user (`{"user_id": ...}`) or every failed user (no body)."""
    body = data or ReplayRequest()
    slug = tenant.slug
    if body.user_id is not None and not await user_exists(
        services.redis, slug, checked_user_id(body.user_id)
    ):
        raise AdminError(404, "no such user")
    count = await replay(services.redis, services.queue, slug, body.user_id)
    audit(request, principal, "replay", user_id=body.user_id or "all failed", replayed=count)
    return Replayed(tenant=slug, replayed=count)


# -- breaker ----------------------------------------------------------------


@get("/tenants/{slug:str}/breaker", name="admin-breaker")
async def breaker(services: ServicesDep, tenant: TenantDep) -> BreakerAnswer:
    """The breaker's state (`mode`: on, tripped, approved, off) and the first held users."""
    return msgspec.convert(await breaker_view(services.redis, tenant.slug), BreakerAnswer)


@put(
    "/tenants/{slug:str}/breaker",
    name="admin-breaker-config",
    dto=json_body(BreakerUpdate),
    return_dto=None,
)
async def breaker_config(
    request: Req,
    principal: AdminDep,
    services: ServicesDep,
    tenant: TenantDep,
    data: JSONBody[BreakerUpdate],
) -> BreakerAnswer:
    """Change the thresholds: any of enabled, share, min_learners, window_s.
    A tenant admin key may only tighten them, within the operator's."""
    update = given(data)
    await change_breaker(services.redis, principal, tenant.slug, update)  # tighten only, for a key
    audit(request, principal, "breaker config", **update)
    return msgspec.convert(await breaker_view(services.redis, tenant.slug), BreakerAnswer)


@post("/tenants/{slug:str}/breaker/approve", name="admin-breaker-approve", status_code=200)
async def breaker_approve(
    request: Req, principal: AdminDep, services: ServicesDep, tenant: TenantDep
) -> BreakerApproved:
    """Release the held deactivations (and let more through for one window);
    409 when the breaker holds nothing."""
    redis, slug = services.redis, tenant.slug
    released = await approve_held(redis, services.queue, slug, interval_ms=tenant.job_interval_ms)
    audit(request, principal, "breaker approve", released=released)
    view = await breaker_view(redis, slug)
    return msgspec.convert({**view, "released": released}, BreakerApproved)


@post("/tenants/{slug:str}/breaker/cancel", name="admin-breaker-cancel", status_code=200)
async def breaker_cancel(
    request: Req, principal: AdminDep, services: ServicesDep, tenant: TenantDep
) -> BreakerCancelled:
    """Drop the held deactivations: the learners stay active; 409 when the
    breaker holds nothing."""
    redis, slug = services.redis, tenant.slug
    dropped = await cancel_held(redis, slug)
    audit(request, principal, "breaker cancel", dropped=dropped)
    view = await breaker_view(redis, slug)
    return msgspec.convert({**view, "dropped": dropped}, BreakerCancelled)


# -- reconcile --------------------------------------------------------------


@post(
    "/tenants/{slug:str}/reconcile",
    name="admin-reconcile",
    status_code=202,
    dto=json_body(ReconcileRequest),
    return_dto=None,
)
async def reconcile(
    request: Req,
    principal: AdminDep,
    services: ServicesDep,
    tenant: TenantDep,
    data: JSONBody[ReconcileRequest | None] = None,
) -> ReconcileQueued:
    """Ask a worker to reconcile the tenant (`{"repair": false}` only reports)."""
    body = data or ReconcileRequest()
    slug = tenant.slug
    job_id = await request_reconcile(services.redis, services.queue, slug, body.repair)
    if job_id is None:
        raise AdminError(409, "a reconcile of this tenant is already queued or running")
    audit(request, principal, "reconcile", repair=body.repair)
    return ReconcileQueued(tenant=slug, job_id=job_id, repair=body.repair, queued=True)


@get("/tenants/{slug:str}/reconcile", name="admin-reconcile-report")
async def reconcile_report(services: ServicesDep, tenant: TenantDep) -> Reconcile:
    """Progress of the current or last reconcile, and the last report."""
    return msgspec.convert(await reconcile_state(services.redis, tenant.slug), Reconcile)


SYNC_HANDLERS = [
    status,
    users_failed,
    user,
    replay_users,
    breaker,
    breaker_config,
    breaker_approve,
    breaker_cancel,
    reconcile,
    reconcile_report,
]
