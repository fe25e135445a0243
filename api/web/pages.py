"""What every admin page handler shares: the services, the session, reading
a CSRF-checked form, rendering a template, redirecting after a POST, and
the one-word health of a tenant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from litestar import Request
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.response import Redirect, Template

from api.services import Services
from api.web.config import WebSettings
from api.web.flash import pop_flashes
from api.web.session import LoginRequired, Session, check_csrf, read_session

__all__ = [
    "WEB_HOME",
    "Req",
    "SessionDep",
    "WebDep",
    "current_session",
    "health_of",
    "page",
    "posted_form",
    "render",
    "safe_next",
    "see_other",
    "services_of",
]

Req = Request[Any, Any, Any]
#: How a handler asks for the logged-in session and the page's settings
#: (the router provides `session` and `web`).
SessionDep = NamedDependency[Session]
WebDep = NamedDependency[WebSettings]
WEB_HOME = "/admin"


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


async def render(
    request: Req,
    template: str,
    session: Session,
    *,
    status: int = 200,
    **context: Any,
) -> Template:
    """A logged-in page, with the messages waiting for it (api/web/flash.py)."""
    flashes = await pop_flashes(services_of(request), session)
    return page(request, template, session, status=status, flashes=flashes, **context)


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
    context.setdefault("flashes", {})
    return Template(
        template_name=template,
        context={
            "session": session,
            "principal": session.principal if session is not None and logged_in else None,
            "csrf": session.csrf if session is not None else "",
            **context,
        },
        status_code=status,
        cookies=cookies or [],
    )


def safe_next(value: str | None) -> str | None:
    """A return-to address, if it is a page of this site: a relative path
    under /admin/ (never `//host`, a scheme, a backslash or a control
    character), so a crafted login link cannot send the user elsewhere."""
    if not value or len(value) > 1000:
        return None
    if not (value == WEB_HOME or value.startswith(WEB_HOME + "/")) or value.startswith("//"):
        return None
    if "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return None
    path = value.split("?", 1)[0].split("#", 1)[0]
    if "/." in path or path.startswith(WEB_HOME + "/v1") or path.startswith(WEB_HOME + "/static"):
        return None
    return value


def see_other(
    path: str,
    *,
    anchor: str = "",
    cookies: list[Cookie] | None = None,
    query: Mapping[str, str] | None = None,
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


def breaker_badge(breaker: dict[str, Any]) -> tuple[str, str]:
    """(label, tone) of a breaker's true state: tripped, approved (so
    deactivations pass uncounted) until when, off, or on."""
    if breaker.get("tripped") or breaker.get("mode") == "tripped":
        held = int(breaker.get("held") or 0)
        return f"tripped: {held} held", "bad"
    until = breaker.get("approved_until")
    if until:
        return f"approved until {str(until)[11:16]} UTC", "warn"
    if not breaker.get("config", {}).get("enabled", True):
        return "off", "warn"
    return "on", "good"
