"""A tenant's notification webhook and its deliveries, in Redis.

The operator sets a URL; the bridge draws the signing secret (or takes the
operator's) and shows it once. An event becomes a *delivery*: a record
with the exact body to send, its status (`pending`, `delivered`, `failed`),
attempts and last error, kept 7 days; the 50 most recent are listed. A
worker job sends it (worker/webhooks.py). Events of one kind are sent at
most once per `GATE_S`: the ones in between are counted and the next
delivery says how many were folded into it, so a thousand users failing
at once is one message, not a thousand.
"""

from __future__ import annotations

import secrets
import time
from typing import Literal

import msgspec
from redis.asyncio import Redis

from core.clock import now_iso
from shadow import keys

__all__ = [
    "EVENTS",
    "Delivery",
    "WebhookConfig",
    "WebhookStore",
    "new_secret",
]

EventName = Literal["user.failed", "breaker.tripped", "lms.key_rejected", "webhook.test"]
EVENTS: tuple[EventName, ...] = ("user.failed", "breaker.tripped", "lms.key_rejected")
#: One delivery per event kind at most this often; the rest are folded.
GATE_S = 300
KEPT_S = 7 * 86_400
RECENT = 50
DeliveryStatus = Literal["pending", "delivered", "failed"]


def new_secret() -> str:
    """A 256-bit signing secret, shown once."""
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookConfig(msgspec.Struct, frozen=True):
    url: str
    secret: str
    set_at: str

    def __repr__(self) -> str:  # never the secret in a log line or traceback
        return f"WebhookConfig(url={self.url!r}, set_at={self.set_at!r})"


class Delivery(msgspec.Struct, frozen=True):
    """What ops see of one delivery (the body is kept to be re-sent as is)."""

    delivery_id: str
    event: str
    status: str
    attempts: int
    last_error: str
    last_status: int | None
    created_at: str
    updated_at: str
    body: bytes = b""


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


# KEYS: 1 gate, 2 gate count. ARGV: 1 ttl s. Returns the number folded
# since the last delivery of this kind, or -1 when this event is folded.
_GATE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  local n = tonumber(redis.call('GET', KEYS[2]) or '0')
  redis.call('DEL', KEYS[2])
  return n
end
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 86400)
return -1
"""


class WebhookStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._gate = redis.register_script(_GATE)

    async def config(self, tenant: str) -> WebhookConfig | None:
        raw = await self._redis.hgetall(keys.webhook(tenant))  # type: ignore[misc]
        values = {_text(k): _text(v) for k, v in raw.items()}
        if not values.get("url"):
            return None
        return WebhookConfig(values["url"], values.get("secret", ""), values.get("set_at", ""))

    async def set(self, tenant: str, url: str, secret: str) -> WebhookConfig:
        config = WebhookConfig(url, secret, now_iso())
        await self._redis.hset(  # type: ignore[misc]
            keys.webhook(tenant), mapping={"url": url, "secret": secret, "set_at": config.set_at}
        )
        return config

    async def clear(self, tenant: str) -> bool:
        return bool(await self._redis.delete(keys.webhook(tenant)))

    async def gate(self, tenant: str, event: str, *, gate_s: int = GATE_S) -> int | None:
        """None when this event is folded into the next delivery of its kind,
        else how many earlier ones were folded into this one."""
        gate = keys.webhook_gate(tenant, event)
        folded = int(await self._gate(keys=[gate, gate + ":n"], args=[gate_s]))
        return None if folded < 0 else folded

    async def create(self, tenant: str, event: str, body: bytes, delivery_id: str) -> None:
        now_ms, stamp = int(time.time() * 1000), now_iso()
        key = keys.webhook_delivery(tenant, delivery_id)
        recent = keys.webhook_deliveries(tenant)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "event": event,
                    "body": body,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": stamp,
                    "updated_at": stamp,
                },
            )
            pipe.expire(key, KEPT_S)
            pipe.zadd(recent, {delivery_id: now_ms})
            pipe.zremrangebyrank(recent, 0, -RECENT - 1)
            pipe.expire(recent, KEPT_S)
            await pipe.execute()

    async def note_attempt(
        self,
        tenant: str,
        delivery_id: str,
        status: DeliveryStatus,
        *,
        error: str = "",
        http_status: int | None = None,
    ) -> None:
        key = keys.webhook_delivery(tenant, delivery_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "attempts", 1)
            pipe.hset(
                key,
                mapping={
                    "status": status,
                    "last_error": error,
                    "last_status": "" if http_status is None else str(http_status),
                    "updated_at": now_iso(),
                },
            )
            await pipe.execute()

    async def delivery(self, tenant: str, delivery_id: str) -> Delivery | None:
        raw = await self._redis.hgetall(keys.webhook_delivery(tenant, delivery_id))  # type: ignore[misc]
        if not raw:
            return None
        v = {_text(k): val for k, val in raw.items()}
        last = _text(v.get("last_status"))
        return Delivery(
            delivery_id=delivery_id,
            event=_text(v.get("event")),
            status=_text(v.get("status")),
            attempts=int(_text(v.get("attempts")) or 0),
            last_error=_text(v.get("last_error")),
            last_status=int(last) if last.isdigit() else None,
            created_at=_text(v.get("created_at")),
            updated_at=_text(v.get("updated_at")),
            body=v.get("body") or b"",
        )

    async def recent(self, tenant: str, limit: int = 20) -> list[Delivery]:
        """The newest deliveries first (without their bodies)."""
        ids = await self._redis.zrevrange(keys.webhook_deliveries(tenant), 0, limit - 1)
        found = []
        for raw_id in ids:
            one = await self.delivery(tenant, _text(raw_id))
            if one is not None:
                found.append(msgspec.structs.replace(one, body=b""))
        return found
