"""Admin routes of a tenant's notification webhook (docs/operations.md,
"Notifications"): the operator sets or removes it; both the operator and
the tenant's admin key read it, with its recent deliveries, and may send a
test event. The signing secret is in the answer to the PUT only."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from litestar import Request, delete, get, post, put
from litestar.params import FromPath, JSONBody

from api.admin.auth import AdminDep, audit, reach_tenant, require_operator
from api.admin.errors import AdminError
from api.admin.schemas import json_body
from api.services import Services
from ops.views import check_webhook_url
from shadow.webhooks import WebhookStore, new_secret
from worker.webhooks import enqueue_delivery

__all__ = ["WEBHOOK_HANDLERS", "WebhookSet", "webhook_view"]

Req = Request[Any, Any, Any]
Json = dict[str, Any]


class WebhookSet(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The webhook's URL, and its signing secret (drawn by the bridge when absent)."""

    url: Annotated[str, msgspec.Meta(max_length=2000)]
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


def _services(request: Req) -> Services:
    services: Services = request.app.state.services
    return services


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
async def webhook(request: Req, principal: AdminDep, slug: FromPath[str]) -> WebhookView:
    await reach_tenant(request, principal, slug)
    return await webhook_view(WebhookStore(_services(request).redis), slug)


@put("/tenants/{slug:str}/webhook", name="admin-webhook-set", dto=json_body(WebhookSet))
async def webhook_set(
    request: Req, principal: AdminDep, slug: FromPath[str], data: JSONBody[WebhookSet]
) -> WebhookShown:
    """Set the URL; the answer holds the signing secret, this once."""
    require_operator(principal)
    await reach_tenant(request, principal, slug)
    body = data
    if problem := check_webhook_url(body.url):
        raise AdminError(422, problem)
    config = await WebhookStore(_services(request).redis).set(
        slug, body.url, body.secret or new_secret()
    )
    audit(request, principal, "webhook set", host=urlsplit(body.url).hostname)
    return WebhookShown(tenant=slug, url=config.url, set_at=config.set_at, secret=config.secret)


@delete("/tenants/{slug:str}/webhook", name="admin-webhook-clear", status_code=200)
async def webhook_clear(request: Req, principal: AdminDep, slug: FromPath[str]) -> WebhookRemoved:
    require_operator(principal)
    await reach_tenant(request, principal, slug)
    removed = await WebhookStore(_services(request).redis).clear(slug)
    audit(request, principal, "webhook clear", removed=removed)
    return WebhookRemoved(tenant=slug, removed=removed)


@post("/tenants/{slug:str}/webhook/test", name="admin-webhook-test", status_code=202)
async def webhook_test(request: Req, principal: AdminDep, slug: FromPath[str]) -> DeliveryQueued:
    """Queue a `webhook.test` delivery, to check the receiver and its secret."""
    await reach_tenant(request, principal, slug)
    s = _services(request)
    if await WebhookStore(s.redis).config(slug) is None:
        raise AdminError(404, "the tenant has no webhook")
    delivery_id = await enqueue_delivery(s.redis, s.queue, slug, "webhook.test", {})
    audit(request, principal, "webhook test", delivery_id=delivery_id)
    return DeliveryQueued(tenant=slug, delivery_id=delivery_id)


WEBHOOK_HANDLERS = [webhook, webhook_set, webhook_clear, webhook_test]
