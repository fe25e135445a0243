"""Notifications: signed webhook deliveries, sent and retried by the worker.

`notify` turns an event (a user failed, the breaker held a deactivation,
the LMS refused the tenant's key) into a delivery when the tenant has a
webhook, and enqueues `deliver_webhook`. The job POSTs the stored body,
signed (docs/operations.md, "Notifications"):

    X-Scim-Bridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

A 2xx is delivered; anything else (or no answer) is retried after
`BACKOFF_S` until `MAX_ATTEMPTS`, then the delivery is `failed`. Nothing
here may break a sync: `notify` logs and drops its own failures. Neither
the secret nor the body is logged; the URL is logged without its query.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from arq.connections import ArqRedis
from arq.worker import Function, Retry, func

from core.clock import now_iso
from shadow.webhooks import WebhookStore
from worker.deps import WorkerDeps
from worker.queue import QUEUE_NAME

__all__ = [
    "BACKOFF_S",
    "DELIVER_WEBHOOK",
    "MAX_ATTEMPTS",
    "deliver_webhook",
    "deliver_webhook_function",
    "enqueue_delivery",
    "notify",
    "sign",
]

logger = logging.getLogger("worker.webhooks")

DELIVER_WEBHOOK = "deliver_webhook"
#: Waits before the 2nd, 3rd, ... attempt: about a day and a half in all.
BACKOFF_S: tuple[float, ...] = (10, 30, 120, 600, 1800, 3600, 3 * 3600, 12 * 3600)
MAX_ATTEMPTS = len(BACKOFF_S) + 1
TIMEOUT_S = 10.0
SIGNATURE_HEADER = "X-Scim-Bridge-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _where(url: str) -> str:
    """The URL as logs may show it: scheme, host and path, never a query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{parts.path}"


async def enqueue_delivery(
    redis: Any, queue: ArqRedis, tenant: str, event: str, data: dict[str, Any]
) -> str:
    """Store a delivery of `event` and enqueue its job; its id."""
    delivery_id = secrets.token_hex(8)
    body = json.dumps(
        {
            "id": delivery_id,
            "event": event,
            "tenant": tenant,
            "occurred_at": now_iso(),
            "data": data,
        },
        separators=(",", ":"),
    ).encode()
    await WebhookStore(redis).create(tenant, event, body, delivery_id)
    await queue.enqueue_job(
        DELIVER_WEBHOOK,
        tenant,
        delivery_id,
        _job_id=f"webhook:{tenant}:{delivery_id}",
        _queue_name=QUEUE_NAME,
    )
    return delivery_id


async def notify(deps: WorkerDeps, tenant: str, event: str, data: dict[str, Any]) -> None:
    """Send `event` to the tenant's webhook, if it has one and the event is
    not folded into the next one of its kind (shadow/webhooks.py)."""
    try:
        store = WebhookStore(deps.redis)
        if await store.config(tenant) is None:
            return
        folded = await store.gate(tenant, event)
        if folded is None:
            return
        await enqueue_delivery(
            deps.redis, deps.queue, tenant, event, {**data, "folded_before": folded}
        )
    except Exception as exc:  # a notification never fails a sync
        logger.warning("notification %s of tenant %s failed: %s", event, tenant, type(exc).__name__)


async def deliver_webhook(ctx: dict[str, Any], tenant: str, delivery_id: str) -> str:
    """One attempt; raises arq `Retry` with the next back-off while tries remain."""
    deps = WorkerDeps.of(ctx)
    store = WebhookStore(deps.redis)
    delivery = await store.delivery(tenant, delivery_id)
    config = await store.config(tenant)
    if delivery is None or delivery.status != "pending":
        return "gone or done"
    if config is None:
        await store.note_attempt(tenant, delivery_id, "failed", error="no webhook configured")
        return "no webhook"
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "scim-bridge-webhook",
        "X-Scim-Bridge-Event": delivery.event,
        "X-Scim-Bridge-Delivery": delivery_id,
        SIGNATURE_HEADER: sign(config.secret, stamp, delivery.body),
    }
    status: int | None = None
    try:
        response = await deps.http.post(
            config.url, content=delivery.body, headers=headers, timeout=TIMEOUT_S
        )
        status = response.status_code
        error = "" if 200 <= status < 300 else f"HTTP {status}"
    except httpx.HTTPError as exc:
        error = f"no answer: {type(exc).__name__}"
    attempt = delivery.attempts + 1
    if not error:
        await store.note_attempt(tenant, delivery_id, "delivered", http_status=status)
        return "delivered"
    final = attempt >= MAX_ATTEMPTS
    await store.note_attempt(
        tenant, delivery_id, "failed" if final else "pending", error=error, http_status=status
    )
    logger.warning(
        "webhook %s of tenant %s to %s: %s (attempt %d of %d)",
        delivery.event,
        tenant,
        _where(config.url),
        error,
        attempt,
        MAX_ATTEMPTS,
    )
    if final:
        return "failed"
    raise Retry(defer=BACKOFF_S[attempt - 1])


def deliver_webhook_function() -> Function:
    # Our own attempt count decides when to stop; arq's limit is a backstop.
    return func(
        deliver_webhook,
        name=DELIVER_WEBHOOK,
        max_tries=MAX_ATTEMPTS + 5,
        timeout=TIMEOUT_S + 20,
        keep_result=0,
    )
