"""Admin pages of provisioning: one user's story, retrying failed users,
the mass-deactivation breaker (approve or cancel after a confirmation that
says how many learners and who; thresholds).

The same functions as the admin API and the CLI: `user_timeline` and
`replay` (ops/), and the admin policy's `approve_held`, `cancel_held` and
`change_breaker` (api/admin/policy.py: nothing to approve is a 409, a
customer's admin may tighten the breaker but not loosen or disable it).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.admin.auth import audit, reach_tenant
from api.admin.errors import AdminError
from api.admin.policy import approve_held, cancel_held, change_breaker
from api.admin.routes_sync import checked_user_id
from api.web.events import describe_event
from api.web.flash import Flash, push_flash
from api.web.pages import Req, SessionDep, breaker_badge, page, posted_form, render, see_other
from api.web.pages import services_of as _services
from api.web.people import people
from api.web.reasons import explain
from api.web.routes_tenants import tenant_path
from ops.commands import replay
from ops.views import breaker_view, tenant_view, user_exists, user_timeline

__all__ = ["SYNC_HANDLERS"]

TIMELINE_EVENTS = 200
HELD_SHOWN = 50


@get("/tenants/{slug:str}/users/{user_id:str}", name="web-user")
async def user_page(
    request: Req, session: SessionDep, slug: FromPath[str], user_id: FromPath[str]
) -> Template:
    """One user's story: what Entra sent, the sync, a breaker hold, the log."""
    tenant = await reach_tenant(request, session.principal, slug)
    s = _services(request)
    data = await user_timeline(s.redis, slug, checked_user_id(user_id), TIMELINE_EVENTS)
    if data["shadow"] is None and data["state"] is None and not data["events"]:
        raise AdminError(404, "no such user")
    person = (await people(s.resources, slug, [data["user_id"]]))[data["user_id"]]
    return await render(
        request,
        "user.html",
        session,
        tenant=tenant_view(tenant, s.settings),
        user=data,
        person=person,
        reason=explain(data["error"]) if data["state"] == "failed" else None,
        events=[describe_event(event) for event in data["events"]],
    )


@post("/tenants/{slug:str}/replay", name="web-replay")
async def retry(request: Req, session: SessionDep, slug: FromPath[str]) -> Redirect:
    """Retry one user (`user_id` in the form) or every failed user."""
    form = await posted_form(request, session)
    await reach_tenant(request, session.principal, slug)
    s = _services(request)
    user_id = form.get("user_id") or None
    if user_id is not None and not await user_exists(s.redis, slug, checked_user_id(user_id)):
        raise AdminError(404, "no such user")
    count = await replay(s.redis, s.queue, slug, user_id)
    audit(request, session.principal, "replay", user_id=user_id or "all failed", replayed=count)
    if user_id is not None:
        name = (await people(s.resources, slug, [user_id]))[user_id].label
        text = f"{name} is queued for another sync." if count else f"{name} had nothing to retry."
    else:
        text = f"{count} failed user{'' if count == 1 else 's'} queued for another sync."
    if form.get("back") == "user" and user_id is not None:
        await push_flash(s, session, Flash(section="sync", text=text))
        return see_other(f"{tenant_path(slug)}/users/{user_id}", anchor="sync")
    await push_flash(s, session, Flash(section="failed", text=text))
    return see_other(tenant_path(slug), anchor="failed")


async def _held(request: Req, session: SessionDep, slug: str) -> tuple[Any, dict[str, Any]]:
    tenant = await reach_tenant(request, session.principal, slug)
    s = _services(request)
    breaker = await breaker_view(s.redis, slug, held_limit=HELD_SHOWN)
    who = await people(s.resources, slug, [h["user_id"] for h in breaker["held_users"]])
    for row in breaker["held_users"]:
        row["person"] = who[row["user_id"]]
    return tenant, breaker


def _learners(n: int) -> str:
    return f"{n} learner{'' if n == 1 else 's'}"


def _nothing_held(breaker: dict[str, Any]) -> str | None:
    """What the confirmation says instead of a button when nothing is held."""
    if breaker["tripped"] or breaker["held"]:
        return None
    return "Nothing is held: the breaker has no deactivations waiting for a decision."


@get("/tenants/{slug:str}/breaker/approve", name="web-breaker-approve-confirm")
async def breaker_approve_confirm(
    request: Req, session: SessionDep, slug: FromPath[str]
) -> Template:
    tenant, breaker = await _held(request, session, slug)
    n = breaker["held"]
    return page(
        request,
        "confirm.html",
        session,
        tenant=tenant_view(tenant, _services(request).settings),
        heading=f"Approve {n} deactivation{'' if n == 1 else 's'}?",
        consequences=[
            f"The LMS deactivates {_learners(n)}: they can no longer sign in to their courses.",
            f"For the next {breaker['config']['window_s'] // 60} minutes, further deactivations "
            "pass without being counted by the breaker.",
        ],
        people=breaker["held_users"],
        more=max(0, n - len(breaker["held_users"])),
        action=f"{tenant_path(slug)}/breaker/approve",
        button=f"Approve {n} deactivation{'' if n == 1 else 's'}",
        danger=True,
        nothing=_nothing_held(breaker),
        back=f"{tenant_path(slug)}#breaker",
    )


@post("/tenants/{slug:str}/breaker/approve", name="web-breaker-approve")
async def breaker_approve(request: Req, session: SessionDep, slug: FromPath[str]) -> Redirect:
    """Release the held deactivations (and let more through for one window);
    with nothing held (another admin decided first) the page says so."""
    await posted_form(request, session)
    tenant = await reach_tenant(request, session.principal, slug)
    s = _services(request)
    try:
        released = await approve_held(s.redis, s.queue, slug, interval_ms=tenant.job_interval_ms)
    except AdminError as exc:
        return await _nothing_to_decide(request, session, slug, exc)
    audit(request, session.principal, "breaker approve", released=released, via="web")
    text = f"Approved: {_learners(released)} released for deactivation."
    await push_flash(s, session, Flash(section="breaker", text=text))
    return see_other(tenant_path(slug), anchor="breaker")


@get("/tenants/{slug:str}/breaker/cancel", name="web-breaker-cancel-confirm")
async def breaker_cancel_confirm(
    request: Req, session: SessionDep, slug: FromPath[str]
) -> Template:
    tenant, breaker = await _held(request, session, slug)
    n = breaker["held"]
    return page(
        request,
        "confirm.html",
        session,
        tenant=tenant_view(tenant, _services(request).settings),
        heading=f"Keep {_learners(n)} active?",
        consequences=[
            f"The {n} held deactivation{'' if n == 1 else 's'} are dropped; "
            "these learners stay active in the LMS.",
            "If Entra sends them again (a later change), the breaker counts them again.",
        ],
        people=breaker["held_users"],
        more=max(0, n - len(breaker["held_users"])),
        action=f"{tenant_path(slug)}/breaker/cancel",
        button=f"Keep {_learners(n)} active",
        nothing=_nothing_held(breaker),
        back=f"{tenant_path(slug)}#breaker",
    )


@post("/tenants/{slug:str}/breaker/cancel", name="web-breaker-cancel")
async def breaker_cancel(request: Req, session: SessionDep, slug: FromPath[str]) -> Redirect:
    """Drop the held deactivations: the learners stay active."""
    await posted_form(request, session)
    await reach_tenant(request, session.principal, slug)
    s = _services(request)
    try:
        dropped = await cancel_held(s.redis, slug)
    except AdminError as exc:
        return await _nothing_to_decide(request, session, slug, exc)
    audit(request, session.principal, "breaker cancel", dropped=dropped, via="web")
    text = f"Cancelled: {_learners(dropped)} stay active."
    await push_flash(s, session, Flash(section="breaker", text=text))
    return see_other(tenant_path(slug), anchor="breaker")


async def _nothing_to_decide(
    request: Req, session: SessionDep, slug: str, exc: AdminError
) -> Redirect:
    """The admin policy's 409 (nothing held), said next to the breaker."""
    if exc.status != 409:
        raise exc
    text = "Nothing is held any more: someone decided already, or the window passed."
    await push_flash(_services(request), session, Flash(section="breaker", tone="info", text=text))
    return see_other(tenant_path(slug), anchor="breaker")


def _breaker_update(form: dict[str, str], operator: bool) -> tuple[dict[str, Any], list[str]]:
    """The thresholds a breaker form gives, in the admin API's terms
    (share 0-1, window in seconds), or what is wrong with them."""
    values: dict[str, Any] = {}
    problems = []
    try:
        values["share"] = float(form.get("share_percent", "")) / 100
    except ValueError:
        problems.append("The share is a percentage, such as 20.")
    try:
        values["min_learners"] = int(form.get("min_learners", ""))
    except ValueError:
        problems.append("The minimum is a whole number of learners.")
    try:
        values["window_s"] = int(form.get("window_minutes", "")) * 60
    except ValueError:
        problems.append("The window is a whole number of minutes.")
    # Only the operator's form has the on/off switch (the admin policy refuses
    # a customer's admin turning it off whatever it sends).
    if operator:
        values["enabled"] = form.get("enabled") == "on"
    return values, problems


@post("/tenants/{slug:str}/breaker", name="web-breaker-config")
async def breaker_config(request: Req, session: SessionDep, slug: FromPath[str]) -> Redirect:
    form = await posted_form(request, session)
    principal = session.principal
    await reach_tenant(request, principal, slug)
    s = _services(request)
    values, problems = _breaker_update(form, principal.operator)
    config = None
    if not problems:
        try:
            config = await change_breaker(s.redis, principal, slug, values)
        except AdminError as exc:
            if exc.status not in (403, 422):
                raise
            problems = [f"{p[:1].upper()}{p[1:]}." for p in exc.detail.split("; ")]
    if config is None:
        text = " ".join(problems)
        await push_flash(s, session, Flash(section="breaker", tone="bad", text=text, form=form))
        return see_other(tenant_path(slug), anchor="breaker")
    audit(request, principal, "breaker config", via="web", **values)
    state = breaker_badge({"config": msgspec.to_builtins(config)})[0]
    text = f"Breaker saved: {state}, {values['share'] * 100:g}% per {values['window_s'] // 60} min."
    await push_flash(s, session, Flash(section="breaker", text=text))
    return see_other(tenant_path(slug), anchor="breaker")


SYNC_HANDLERS = [
    user_page,
    retry,
    breaker_approve_confirm,
    breaker_approve,
    breaker_cancel_confirm,
    breaker_cancel,
    breaker_config,
]
