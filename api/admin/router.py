"""The admin router: every admin handler under `/admin/v1`, one auth
dependency and the admin error handlers."""

from __future__ import annotations

from litestar import Router
from litestar.datastructures import ResponseHeader
from litestar.di import Provide

from api.admin.auth import admin_principal, authorize_first, provide_services, provide_tenant
from api.admin.errors import ADMIN_EXCEPTION_HANDLERS, ERROR_RESPONSES, SECURITY_HEADERS
from api.admin.routes_lifecycle import LIFECYCLE_HANDLERS
from api.admin.routes_sync import SYNC_HANDLERS
from api.admin.routes_tenants import TENANT_HANDLERS
from api.admin.routes_webhooks import WEBHOOK_HANDLERS
from api.admin.schemas import guard_body

__all__ = ["ADMIN_PREFIX", "admin_router"]

ADMIN_PREFIX = "/admin/v1"


def admin_router() -> Router:
    handlers = [*TENANT_HANDLERS, *SYNC_HANDLERS, *LIFECYCLE_HANDLERS, *WEBHOOK_HANDLERS]
    for handler in handlers:  # the refusals, in the OpenAPI document too
        handler.responses = {**ERROR_RESPONSES, **(handler.responses or {})}
    return Router(
        path=ADMIN_PREFIX,
        route_handlers=handlers,
        dependencies={
            "principal": Provide(admin_principal),
            "services": Provide(provide_services, sync_to_thread=False),
            "tenant": Provide(provide_tenant),
        },
        guards=[authorize_first],  # before any body is read
        before_request=guard_body,  # every body's size and depth, before it is decoded
        exception_handlers=ADMIN_EXCEPTION_HANDLERS,
        response_headers=[ResponseHeader(name=k, value=v) for k, v in SECURITY_HEADERS.items()],
    )
