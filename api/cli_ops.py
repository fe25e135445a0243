"""CLI commands for ops: sync status, replay, mappings, one user's story."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Literal

from arq.connections import ArqRedis
from redis.asyncio import Redis

from api.settings import Settings
from mappings import build_rules, decode_overrides, encode_overrides, preview
from mappings.problems import MappingConfigError
from shadow import ResourceStore, SyncStore, TenantError, TenantStore, keys
from worker.queue import enqueue_sync, queue_depth


def _out(args: argparse.Namespace, data: dict[str, Any], human: str) -> None:
    print(json.dumps(data) if args.json else human)


async def _tenant_or_fail(redis: Redis, slug: str) -> None:
    if await TenantStore(redis).get(slug) is None:
        raise TenantError(f"no tenant {slug!r}")


async def tenant_status(redis: Redis, queue: ArqRedis, slug: str) -> dict[str, Any]:
    """The figures ops look at first; shared by the CLI and the admin API."""
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
    return {
        "tenant": slug,
        "queue_depth": await queue_depth(queue),
        "queued": counts.queued,
        "pending": counts.pending,
        "synced": counts.synced,
        "failed": counts.failed,
        "oldest_pending_seconds": max(0.0, oldest),
        "last_errors": last_errors,
    }


async def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    redis = Redis.from_url(settings.redis_url)
    queue = ArqRedis.from_url(settings.queue_url)
    try:
        await _tenant_or_fail(redis, args.slug)
        data = await tenant_status(redis, queue, args.slug)
    finally:
        await queue.aclose()
        await redis.aclose()
    human = (
        f"tenant {data['tenant']}: {data['pending']} pending, {data['synced']} synced, "
        f"{data['failed']} failed; queue {data['queue_depth']}; "
        f"oldest pending {data['oldest_pending_seconds']}s"
    )
    for err in data["last_errors"]:
        human += f"\n  failed {err['user_id']}: {err['error']}"
    _out(args, data, human)
    return 0


async def replay(redis: Redis, queue: ArqRedis, slug: str, user_id: str | None) -> int:
    """Mark failed users (or one user) pending again and enqueue them."""
    tenant = await TenantStore(redis).get(slug)
    if tenant is None:
        raise TenantError(f"no tenant {slug!r}")
    resources = ResourceStore(redis)
    ids = [user_id] if user_id else await SyncStore(redis).users_in(slug, "failed", limit=1_000_000)
    count = 0
    for uid in ids:
        due = await resources.requeue(slug, uid, interval_ms=tenant.job_interval_ms, force=True)
        if due is not None:
            await enqueue_sync(queue, slug, uid, due)
            count += 1
    return count


async def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    redis = Redis.from_url(settings.redis_url)
    queue = ArqRedis.from_url(settings.queue_url)
    try:
        count = await replay(redis, queue, args.slug, args.user)
    finally:
        await queue.aclose()
        await redis.aclose()
    _out(args, {"tenant": args.slug, "replayed": count}, f"replayed {count} user(s)")
    return 0


async def cmd_mapping_set(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    fmt: Literal["json", "toml"] = "toml" if path.suffix.lower() == ".toml" else "json"
    try:
        overrides = decode_overrides(path.read_bytes(), fmt)
    except MappingConfigError as exc:
        _out(args, {"error": str(exc)}, f"error: {exc}")
        return 2
    redis = Redis.from_url(settings.redis_url)
    try:
        await _tenant_or_fail(redis, args.slug)
        await redis.set(keys.mapping(args.slug), encode_overrides(overrides))
    finally:
        await redis.aclose()
    _out(args, {"tenant": args.slug, "mapping": "set"}, f"mapping of {args.slug} set")
    return 0


async def cmd_mapping_preview(args: argparse.Namespace, settings: Settings) -> int:
    raw = sys.stdin.read() if args.file in (None, "-") else Path(args.file).read_text()
    try:
        user = json.loads(raw)
    except json.JSONDecodeError as exc:
        _out(args, {"error": f"not JSON: {exc}"}, f"error: not JSON: {exc}")
        return 2
    redis = Redis.from_url(settings.redis_url)
    try:
        await _tenant_or_fail(redis, args.slug)
        stored = await redis.get(keys.mapping(args.slug))
    finally:
        await redis.aclose()
    rules = build_rules(decode_overrides(stored) if stored else None)
    from scim.resource import canonicalize
    from scim.schema import USER_RESOURCE

    doc = canonicalize(USER_RESOURCE, user) if isinstance(user, dict) else user
    if isinstance(user, dict) and "id" in user:
        doc["id"] = user["id"]
    data = preview(doc, rules)
    print(json.dumps(data, indent=None if args.json else 2))
    return 0 if data.get("ok") else 1


async def cmd_users_show(args: argparse.Namespace, settings: Settings) -> int:
    redis = Redis.from_url(settings.redis_url)
    try:
        await _tenant_or_fail(redis, args.slug)
        sync = SyncStore(redis)
        record = await sync.record(args.slug, args.user_id)
        events = await sync.events(args.slug, args.user_id)
        stored = await ResourceStore(redis).get(args.slug, "u", args.user_id)
    finally:
        await redis.aclose()
    data = {
        "tenant": args.slug,
        "user_id": args.user_id,
        "exists": stored is not None,
        "version": stored.version if stored else None,
        "state": record.state if record else None,
        "learner_id": record.learner_id if record else None,
        "error": record.error if record else None,
        "events": events,
    }
    human = "\n".join(
        [f"user {args.user_id}: {data['state']} (learner {data['learner_id']})"]
        + [f"  {e.get('at')} {e.get('event')} {e}" for e in reversed(events)]
    )
    _out(args, data, human)
    return 0


def add_ops_commands(sub: Any) -> None:
    status = sub.add_parser("status", help="sync status of a tenant")
    status.add_argument("slug")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    rp = sub.add_parser("replay", help="retry failed users of a tenant (or one user)")
    rp.add_argument("slug")
    rp.add_argument("--user")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(handler=cmd_replay)

    mapping = sub.add_parser("mapping", help="per-tenant attribute mapping").add_subparsers(
        dest="action", required=True
    )
    mset = mapping.add_parser("set", help="set overrides from a JSON or TOML file")
    mset.add_argument("slug")
    mset.add_argument("file")
    mset.add_argument("--json", action="store_true")
    mset.set_defaults(handler=cmd_mapping_set)
    mprev = mapping.add_parser("preview", help="show the learner a SCIM user (stdin) becomes")
    mprev.add_argument("slug")
    mprev.add_argument("file", nargs="?")
    mprev.add_argument("--json", action="store_true")
    mprev.set_defaults(handler=cmd_mapping_preview)

    users = sub.add_parser("users", help="inspect users").add_subparsers(
        dest="action", required=True
    )
    show = users.add_parser("show", help="one user's sync state and provisioning log")
    show.add_argument("slug")
    show.add_argument("user_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_users_show)
