"""Admin pages of provisioning: one user's timeline, retrying failed users,
and approving or cancelling a tripped mass-deactivation breaker.

The same functions as the admin API and the CLI (ops/): `user_timeline`,
`replay`, `approve` and `cancel`.
"""

from __future__ import annotations

from litestar import get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.admin.auth import audit, reach_tenant
from api.admin.errors import AdminError
from api.admin.routes_sync import checked_user_id
from api.web.pages import Req, SessionDep, page, posted_form, see_other, services_of
from api.web.routes_tenants import tenant_path
from ops.commands import approve, cancel, replay
from ops.views import tenant_view, user_exists, user_timeline

__all__ = ["SYNC_HANDLERS"]

TIMELINE_EVENTS = 200
_EVENT_KEYS = ("id", "at", "event")


def event_tone(event: dict[str, str]) -> str:
    """The colour of a provisioning-log line: what went wrong stands out."""
    name, status = event.get("event", ""), event.get("status", "")
    if name == "failed" or (name == "lms" and status != "deferred" and not status.startswith("2")):
        return "bad"
    if name in ("held", "breaker_cancelled", "deferred") or status == "deferred":
        return "warn"
    if name in ("synced", "adopted") or (name == "lms" and status.startswith("2")):
        return "good"
    return "plain"


@get("/tenants/{slug:str}/users/{user_id:str}", name="web-user")
async def user_page(
    request: Req, session: SessionDep, slug: FromPath[str], user_id: FromPath[str]
) -> Template:
    """One user's story: shadow version, sync record, breaker hold, provisioning log."""
    tenant = await reach_tenant(request, session.principal, slug)
    s = services_of(request)
    data = await user_timeline(s.redis, slug, checked_user_id(user_id), TIMELINE_EVENTS)
    if data["shadow"] is None and data["state"] is None and not data["events"]:
        raise AdminError(404, "no such user")
    events = [
        {
            "at": event.get("at", ""),
            "event": event.get("event", ""),
            "tone": event_tone(event),
            "details": [(k, v) for k, v in event.items() if k not in _EVENT_KEYS],
        }
        for event in data["events"]
    ]
    return page(
        request,
        "user.html",
        session,
        tenant=tenant_view(tenant, s.settings),
        user=data,
        events=events,
    )


@post("/tenants/{slug:str}/replay", name="web-replay")
async def retry(request: Req, session: SessionDep, slug: FromPath[str]) -> Redirect:
    """Retry one user (`user_id` in the form) or every failed user."""
    form = await posted_form(request, session)
    await reach_tenant(request, session.principal, slug)
    s = services_of(request)
    user_id = form.get("user_id") or None
    if user_id is not None and not await user_exists(s.redis, slug, checked_user_id(user_id)):
        raise AdminError(404, "no such user")
    count = await replay(s.redis, s.queue, slug, user_id)
    audit(request, session.principal, "replay", user_id=user_id or "all failed", replayed=count)
    back = f"{tenant_path(slug)}/users/{user_id}" if form.get("back") == "user" else None
    return see_other(
        back or tenant_path(slug), anchor="" if back else "failed", done="retried", n=count
    )


@post("/tenants/{slug:str}/breaker/approve", name="web-breaker-approve")
async def breaker_approve(request: Req, session: SessionDep, slug: FromPath[str]) -> Redirect:
    """Release the held deactivations (and let more through for one window)."""
    await posted_form(request, session)
    tenant = await reach_tenant(request, session.principal, slug)
    s = services_of(request)
    released = await approve(s.redis, s.queue, slug, interval_ms=tenant.job_interval_ms)
    audit(request, session.principal, "breaker approve", released=released, via="web")
    return see_other(tenant_path(slug), anchor="breaker", done="approved", n=released)


@post("/tenants/{slug:str}/breaker/cancel", name="web-breaker-cancel")
async def breaker_cancel(request: Req, session: SessionDep, slug: FromPath[str]) -> Redirect:
    """Drop the held deactivations: the learners stay active."""
    await posted_form(request, session)
    await reach_tenant(request, session.principal, slug)
    dropped = await cancel(services_of(request).redis, slug)
    audit(request, session.principal, "breaker cancel", dropped=dropped, via="web")
    return see_other(tenant_path(slug), anchor="breaker", done="cancelled", n=dropped)


SYNC_HANDLERS = [user_page, retry, breaker_approve, breaker_cancel]
