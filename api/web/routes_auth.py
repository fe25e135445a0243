"""Login and logout of the admin page (`/admin/login`, `/admin/logout`).

The login form takes the operator token or a tenant admin key, checks it as
the admin API does (api/web/session.py `authenticate`), and swaps the
anonymous session for a logged-in one. Failed logins count against the
client address with the SCIM API's failed-authentication throttle
(api/auth.py), so guessing is answered 429 after a while.
"""

from __future__ import annotations

from litestar import get, post
from litestar.response import Redirect, Template

from api.admin.auth import audit
from api.auth import over_failure_limit
from api.web.pages import Req, SessionDep, WebDep, page, posted_form, see_other, services_of
from api.web.session import (
    CsrfRefused,
    anonymous_session,
    authenticate,
    clear_cookie,
    login_session,
    read_session,
    session_cookie,
)

__all__ = ["AUTH_HANDLERS"]

HOME = "/admin"
LOGIN = "/admin/login"


@get("/login", name="web-login")
async def login_form(request: Req, web: WebDep) -> Template | Redirect:
    services = services_of(request)
    session = await read_session(request, web, services)
    if session is not None and session.kind != "anonymous":
        return see_other(HOME)
    if session is not None:
        return page(request, "login.html", session)
    fresh = anonymous_session(web)
    return page(request, "login.html", fresh, cookies=[session_cookie(web, services, fresh)])


@post("/login", name="web-login-submit")
async def login(request: Req, web: WebDep) -> Template | Redirect:
    services = services_of(request)
    session = await read_session(request, web, services)
    if session is None:  # no form of ours was shown to this browser, or it expired
        raise CsrfRefused
    form = await posted_form(request, session)
    principal = await authenticate(services, form.get("secret", ""))
    if principal is None:
        if await over_failure_limit(request, services):
            error, status = "Too many failed logins from this address; wait a minute.", 429
        else:
            error, status = "That is not a valid operator token or tenant admin key.", 401
        return page(request, "login.html", session, status=status, error=error)
    fresh = login_session(web, services, principal)
    if principal.tenant:
        request.state.tenant = principal.tenant
    audit(request, principal, "web login")
    return see_other(HOME, cookies=[session_cookie(web, services, fresh)])


@post("/logout", name="web-logout")
async def logout(request: Req, session: SessionDep) -> Redirect:
    await posted_form(request, session)
    return see_other(LOGIN, cookies=[clear_cookie(services_of(request))])


AUTH_HANDLERS = [login_form, login, logout]
