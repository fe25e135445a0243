"""Login and logout of the admin page (`/admin/login`, `/admin/logout`).

The login form takes the operator token or a tenant admin key, checks it as
the admin API does (api/web/session.py `authenticate`), and swaps the
anonymous session for a logged-in one. A client over its failed-login limit
(the counter the SCIM and admin APIs share, api/auth.py) is answered 429
before any secret is compared. After login the user goes back to the page
they were on (`next`, only ever a page of this site: `safe_next`).
"""

from __future__ import annotations

from litestar import get, post
from litestar.response import Redirect, Template

from api.admin.auth import audit
from api.auth import AUTH_FAILURE_WINDOW_S, already_over_failure_limit, over_failure_limit
from api.web.pages import (
    WEB_HOME,
    Req,
    SessionDep,
    WebDep,
    page,
    posted_form,
    safe_next,
    see_other,
    services_of,
)
from api.web.session import (
    Session,
    anonymous_session,
    authenticate,
    check_csrf,
    clear_cookie,
    end_session,
    login_session,
    read_session,
    session_cookie,
)

__all__ = ["AUTH_HANDLERS", "LOGIN"]

LOGIN = "/admin/login"

#: Why the login form is shown again (`?why=`): fixed texts only.
WHY = {
    "ended": "Your session ended. Log in again to carry on where you were; "
    "a form you had just sent was not saved.",
    "stale": "The login form had expired. Enter your key again.",
    "out": "You are logged out.",
}


@get("/login", name="web-login")
async def login_form(request: Req, web: WebDep) -> Template | Redirect:
    services = services_of(request)
    session = await read_session(request, web, services)
    next_url = safe_next(request.query_params.get("next"))
    if session is not None and session.kind != "anonymous":
        return see_other(next_url or WEB_HOME)
    why = WHY.get(request.query_params.get("why", ""))
    fresh = session or anonymous_session(web)
    cookies = [] if session is not None else [session_cookie(web, services, fresh)]
    return page(request, "login.html", fresh, cookies=cookies, why=why, next=next_url or "")


@post("/login", name="web-login-submit")
async def login(request: Req, web: WebDep) -> Template | Redirect:
    services = services_of(request)
    session = await read_session(request, web, services)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    next_url = safe_next(form.get("next"))
    if session is None or session.kind != "anonymous":
        # The form's anonymous session expired (or the browser logged in
        # elsewhere meanwhile): show a fresh form, never a bare refusal.
        back = {"why": "stale", **({"next": next_url} if next_url else {})}
        return see_other(LOGIN, query=back)
    check_csrf(session, form)
    if await already_over_failure_limit(request, services):
        return _too_many(request, session, next_url)
    principal = await authenticate(services, form.get("secret", ""))
    if principal is None:
        if await over_failure_limit(request, services):
            return _too_many(request, session, next_url)
        error = "That is not a valid key. Check it and try again."
        return page(request, "login.html", session, status=401, error=error, next=next_url or "")
    fresh = await login_session(web, services, principal)
    if principal.tenant:
        request.state.tenant = principal.tenant
    audit(request, principal, "web login")
    return see_other(next_url or WEB_HOME, cookies=[session_cookie(web, services, fresh)])


def _too_many(request: Req, session: Session, next_url: str | None) -> Template:
    error = "Too many failed logins from this address. Wait a minute, then try again."
    response = page(request, "login.html", session, status=429, error=error, next=next_url or "")
    response.headers["Retry-After"] = str(AUTH_FAILURE_WINDOW_S)
    return response


@post("/logout", name="web-logout")
async def logout(request: Req, session: SessionDep) -> Redirect:
    await posted_form(request, session)
    services = services_of(request)
    await end_session(services, session)
    return see_other(LOGIN, cookies=[clear_cookie(services)], query={"why": "out"})


AUTH_HANDLERS = [login_form, login, logout]
