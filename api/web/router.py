"""The admin page as a Litestar plugin: its router under `/admin`, the
static assets under `/admin/static`, the Jinja template engine (autoescape
on) and the page's error handlers.

A plugin rather than a bare router because templates are configured on the
app (`template_config`); `create_app` registers it with one line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from litestar import Response, Router
from litestar.config.app import AppConfig
from litestar.datastructures import ResponseHeader
from litestar.di import Provide
from litestar.exceptions import HTTPException, ImproperlyConfiguredException
from litestar.plugins import InitPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig
from redis.exceptions import RedisError

from api.admin.errors import AdminError
from api.middleware import route_of
from api.web.config import WebSettings, load_web_settings
from api.web.filters import FILTERS
from api.web.pages import WEB_HOME, Req, current_session, page, safe_next, see_other
from api.web.routes_auth import AUTH_HANDLERS, LOGIN
from api.web.routes_manage import MANAGE_HANDLERS
from api.web.routes_sync import SYNC_HANDLERS
from api.web.routes_tenants import TENANT_HANDLERS
from api.web.session import CsrfRefused, LoginRequired, Session, had_session

__all__ = ["WEB_PREFIX", "AdminPage", "web_router"]

log = logging.getLogger("scim_bridge.web")

WEB_PREFIX = WEB_HOME
_HERE = Path(__file__).parent
TEMPLATES = _HERE / "templates"
STATIC = _HERE / "static"

#: Sent with every page: never cached (a token is shown once), never framed,
#: scripts and styles only from our own static files.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

_TITLES = {
    400: "Bad request",
    401: "Not logged in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    413: "Too large",
    422: "Invalid",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Unavailable",
}


def _error_page(request: Req, status: int, detail: str) -> Response[Any]:
    session: Session | None = getattr(request.state, "web_session", None)
    detail = detail.strip().rstrip(".")
    detail = f"{detail[:1].upper()}{detail[1:]}."  # the admin API's details are fragments
    response = page(
        request,
        "error.html",
        session,
        status=status,
        title=_TITLES.get(status, "Error"),
        detail=detail,
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def _login_required(request: Req, _: LoginRequired) -> Response[Any]:
    """To the login form, which says when a session ended and brings the user
    back where they were: the page asked for, or for a form sent after the
    session ended, the page the form was on (the same-origin Referer)."""
    if request.method == "GET":
        query = request.url.query
        back = request.url.path + (f"?{query}" if query else "")
    else:
        referer = request.headers.get("referer", "")
        origin = f"{request.url.scheme}://{request.url.netloc}"
        back = referer[len(origin) :] if referer.startswith(origin + "/") else ""
    query_args: dict[str, str] = {}
    next_url = safe_next(back)
    if next_url and next_url not in (WEB_HOME, WEB_HOME + "/"):
        query_args["next"] = next_url
    web: WebSettings = request.app.state.web_settings
    if had_session(request, web):
        query_args["why"] = "ended"
    return see_other(LOGIN, query=query_args)


def _csrf_refused(request: Req, _: CsrfRefused) -> Response[Any]:
    return _error_page(
        request, 403, "This form is stale or did not come from this page: reload it and try again."
    )


def _admin_error(request: Req, exc: AdminError) -> Response[Any]:
    return _error_page(request, exc.status, exc.detail)


_HTTP_DETAILS = {
    404: "There is no page at this address",
    405: "This address does not take that kind of request; use the page's own links and buttons",
    413: "What was sent is too large",
}


def _http_error(request: Req, exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    detail = _HTTP_DETAILS.get(status) or _TITLES.get(status, "The request was not understood")
    return _error_page(request, status, detail)


def _redis_error(request: Req, exc: RedisError) -> Response[Any]:
    route = route_of(request.scope)
    log.error("redis unavailable", extra={"route": route, "error": repr(exc)[:200]})
    return _error_page(request, 503, "The bridge's store is unavailable; retry in a moment.")


def _unexpected(request: Req, exc: Exception) -> Response[Any]:
    log.exception("unhandled admin page error", extra={"route": route_of(request.scope)})
    return _error_page(request, 500, "The error was logged.")


WEB_EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    LoginRequired: _login_required,
    CsrfRefused: _csrf_refused,
    AdminError: _admin_error,
    HTTPException: _http_error,
    RedisError: _redis_error,
    Exception: _unexpected,
}


def web_router(web: WebSettings) -> Router:
    def provide_web() -> WebSettings:
        return web

    return Router(
        path=WEB_PREFIX,
        route_handlers=[*AUTH_HANDLERS, *TENANT_HANDLERS, *SYNC_HANDLERS, *MANAGE_HANDLERS],
        dependencies={
            "web": Provide(provide_web, sync_to_thread=False),
            "session": Provide(current_session),
        },
        exception_handlers=WEB_EXCEPTION_HANDLERS,
        response_headers=[ResponseHeader(name=k, value=v) for k, v in SECURITY_HEADERS.items()],
        include_in_schema=False,
    )


def template_engine() -> JinjaTemplateEngine:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every page: nothing from Redis or a form is trusted
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(FILTERS)
    return JinjaTemplateEngine.from_environment(environment)


class AdminPage(InitPlugin):
    """Registers the admin page on the app (`plugins=[AdminPage()]`)."""

    def __init__(self, web: WebSettings | None = None) -> None:
        self._web = web

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        if app_config.template_config is not None:
            raise ImproperlyConfiguredException("the admin page owns the app's template config")
        app_config.template_config = TemplateConfig(instance=template_engine())
        web = self._web or load_web_settings()
        app_config.state["web_settings"] = web
        app_config.route_handlers.extend(
            [
                web_router(web),
                create_static_files_router(
                    path=f"{WEB_PREFIX}/static",
                    directories=[STATIC],
                    name="web-static",
                    include_in_schema=False,
                ),
            ]
        )
        return app_config
