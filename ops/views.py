"""What operators read: shared by the admin API, the admin page and the
CLI's `--json` output.

Plain functions over Redis that return JSON-ready dicts, so the three always
agree. Nothing here shows an LMS API key, a token secret or a user's
personal data beyond ids: the provisioning log carries field names and
status codes only.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import msgspec
from arq.connections import ArqRedis
from redis.asyncio import Redis

from core.settings import Settings
from shadow import LmsPause, MappingStore, SyncStore, Tenant, keys
from shadow.breaker import breaker_state, held_since, held_users
from shadow.tenants import MAX_LABEL_LENGTH as MAX_LABEL_LENGTH  # kept by the stores
from worker.queue import queue_depth

__all__ = [
    "ERROR_SAMPLE_USERS",
    "MAX_LABEL_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_SECRET_LENGTH",
    "MAX_URL_LENGTH",
    "URL_PATTERN",
    "breaker_view",
    "check_tenant_settings",
    "check_webhook_url",
    "failed_page",
    "lms_error_rate",
    "tenant_health",
    "tenant_status",
    "tenant_view",
    "user_exists",
    "user_timeline",
]

#: Users (most recently active first) whose provisioning logs feed the error rate.
ERROR_SAMPLE_USERS = 200


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def tenant_view(tenant: Tenant, settings: Settings) -> dict[str, Any]:
    """A tenant as it may be shown: never the LMS API key (write-only)."""
    return {
        "tenant": tenant.slug,
        "name": tenant.name,
        "scim_url": settings.scim_url(tenant.slug),
        "lms_url": tenant.lms_url,
        "lms_rate": tenant.lms_rate,
        "lms_burst": tenant.lms_burst,
        "enabled": tenant.enabled,
        "created_at": tenant.created_at,
        "scim_rate": tenant.scim_rate,
        "scim_burst": tenant.scim_burst,
    }


#: Bounded free text (docs/operations.md, "Admin API: lengths"), for the
#: admin API, the page and the CLI alike: a tenant's display name ...
MAX_NAME_LENGTH = 200
#: ... the LMS URL and a webhook URL (http or https, at most this long) ...
MAX_URL_LENGTH = 2000
URL_PATTERN = r"^https?://[^\s/?#]+"
#: ... and the LMS API key (the LMS's own keys are far shorter).
MAX_SECRET_LENGTH = 1000


def check_tenant_settings(values: dict[str, Any]) -> list[str]:
    """Problems with tenant settings an admin gives (create or update), the
    same for the admin API, the page and the CLI's flags."""
    problems = []
    if "name" in values:
        name = str(values["name"])
        if not name.strip():
            problems.append("name must not be empty")
        elif len(name) > MAX_NAME_LENGTH:
            problems.append(f"name must be at most {MAX_NAME_LENGTH} characters")
    if "lms_url" in values:
        url = str(values["lms_url"])
        if not url.startswith(("http://", "https://")) or len(url) > MAX_URL_LENGTH:
            problems.append(
                f"lms_url must be an http(s) URL of at most {MAX_URL_LENGTH} characters"
            )
    if "lms_api_key" in values:
        key = str(values["lms_api_key"])
        if not key.strip():
            problems.append("lms_api_key must not be empty")
        elif len(key) > MAX_SECRET_LENGTH:
            problems.append(f"lms_api_key must be at most {MAX_SECRET_LENGTH} characters")
    if "lms_rate" in values and not 0 < float(values["lms_rate"]) <= 10_000:
        problems.append("lms_rate must be more than 0 and at most 10000 requests a second")
    if "lms_burst" in values and not 1 <= int(values["lms_burst"]) <= 100_000:
        problems.append("lms_burst must be between 1 and 100000")
    if "scim_rate" in values and not 0 < float(values["scim_rate"]) <= 100_000:
        problems.append("scim_rate must be more than 0 and at most 100000 requests a second")
    if "scim_burst" in values and not 1 <= int(values["scim_burst"]) <= 1_000_000:
        problems.append("scim_burst must be between 1 and 1000000")
    return problems


def check_webhook_url(url: str) -> str | None:
    """Why `url` cannot be a webhook, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "url must be an absolute http(s) URL"
    if len(url) > MAX_URL_LENGTH:
        return f"url must be at most {MAX_URL_LENGTH} characters"
    return None


async def tenant_health(redis: Redis, slug: str) -> dict[str, Any]:
    """Counts per sync state, oldest pending and the breaker's true state
    (`breaker_state`: on, tripped, approved until `breaker_approved_until`,
    off): the list view."""
    counts = await SyncStore(redis).counts(slug)
    breaker = await breaker_state(redis, slug)
    oldest = (
        max(0.0, round(time.time() - counts.oldest_pending_ms / 1000, 3))
        if counts.oldest_pending_ms is not None
        else 0.0
    )
    return {
        "pending": counts.pending,
        "synced": counts.synced,
        "failed": counts.failed,
        "held": breaker.held,
        "oldest_pending_seconds": oldest,
        "breaker_tripped": breaker.tripped,
        "breaker_state": breaker.mode,
        "breaker_approved_until": breaker.approved_until,
    }


async def lms_error_rate(
    redis: Redis, slug: str, *, window_s: int = 3600, sample: int = ERROR_SAMPLE_USERS
) -> dict[str, Any]:
    """LMS answers within the window, read from the provisioning logs of the
    most recently active users (up to `sample` of them, their last 50
    events each), so a status read stays a bounded amount of work.

    Every LMS call the worker makes is logged there with its status; a
    `deferred` call (our own pacing, or an LMS Retry-After) is counted apart,
    not as an error, and so is an `expected` 409 (the LMS saying a learner
    exists, which adoption relies on, or an address is held). It is a
    sample, and says so: `sampled_users`.
    """
    now_ms = int(time.time() * 1000)
    since = now_ms - window_s * 1000
    users: dict[str, float] = {}
    for state in ("synced", "failed", "pending"):
        rows = await redis.zrevrangebyscore(
            keys.state_set(slug, state), "+inf", since, start=0, num=sample, withscores=True
        )
        for uid, score in rows:
            users[_text(uid)] = max(users.get(_text(uid), 0.0), float(score))
    chosen = sorted(users, key=lambda u: users[u], reverse=True)[:sample]
    by_status: Counter[str] = Counter()
    if chosen:
        async with redis.pipeline(transaction=False) as pipe:
            for uid in chosen:
                pipe.xrevrange(keys.events(slug, uid), max="+", min=f"{since}-0", count=50)
            streams = await pipe.execute()
        for rows in streams:
            for _, fields in rows:
                if _text(fields.get(b"event")) != "lms":
                    continue
                if fields.get(b"expected"):  # a 409 of adoption or a conflict: an answer
                    by_status["expected"] += 1
                else:
                    by_status[_text(fields.get(b"status"))] += 1
    deferred = by_status.pop("deferred", 0)
    expected = by_status.pop("expected", 0)
    calls = sum(by_status.values())
    errors = sum(n for status, n in by_status.items() if not status.startswith("2"))
    return {
        "window_s": window_s,
        "sampled_users": len(chosen),
        "calls": calls,
        "errors": errors,
        "deferred": deferred,
        "expected": expected,
        "error_rate": round(errors / calls, 4) if calls else 0.0,
        "by_status": dict(sorted(by_status.items())),
    }


async def failed_page(redis: Redis, slug: str, offset: int, limit: int) -> dict[str, Any]:
    """Failed users with their reasons, oldest failure first, `limit` from `offset`."""
    key = keys.state_set(slug, "failed")
    total = int(await redis.zcard(key))
    rows = await redis.zrange(key, offset, offset + limit - 1, withscores=True) if limit else []
    users = []
    if rows:
        async with redis.pipeline(transaction=False) as pipe:
            for uid, _ in rows:
                pipe.hmget(keys.sync_state(slug, _text(uid)), ["error", "learner_id", "updated_at"])
            details = await pipe.execute()
        for (uid, _), (error, learner, updated) in zip(rows, details, strict=True):
            users.append(
                {
                    "user_id": _text(uid),
                    "error": _text(error),
                    "learner_id": int(learner) if learner else None,
                    "failed_at": _text(updated) or None,
                }
            )
    following = offset + len(users)
    return {
        "tenant": slug,
        "total": total,
        "offset": offset,
        "limit": limit,
        "next_offset": following if following < total and users else None,
        "users": users,
    }


async def user_exists(redis: Redis, slug: str, user_id: str) -> bool:
    """A live user of the tenant in the shadow (`user_id` already checked as an id)."""
    return bool(await redis.hexists(keys.resource(slug, "u", user_id), "v"))  # type: ignore[misc]


async def user_timeline(redis: Redis, slug: str, user_id: str, limit: int = 100) -> dict[str, Any]:
    """One user's story: shadow version, sync record, breaker hold and the
    provisioning log (newest first: SCIM-side state, jobs, LMS calls and
    answers, the learner id)."""
    sync = SyncStore(redis)
    record = await sync.record(slug, user_id)
    events = await sync.events(slug, user_id, limit=limit)
    doc_v, deleted, created, modified = await redis.hmget(  # type: ignore[misc]
        keys.resource(slug, "u", user_id), ["v", "del", "created", "modified"]
    )
    held = await held_since(redis, slug, user_id)
    return {
        "tenant": slug,
        "user_id": user_id,
        "exists": doc_v is not None and deleted != b"1",
        "shadow": None
        if doc_v is None
        else {
            "version": int(doc_v),
            "deleted": deleted == b"1",
            "created": _text(created),
            "last_scim_change": _text(modified),
        },
        "state": record.state if record else None,
        "applied_version": record.applied_version if record else None,
        "learner_id": record.learner_id if record else None,
        "error": record.error if record else None,
        "updated_at": record.updated_at if record else None,
        "held_by_breaker": held is not None,
        "held_since": held,
        "events": events,
    }


async def breaker_view(redis: Redis, slug: str, held_limit: int = 100) -> dict[str, Any]:
    """The breaker's state and the first held users."""
    state = await breaker_state(redis, slug)
    view: dict[str, Any] = msgspec.to_builtins(state)
    view["held_users"] = [
        {"user_id": uid, "held_since": since}
        for uid, since in await held_users(redis, slug, 0, held_limit)
    ]
    return view


async def tenant_status(redis: Redis, queue: ArqRedis, slug: str) -> dict[str, Any]:
    """The figures ops look at first (`scim-bridge status`, the admin API's
    and the page's status)."""
    sync = SyncStore(redis)
    counts = await sync.counts(slug)
    failed_ids = await sync.users_in(slug, "failed", limit=10)
    last_errors = []
    for uid in failed_ids:
        record = await sync.record(slug, uid)
        if record:
            last_errors.append({"user_id": uid, "error": record.error, "at": record.updated_at})
    oldest = (
        round(time.time() - counts.oldest_pending_ms / 1000, 3)
        if counts.oldest_pending_ms is not None
        else 0.0
    )
    breaker = await breaker_state(redis, slug)
    return {
        "tenant": slug,
        # This tenant's users with a job waiting; the whole queue is apart.
        "queue_depth": counts.queued,
        "arq_queue_depth": await queue_depth(queue),
        "queued": counts.queued,
        "pending": counts.pending,
        "synced": counts.synced,
        "failed": counts.failed,
        "held": breaker.held,
        "oldest_pending_seconds": max(0.0, oldest),
        "last_errors": last_errors,
        "lms": await lms_error_rate(redis, slug),
        "breaker": msgspec.to_builtins(breaker),
        # The re-sync of every user after the newest mapping change.
        "rules_resync": msgspec.to_builtins(await MappingStore(redis).progress(slug)),
        # Deliveries wait while the LMS refuses the tenant's key (null: they run).
        "lms_paused": _pause_view(await sync.lms_pause(slug)),
    }


def _pause_view(pause: LmsPause | None) -> dict[str, str] | None:
    return None if pause is None else {"reason": pause.reason, "since": pause.since}
