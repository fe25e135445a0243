"""What every admin page handler shares: the services, the session, reading
a CSRF-checked form, rendering a template, redirecting after a POST, and
the one-word health of a tenant."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.response import Redirect, Template

from api.services import Services
from api.web.config import WebSettings
from api.web.session import LoginRequired, Session, check_csrf, read_session

__all__ = [
    "NOTICES",
    "Req",
    "SessionDep",
    "WebDep",
    "current_session",
    "health_of",
    "page",
    "posted_form",
    "see_other",
    "services_of",
]

Req = Request[Any, Any, Any]
#: How a handler asks for the logged-in session and the page's settings
#: (the router provides `session` and `web`).
SessionDep = NamedDependency[Session]
WebDep = NamedDependency[WebSettings]

#: Messages a redirect may ask the next page to show (`?done=<code>&n=<count>`):
#: fixed texts, so nothing from the query string is ever shown.
NOTICES = {
    "retried": "{n} user(s) marked pending and queued for another sync.",
    "approved": "Breaker approved: {n} held user(s) released for deactivation.",
    "cancelled": "Breaker cancelled: {n} held deactivation(s) dropped; the learners stay active.",
    "revoked": "The token was revoked; it stops working at once.",
}


def services_of(request: Req) -> Services:
    services: Services = request.app.state.services
    return services


async def current_session(request: Req, web: WebDep) -> Session:
    """Litestar dependency: the logged-in session, else a redirect to the login form."""
    session = await read_session(request, web, services_of(request))
    if session is None or session.kind == "anonymous":
        raise LoginRequired
    request.state.web_session = session
    return session


async def posted_form(request: Req, session: Session) -> dict[str, str]:
    """The POSTed form's text fields, once its CSRF token is checked."""
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    check_csrf(session, fields)
    return fields


def notice_of(request: Req) -> str | None:
    text = NOTICES.get(request.query_params.get("done", ""))
    if text is None:
        return None
    raw = request.query_params.get("n", "0")
    return text.format(n=int(raw) if raw.isdigit() and len(raw) < 10 else 0)


def page(
    request: Req,
    template: str,
    session: Session | None,
    *,
    status: int = 200,
    cookies: list[Cookie] | None = None,
    **context: Any,
) -> Template:
    logged_in = session is not None and session.kind != "anonymous"
    return Template(
        template_name=template,
        context={
            "session": session,
            "principal": session.principal if session is not None and logged_in else None,
            "csrf": session.csrf if session is not None else "",
            "notice": notice_of(request),
            **context,
        },
        status_code=status,
        cookies=cookies or [],
    )


def see_other(
    path: str, *, anchor: str = "", cookies: list[Cookie] | None = None, **query: str | int
) -> Redirect:
    """The redirect after a successful POST (Post/Redirect/Get)."""
    url = path + (f"?{urlencode(query)}" if query else "") + (f"#{anchor}" if anchor else "")
    return Redirect(url, status_code=303, cookies=cookies or [])


def health_of(view: dict[str, Any]) -> tuple[str, str]:
    """(label, tone) of a tenant's health for the status colours."""
    if not view.get("enabled", True):
        return "disabled", "muted"
    if view.get("breaker_tripped"):
        return "breaker tripped", "bad"
    if view.get("failed", 0):
        return "failures", "bad"
    if view.get("oldest_pending_seconds", 0) > 300:
        return "lagging", "warn"
    if view.get("pending", 0) or view.get("held", 0):
        return "syncing", "info"
    return "healthy", "good"
