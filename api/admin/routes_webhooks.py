"""Admin routes of a tenant's notification webhook (docs/operations.md,
"Notifications"): the operator sets or removes it; both the operator and
the tenant's admin key read it, with its recent deliveries, and may send a
test event. The signing secret is in the answer to the PUT only."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from litestar import Request, delete, get, post, put
from litestar.params import JSONBody

from api.admin.auth import AdminDep, ServicesDep, TenantDep, audit, operator_only
from api.admin.errors import AdminError
from api.admin.policy import MAX_URL_LENGTH, URL_PATTERN
from api.admin.schemas import json_body
from ops.views import check_webhook_url
from shadow.webhooks import WebhookStore, new_secret
from worker.webhooks import enqueue_delivery

__all__ = ["WEBHOOK_HANDLERS", "WebhookSet", "webhook_view"]

Req = Request[Any, Any, Any]
Json = dict[str, Any]


class WebhookSet(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The webhook's URL, and its signing secret (drawn by the bridge when absent)."""

    url: Annotated[str, msgspec.Meta(max_length=MAX_URL_LENGTH, pattern=URL_PATTERN)]
    secret: Annotated[str, msgspec.Meta(min_length=16, max_length=200)] | None = None


class DeliveryView(msgspec.Struct, kw_only=True):
    """One delivery as ops see it: `pending` (queued or retrying), `delivered`, `failed`."""

    delivery_id: str
    event: str
    status: str
    attempts: int
    last_error: str
    last_status: int | None
    created_at: str
    updated_at: str


class WebhookView(msgspec.Struct, kw_only=True):
    """The webhook (never its secret) and its recent deliveries, newest first."""

    tenant: str
    url: str | None
    set_at: str | None
    deliveries: list[DeliveryView]


class WebhookShown(msgspec.Struct, kw_only=True):
    """The answer to setting the webhook: the signing secret, this once."""

    tenant: str
    url: str
    set_at: str
    secret: str


class WebhookRemoved(msgspec.Struct, kw_only=True):
    tenant: str
    removed: bool


class DeliveryQueued(msgspec.Struct, kw_only=True):
    tenant: str
    delivery_id: str


async def webhook_view(store: WebhookStore, slug: str, limit: int = 20) -> WebhookView:
    config = await store.config(slug)
    return WebhookView(
        tenant=slug,
        url=config.url if config else None,
        set_at=config.set_at if config else None,
        deliveries=[
            msgspec.convert(
                {k: v for k, v in msgspec.structs.asdict(d).items() if k != "body"}, DeliveryView
            )
            for d in await store.recent(slug, limit)
        ],
    )


@get("/tenants/{slug:str}/webhook", name="admin-webhook")
async def webhook(services: ServicesDep, tenant: TenantDep) -> WebhookView:
    return await webhook_view(WebhookStore(services.redis), tenant.slug)


@put(
    "/tenants/{slug:str}/webhook",
    name="admin-webhook-set",
    dto=json_body(WebhookSet),
    return_dto=None,
    guards=[operator_only],
)
async def webhook_set(
    request: Req,
    principal: AdminDep,
    services: ServicesDep,
    tenant: TenantDep,
    data: JSONBody[WebhookSet],
) -> WebhookShown:
    """Set the URL; the answer holds the signing secret, this once."""
    if problem := check_webhook_url(data.url):
        raise AdminError(422, problem)
    config = await WebhookStore(services.redis).set(
        tenant.slug, data.url, data.secret or new_secret()
    )
    audit(request, principal, "webhook set", host=urlsplit(data.url).hostname)
    return WebhookShown(
        tenant=tenant.slug, url=config.url, set_at=config.set_at, secret=config.secret
    )


@delete(
    "/tenants/{slug:str}/webhook",
    name="admin-webhook-clear",
    status_code=200,
    guards=[operator_only],
)
async def webhook_clear(
    request: Req, principal: AdminDep, services: ServicesDep, tenant: TenantDep
) -> WebhookRemoved:
    removed = await WebhookStore(services.redis).clear(tenant.slug)
    audit(request, principal, "webhook clear", removed=removed)
    return WebhookRemoved(tenant=tenant.slug, removed=removed)


@post("/tenants/{slug:str}/webhook/test", name="admin-webhook-test", status_code=202)
async def webhook_test(
    request: Req, principal: AdminDep, services: ServicesDep, tenant: TenantDep
) -> DeliveryQueued:
    """Queue a `webhook.test` delivery, to check the receiver and its secret."""
    if await WebhookStore(services.redis).config(tenant.slug) is None:
        raise AdminError(404, "the tenant has no webhook")
    delivery_id = await enqueue_delivery(
        services.redis, services.queue, tenant.slug, "webhook.test", {}
    )
    audit(request, principal, "webhook test", delivery_id=delivery_id)
    return DeliveryQueued(tenant=tenant.slug, delivery_id=delivery_id)


WEBHOOK_HANDLERS = [webhook, webhook_set, webhook_clear, webhook_test]
