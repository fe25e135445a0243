"""Admin routes for provisioning: status, users, replay, breaker, reconcile.

The API never calls the LMS (design.md): a reconcile asked for here is an
arq job that a worker runs (`ops.commands.request_reconcile`).
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, get, post, put
from litestar.params import FromPath, JSONBody

from api.admin.auth import AdminDep, audit, reach_tenant
from api.admin.errors import AdminError
from api.admin.schemas import BreakerUpdate, ReconcileRequest, ReplayRequest, json_body
from api.admin.schemas import set_fields as given
from api.services import Services
from ops.commands import (
    approve,
    cancel,
    configure_breaker,
    reconcile_state,
    replay,
    request_reconcile,
)
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


def _services(request: Req) -> Services:
    services: Services = request.app.state.services
    return services


def _int_param(request: Req, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise AdminError(400, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise AdminError(400, f"{name} must be between {low} and {high}")
    return value


@get("/tenants/{slug:str}/status", name="admin-status")
async def status(request: Req, principal: AdminDep, slug: FromPath[str]) -> Json:
    """Counts per sync state, oldest pending, LMS error rate, breaker."""
    await reach_tenant(request, principal, slug)
    s = _services(request)
    data = await tenant_status(s.redis, s.queue, slug)
    if not principal.operator:
        data.pop("queue_depth", None)  # the shared queue: other tenants' business
    return data


@get("/tenants/{slug:str}/users/failed", name="admin-users-failed")
async def users_failed(request: Req, principal: AdminDep, slug: FromPath[str]) -> Json:
    """Failed users with their reasons, paged by `offset` and `limit`."""
    await reach_tenant(request, principal, slug)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    limit = _int_param(request, "limit", 100, 1, MAX_PAGE)
    return await failed_page(_services(request).redis, slug, offset, limit)


@get("/tenants/{slug:str}/users/{user_id:str}", name="admin-user-timeline")
async def user(
    request: Req, principal: AdminDep, slug: FromPath[str], user_id: FromPath[str]
) -> Json:
    """One user's timeline: shadow, sync record and the provisioning log."""
    await reach_tenant(request, principal, slug)
    limit = _int_param(request, "limit", 100, 1, MAX_PAGE)
    data = await user_timeline(_services(request).redis, slug, checked_user_id(user_id), limit)
    if data["shadow"] is None and data["state"] is None and not data["events"]:
        raise AdminError(404, "no such user")
    return data


@post(
    "/tenants/{slug:str}/replay",
    name="admin-replay",
    status_code=200,
    dto=json_body(ReplayRequest),
)
async def replay_users(
    request: Req,
    principal: AdminDep,
    slug: FromPath[str],
    data: JSONBody[ReplayRequest | None] = None,
) -> Json:
    """Retry one user (`{"user_id": ...}`) or every failed user (no body)."""
    await reach_tenant(request, principal, slug)
    body = data or ReplayRequest()
    s = _services(request)
    if body.user_id is not None and not await user_exists(
        s.redis, slug, checked_user_id(body.user_id)
    ):
        raise AdminError(404, "no such user")
    count = await replay(s.redis, s.queue, slug, body.user_id)
    audit(request, principal, "replay", user_id=body.user_id or "all failed", replayed=count)
    return {"tenant": slug, "replayed": count}


# -- breaker ----------------------------------------------------------------


@get("/tenants/{slug:str}/breaker", name="admin-breaker")
async def breaker(request: Req, principal: AdminDep, slug: FromPath[str]) -> Json:
    await reach_tenant(request, principal, slug)
    return await breaker_view(_services(request).redis, slug)


@put("/tenants/{slug:str}/breaker", name="admin-breaker-config", dto=json_body(BreakerUpdate))
async def breaker_config(
    request: Req, principal: AdminDep, slug: FromPath[str], data: JSONBody[BreakerUpdate]
) -> Json:
    """Change the thresholds: any of enabled, share, min_learners, window_s."""
    await reach_tenant(request, principal, slug)
    redis = _services(request).redis
    update = given(data)
    try:
        await configure_breaker(redis, slug, update)
    except ValueError as exc:
        raise AdminError(422, str(exc)) from None
    audit(request, principal, "breaker config", **update)
    return await breaker_view(redis, slug)


@post("/tenants/{slug:str}/breaker/approve", name="admin-breaker-approve", status_code=200)
async def breaker_approve(request: Req, principal: AdminDep, slug: FromPath[str]) -> Json:
    """Release the held deactivations (and let more through for one window)."""
    tenant = await reach_tenant(request, principal, slug)
    s = _services(request)
    released = await approve(s.redis, s.queue, slug, interval_ms=tenant.job_interval_ms)
    audit(request, principal, "breaker approve", released=released)
    return {"tenant": slug, "released": released, **await breaker_view(s.redis, slug)}


@post("/tenants/{slug:str}/breaker/cancel", name="admin-breaker-cancel", status_code=200)
async def breaker_cancel(request: Req, principal: AdminDep, slug: FromPath[str]) -> Json:
    """Drop the held deactivations: the learners stay active."""
    await reach_tenant(request, principal, slug)
    redis = _services(request).redis
    dropped = await cancel(redis, slug)
    audit(request, principal, "breaker cancel", dropped=dropped)
    return {"tenant": slug, "dropped": dropped, **await breaker_view(redis, slug)}


# -- reconcile --------------------------------------------------------------


@post(
    "/tenants/{slug:str}/reconcile",
    name="admin-reconcile",
    status_code=202,
    dto=json_body(ReconcileRequest),
)
async def reconcile(
    request: Req,
    principal: AdminDep,
    slug: FromPath[str],
    data: JSONBody[ReconcileRequest | None] = None,
) -> Json:
    """Ask a worker to reconcile the tenant (`{"repair": false}` only reports)."""
    await reach_tenant(request, principal, slug)
    body = data or ReconcileRequest()
    s = _services(request)
    job_id = await request_reconcile(s.redis, s.queue, slug, body.repair)
    if job_id is None:
        raise AdminError(409, "a reconcile of this tenant is already queued or running")
    audit(request, principal, "reconcile", repair=body.repair)
    return {"tenant": slug, "job_id": job_id, "repair": body.repair, "queued": True}


@get("/tenants/{slug:str}/reconcile", name="admin-reconcile-report")
async def reconcile_report(request: Req, principal: AdminDep, slug: FromPath[str]) -> Json:
    """Progress of the current or last reconcile, and the last report."""
    await reach_tenant(request, principal, slug)
    return await reconcile_state(_services(request).redis, slug)


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
