"""`scim-bridge doctor`: is this deployment fit to acknowledge changes?

Each check says what it found and, when it fails, how to fix it. The
checks are the ones a production deployment needs and nothing else shows
in one place: Redis durable (AOF) and never evicting, versions, a live
worker, and every enabled tenant's LMS accepting the tenant's key.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import httpx
import msgspec
from redis.exceptions import RedisClusterException, RedisError

from core.connect import connect, describe, persistence
from core.sealing import Sealer, SealError, is_sealed
from core.settings import Settings
from lms_client import LmsClient, LmsError, RetryPolicy
from lms_client.errors import LmsTransientError, LmsUnauthorized
from shadow import Tenant, TenantStore
from worker.health import worker_health

__all__ = ["MIN_PYTHON", "MIN_REDIS", "Check", "render", "run_checks"]

MIN_PYTHON = (3, 11)
MIN_REDIS = (6, 2)
#: One LMS request per tenant, answered within this or failed.
LMS_TIMEOUT_S = 10.0
_REDIS_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)


class Check(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


def check_python() -> Check:
    found = ".".join(str(p) for p in sys.version_info[:3])
    ok = sys.version_info[:2] >= MIN_PYTHON
    return Check(
        name="python",
        ok=ok,
        detail=f"Python {found}",
        fix="" if ok else "run the bridge on Python 3.11 or later",
    )


def _each(result: Any, key: str) -> list[str]:
    """`key` from an INFO or CONFIG GET answer, or from each node's (a cluster's)."""
    if isinstance(result, dict) and key in result:
        return [str(result[key])]
    if isinstance(result, dict):
        return [v for node in result.values() for v in _each(node, key)]
    return []


async def check_redis(settings: Settings) -> list[Check]:
    where = describe(settings.redis_url)
    client = connect(settings.redis_url, socket_connect_timeout=3, socket_timeout=5)
    try:
        info = await client.info("server")
        try:
            policy = _each(await client.config_get("maxmemory-policy"), "maxmemory-policy")
        except RedisError as exc:  # managed services may refuse CONFIG
            policy = [f"unreadable ({type(exc).__name__})"]
    except _REDIS_ERRORS as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        return [
            Check(
                name="redis",
                ok=False,
                detail=f"no answer from {where}: {reason}",
                fix="start Redis, or set REDIS_URL to where it runs",
            )
        ]
    finally:
        await client.aclose()
    versions = _each(info, "redis_version")
    oldest = min(versions, key=_version) if versions else "unknown"
    version_ok = bool(versions) and _version(oldest) >= MIN_REDIS
    checks = [
        Check(
            name="redis",
            ok=version_ok,
            detail=f"Redis {oldest} at {where}",
            fix="" if version_ok else "upgrade Redis to 6.2 or later",
        )
    ]
    try:
        nodes = await asyncio.to_thread(persistence, settings.redis_url)
        without = [node for node, aof, _ in nodes if aof != "yes"]
        aof_detail = (
            f"appendonly yes on {len(nodes)} primary(ies)"
            if not without
            else f"appendonly is off on {', '.join(without)}"
        )
    except _REDIS_ERRORS as exc:
        without, aof_detail = ["?"], f"could not read appendonly ({type(exc).__name__})"
    checks.append(
        Check(
            name="redis-aof",
            ok=not without,
            detail=aof_detail,
            fix=""
            if not without
            else "run Redis with appendonly yes (redis.conf, or CONFIG SET appendonly yes "
            "then CONFIG REWRITE): an acknowledged change must survive a Redis restart",
        )
    )
    policy_ok = bool(policy) and all(p == "noeviction" for p in policy)
    checks.append(
        Check(
            name="redis-maxmemory-policy",
            ok=policy_ok,
            detail=f"maxmemory-policy {', '.join(sorted(set(policy))) or 'unknown'}",
            fix=""
            if policy_ok
            else "set maxmemory-policy noeviction (an evicted shadow key is a lost change) "
            "and size maxmemory with headroom",
        )
    )
    return checks


async def check_queue_redis(settings: Settings) -> Check | None:
    if not settings.queue_redis_url:
        return None
    where = describe(settings.queue_redis_url)
    client = connect(settings.queue_redis_url, socket_connect_timeout=3, socket_timeout=5)
    try:
        await client.ping()
    except _REDIS_ERRORS as exc:
        return Check(
            name="queue-redis",
            ok=False,
            detail=f"no answer from {where}: {type(exc).__name__}",
            fix="start the queue's Redis, or set QUEUE_REDIS_URL to where it runs",
        )
    finally:
        await client.aclose()
    return Check(name="queue-redis", ok=True, detail=f"answers at {where}")


async def check_worker(settings: Settings) -> Check:
    found = await worker_health(settings)
    if found is None:
        return Check(
            name="worker",
            ok=False,
            detail="no worker refreshed the queue's health key lately",
            fix="start a worker (scim-bridge worker); changes are acknowledged but "
            "none reaches the LMS until one runs",
        )
    return Check(name="worker", ok=True, detail=f"alive: {found[:120]}")


async def check_lms(settings: Settings) -> list[Check]:
    """One authenticated request per enabled tenant, with its own key."""
    redis = connect(settings.redis_url, socket_connect_timeout=3, socket_timeout=5)
    try:
        store = TenantStore(redis)
        tenants = [t for slug in await store.slugs() if (t := await store.get(slug)) is not None]
    finally:
        await redis.aclose()
    sealer = settings.sealer()
    return [await _check_tenant_lms(t, sealer) for t in sorted(tenants, key=lambda t: t.slug)]


async def _check_tenant_lms(tenant: Tenant, sealer: Sealer | None) -> Check:
    name = f"lms:{tenant.slug}"
    if not tenant.enabled:
        return Check(name=name, ok=True, detail="tenant disabled: not checked")
    try:
        if sealer is None and is_sealed(tenant.lms_api_key):
            raise SealError("BRIDGE_SECRET_KEY is not set")
        api_key = sealer.unseal(tenant.lms_api_key) if sealer else tenant.lms_api_key
    except SealError:
        return Check(
            name=name,
            ok=False,
            detail="the tenant's LMS key is sealed under a key BRIDGE_SECRET_KEY does not hold",
            fix="set BRIDGE_SECRET_KEY to include the key it was sealed with (newest first)",
        )
    update = f"scim-bridge tenant update {tenant.slug}"
    once = RetryPolicy(max_attempts=1, total_budget=LMS_TIMEOUT_S)
    timeout = httpx.Timeout(LMS_TIMEOUT_S, connect=5.0)
    async with LmsClient(tenant.lms_url, api_key, retry=once, timeout=timeout) as lms:
        try:
            await lms.list_learners(page=1, page_size=1)
        except LmsUnauthorized:
            return Check(
                name=name,
                ok=False,
                detail=f"{tenant.lms_url} refuses the tenant's API key",
                fix=f"set the organisation's current key: {update} --lms-api-key <key>",
            )
        except LmsTransientError as exc:
            return Check(
                name=name,
                ok=False,
                detail=f"{tenant.lms_url}: {str(exc)[:200]}",
                fix="check that the LMS is up and reachable from here, and the "
                f"tenant's LMS URL ({update} --lms-url <url>)",
            )
        except LmsError as exc:
            return Check(
                name=name,
                ok=False,
                detail=f"{tenant.lms_url}: {str(exc)[:200]}",
                fix=f"check the tenant's LMS URL: {update} --lms-url <url>",
            )
    return Check(name=name, ok=True, detail=f"{tenant.lms_url} accepts the tenant's key")


async def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order an operator would fix them."""
    # The LMS client logs a failed attempt; the checklist already says it.
    logging.getLogger("lms_client").setLevel(logging.CRITICAL)
    checks = [check_python(), *await check_redis(settings)]
    if not checks[1].ok and checks[1].detail.startswith("no answer"):
        return checks  # nothing else can be read without the store
    queue = await check_queue_redis(settings)
    if queue is not None:
        checks.append(queue)
    checks.append(await check_worker(settings))
    checks += await check_lms(settings)
    return checks


def render(checks: list[Check]) -> str:
    """The checklist for people: one line per check, the fix under a failure."""
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        lines.append(f"[{mark}] {check.name.ljust(width)}  {check.detail}")
        if not check.ok and check.fix:
            lines.append(f"       {' ' * width}  fix: {check.fix}")
    failed = sum(not c.ok for c in checks)
    lines.append(
        f"all {len(checks)} checks passed"
        if not failed
        else f"{failed} of {len(checks)} checks failed"
    )
    return "\n".join(lines)
