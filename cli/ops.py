"""CLI commands for ops: sync status, replay, mappings, one user's story."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal

import msgspec
from redis.asyncio import Redis

from api.admin.errors import AdminError
from api.admin.policy import approve_held, cancel_held
from core.connect import connect, connect_queue
from core.settings import Settings
from lms_client import LmsError
from mappings import decode_overrides, encode_overrides
from mappings.problems import MappingConfigError
from ops.commands import configure_breaker, replay
from ops.views import breaker_view, failed_page, tenant_status
from shadow import (
    MappingStore,
    ResourceStore,
    SyncStore,
    TenantError,
    TenantStore,
    TokenInfo,
)
from shadow.admin_keys import AdminKeyStore
from shadow.reconcile import ReconcileBusy
from worker.reconcile import reconcile_tenant
from worker.rules import enqueue_rules_resync


class UsageError(ValueError):
    """A flag or argument the command cannot take (exit status 2)."""


def emit(args: argparse.Namespace, data: dict[str, Any], human: str) -> None:
    """One command's answer: JSON with --json (for scripts), else for people."""
    print(json.dumps(data) if getattr(args, "json", False) else human)


def credential_listing(
    tenant: str, found: list[TokenInfo], field: str, id_name: str
) -> tuple[dict[str, Any], str]:
    """SCIM tokens or admin keys as JSON and as lines: ids and times, never secrets."""
    data = {
        "tenant": tenant,
        field: [
            {
                id_name: k.token_id,
                "created_at": k.created_at,
                "label": k.label,
                "last_used_at": k.last_used_at,
                "expires_at": k.expires_at,
            }
            for k in found
        ],
    }
    human = "\n".join(
        f"{k.token_id}\tcreated {k.created_at}\tlast used {k.last_used_at or 'never'}"
        + (f"\texpires {k.expires_at}" if k.expires_at else "")
        for k in found
    )
    return data, human


async def _tenant_or_fail(redis: Redis, slug: str) -> None:
    if await TenantStore(redis).get(slug) is None:
        raise TenantError(f"no tenant {slug!r}")


async def _user_or_fail(redis: Redis, slug: str, user_id: str) -> None:
    """A user the bridge knows: in the shadow, or with a sync record left."""
    known = await SyncStore(redis).record(slug, user_id) is not None
    if not known and await ResourceStore(redis).get(slug, "u", user_id) is None:
        raise TenantError(f"no user {user_id!r} in tenant {slug!r}")


def count_arg(low: int) -> Any:
    """An argparse type: a whole number of at least `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}")
        return value

    return parse


async def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    redis = connect(settings.redis_url)
    queue = connect_queue(settings.queue_url)
    try:
        await _tenant_or_fail(redis, args.slug)
        data = await tenant_status(redis, queue, args.slug)
    finally:
        await queue.aclose()
        await redis.aclose()
    human = (
        f"tenant {data['tenant']}: {data['pending']} pending, {data['synced']} synced, "
        f"{data['failed']} failed, {data['held']} held; queue {data['queue_depth']}; "
        f"oldest pending {data['oldest_pending_seconds']}s; "
        f"LMS errors {data['lms']['errors']}/{data['lms']['calls']} in the last hour"
    )
    if data["breaker"]["tripped"]:
        human += (
            f"\n  BREAKER TRIPPED since {data['breaker']['tripped_at']}: "
            f"{data['breaker']['held']} deactivation(s) held; "
            f"run `scim-bridge breaker approve|cancel {data['tenant']}`"
        )
    if data["lms_paused"]:
        human += f"\n  PAUSED since {data['lms_paused']['since']}: {data['lms_paused']['reason']}"
    resync = data["rules_resync"]
    if resync["state"] == "running":
        human += (
            f"\n  mapping changed {resync['started_at']}: re-syncing every user, "
            f"{resync['done']} of {resync['total']} queued so far"
        )
    for err in data["last_errors"]:
        human += f"\n  failed {err['user_id']}: {err['error']}"
    emit(args, data, human)
    return 0


async def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    redis = connect(settings.redis_url)
    queue = connect_queue(settings.queue_url)
    try:
        if args.user:
            await _tenant_or_fail(redis, args.slug)
            await _user_or_fail(redis, args.slug, args.user)
        count = await replay(redis, queue, args.slug, args.user)
    finally:
        await queue.aclose()
        await redis.aclose()
    emit(args, {"tenant": args.slug, "replayed": count}, f"replayed {count} user(s)")
    return 0


async def cmd_mapping_set(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    fmt: Literal["json", "toml"] = "toml" if path.suffix.lower() == ".toml" else "json"
    try:
        overrides = decode_overrides(path.read_bytes(), fmt)
    except MappingConfigError as exc:
        emit(args, {"error": str(exc)}, f"error: {exc}")
        return 2
    redis = connect(settings.redis_url)
    queue = connect_queue(settings.queue_url)
    try:
        await _tenant_or_fail(redis, args.slug)
        store = MappingStore(redis)
        await store.replace(args.slug, encode_overrides(overrides))
        await enqueue_rules_resync(queue, args.slug)
        progress = await store.progress(args.slug)
    finally:
        await queue.aclose()
        await redis.aclose()
    emit(
        args,
        {"tenant": args.slug, "mapping": "set", "resync": msgspec.to_builtins(progress)},
        f"mapping of {args.slug} set; re-syncing its {progress.total} user(s)",
    )
    return 0


async def cmd_mapping_preview(args: argparse.Namespace, settings: Settings) -> int:
    raw = sys.stdin.read() if args.file in (None, "-") else Path(args.file).read_text()
    try:
        user = json.loads(raw)
    except json.JSONDecodeError as exc:
        emit(args, {"error": f"not JSON: {exc}"}, f"error: not JSON: {exc}")
        return 2
    from scim.resource import canonicalize
    from scim.schema import USER_RESOURCE

    doc = canonicalize(USER_RESOURCE, user) if isinstance(user, dict) else {}
    if isinstance(user, dict):
        for name in ("id", "groups"):
            if name in user:
                doc[name] = user[name]
    redis = connect(settings.redis_url)
    try:
        await _tenant_or_fail(redis, args.slug)
        data = await MappingStore(redis).preview(args.slug, doc)
    except MappingConfigError as exc:
        emit(args, {"error": str(exc)}, f"error: the stored mapping is invalid: {exc}")
        return 1
    finally:
        await redis.aclose()
    print(json.dumps(data, indent=None if args.json else 2))
    return 0 if data.get("ok") else 1


async def cmd_users_show(args: argparse.Namespace, settings: Settings) -> int:
    redis = connect(settings.redis_url)
    try:
        await _tenant_or_fail(redis, args.slug)
        sync = SyncStore(redis)
        record = await sync.record(args.slug, args.user_id)
        events = await sync.events(args.slug, args.user_id)
        stored = await ResourceStore(redis).get(args.slug, "u", args.user_id)
    finally:
        await redis.aclose()
    if stored is None and record is None and not events:
        raise TenantError(f"no user {args.user_id!r} in tenant {args.slug!r}")
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
    emit(args, data, human)
    return 0


async def cmd_users_failed(args: argparse.Namespace, settings: Settings) -> int:
    redis = connect(settings.redis_url)
    try:
        await _tenant_or_fail(redis, args.slug)
        data = await failed_page(redis, args.slug, args.offset, args.limit)
    finally:
        await redis.aclose()
    lines = [f"{data['total']} failed user(s) in {args.slug}"]
    lines += [f"  {u['user_id']}\t{u['failed_at']}\t{u['error']}" for u in data["users"]]
    if data["next_offset"] is not None:
        lines.append(f"  more: --offset {data['next_offset']}")
    emit(args, data, "\n".join(lines))
    return 0


# -- admin keys ----------------------------------------------------------------


def positive_days(text: str) -> int:
    """`--expires-in-days` of a SCIM token or an admin key."""
    days = int(text)
    if not 1 <= days <= 3650:
        raise argparse.ArgumentTypeError("days must be between 1 and 3650")
    return days


async def cmd_admin_key_issue(args: argparse.Namespace, settings: Settings) -> int:
    redis = connect(settings.redis_url)
    expires_in_s = args.expires_in_days * 86_400 if args.expires_in_days else None
    try:
        issued = await AdminKeyStore(redis).issue(
            args.slug, label=args.label or "", expires_in_s=expires_in_s
        )
    finally:
        await redis.aclose()
    data = {
        "tenant": args.slug,
        "key_id": issued.key_id,
        "key": issued.key,
        "expires_at": issued.expires_at,
    }
    expiry = f"Expires: {issued.expires_at}\n" if issued.expires_at else ""
    human = (
        f"Admin key for {args.slug}: {issued.key}\n{expiry}"
        "Copy the key now: it is not shown again. It reaches this tenant only, "
        f"at {settings.public_url.rstrip('/')}/admin/v1/tenants/{args.slug}/..."
    )
    emit(args, data, human)
    return 0


async def cmd_admin_key_list(args: argparse.Namespace, settings: Settings) -> int:
    redis = connect(settings.redis_url)
    try:
        await _tenant_or_fail(redis, args.slug)
        found = await AdminKeyStore(redis).list_keys(args.slug)
    finally:
        await redis.aclose()
    data, human = credential_listing(args.slug, found, "keys", "key_id")
    emit(args, data, human or "no admin keys")
    return 0


async def cmd_admin_key_revoke(args: argparse.Namespace, settings: Settings) -> int:
    redis = connect(settings.redis_url)
    try:
        removed = await AdminKeyStore(redis).revoke(args.slug, args.key_id)
    finally:
        await redis.aclose()
    data = {"tenant": args.slug, "key_id": args.key_id, "revoked": removed}
    emit(args, data, "revoked" if removed else "no such admin key")
    return 0 if removed else 1


# -- breaker -------------------------------------------------------------------


def _breaker_human(data: dict[str, Any]) -> str:
    config = data["config"]
    state = "TRIPPED since " + str(data["tripped_at"]) if data["tripped"] else "closed"
    allowed = "no limit" if data["allowed"] is None else str(data["allowed"])
    lines = [
        f"breaker of {data['tenant']}: {state}; {data['held']} held",
        f"  {data['window_count']} deactivation(s) in the last {config['window_s']}s, "
        f"allowed {allowed} of {data['learners']} learners "
        f"(share {config['share']}, min {config['min_learners']} learners, "
        f"{'on' if config['enabled'] else 'off'})",
    ]
    if data.get("approved_until"):
        lines.append(f"  approved until {data['approved_until']}")
    lines += [f"  held {u['user_id']} since {u['held_since']}" for u in data["held_users"]]
    return "\n".join(lines)


async def cmd_breaker(args: argparse.Namespace, settings: Settings) -> int:
    redis = connect(settings.redis_url)
    queue = connect_queue(settings.queue_url)
    try:
        tenant = await TenantStore(redis).get(args.slug)
        if tenant is None:
            raise TenantError(f"no tenant {args.slug!r}")
        extra: dict[str, Any] = {}
        try:  # the admin API's rules (api/admin/policy.py): 409 there, exit 1 here
            if args.action == "approve":
                extra["released"] = await approve_held(
                    redis, queue, args.slug, interval_ms=tenant.job_interval_ms
                )
            elif args.action == "cancel":
                extra["dropped"] = await cancel_held(redis, args.slug)
        except AdminError as exc:
            raise TenantError(exc.detail) from None
        if args.action == "set":
            changes = {
                name: value
                for name, value in (
                    ("share", args.share),
                    ("min_learners", args.min_learners),
                    ("window_s", args.window_s),
                    ("enabled", None if args.enabled is None else args.enabled == "yes"),
                )
                if value is not None
            }
            try:
                await configure_breaker(redis, args.slug, changes)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        data = {**extra, **await breaker_view(redis, args.slug)}
    finally:
        await queue.aclose()
        await redis.aclose()
    human = _breaker_human(data)
    if "released" in extra:
        human = f"released {extra['released']} held user(s)\n" + human
    if "dropped" in extra:
        human = f"dropped {extra['dropped']} held deactivation(s)\n" + human
    emit(args, data, human)
    return 0


# -- reconcile -----------------------------------------------------------------


class _ProgressBar:
    """A one-line bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, label: str, width: int = 30) -> None:
        self.label = label
        self.width = width
        self.shown = sys.stderr.isatty()

    def __call__(self, seen: int, total: int) -> None:
        if not self.shown:
            return
        share = min(1.0, seen / total) if total else 1.0
        filled = int(share * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        sys.stderr.write(f"\r{self.label} [{bar}] {seen}/{total} learners")
        sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _reconcile_human(data: dict[str, Any]) -> str:
    counts = data["drift_counts"]
    lines = [
        f"reconciled {data['tenant']} in {data['duration_s']}s: "
        f"{data['learners_seen']} learners in the LMS, {data['users_checked']} users checked, "
        f"{data['in_sync']} in sync",
        "  drift: " + (", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "none"),
        f"  repaired (re-queued for the worker): {data['repaired']}"
        + ("" if data["repair"] else " (report only)"),
    ]
    if data["skipped"]:
        lines.append(
            "  skipped: " + ", ".join(f"{n} {why}" for why, n in sorted(data["skipped"].items()))
        )
    if data["retired"]:
        lines.append(f"  deactivated learners of deleted users: {data['retired']}")
    for d in data["drift"]:
        fields = f" ({', '.join(d['fields'])})" if d["fields"] else ""
        lines.append(f"  {d['kind']}: user {d['user_id']} learner {d['learner_id']}{fields}")
    if data["truncated"]:
        lines.append("  (more drift than listed; see the counts)")
    if data["error"]:
        lines.append(f"  error: {data['error']}")
    return "\n".join(lines)


async def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from worker.deps import WorkerDeps

    queue = connect_queue(settings.queue_url)
    deps = WorkerDeps.open(settings, queue)
    bar = _ProgressBar(f"reconcile {args.slug}")
    try:
        report = await reconcile_tenant(deps, args.slug, repair=not args.report_only, progress=bar)
    except ReconcileBusy as exc:
        raise TenantError(str(exc)) from None
    except LmsError as exc:
        raise TenantError(f"the LMS answered: {exc}") from None
    finally:
        bar.close()
        await deps.aclose()
        await queue.aclose()
    data = msgspec.to_builtins(report)
    emit(args, data, _reconcile_human(data))
    return 0 if not report.error else 2


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
    failed = users.add_parser("failed", help="failed users with their reasons (paged)")
    failed.add_argument("slug")
    failed.add_argument("--offset", type=count_arg(0), default=0)
    failed.add_argument("--limit", type=count_arg(1), default=100)
    failed.add_argument("--json", action="store_true")
    failed.set_defaults(handler=cmd_users_failed)
    from cli.lifecycle import add_users_commands

    add_users_commands(users)

    keys_cmd = sub.add_parser(
        "admin-key", help="tenant-scoped admin API keys (for a customer's admin)"
    ).add_subparsers(dest="action", required=True)
    kissue = keys_cmd.add_parser("issue", help="issue an admin key (shown once)")
    kissue.add_argument("slug")
    kissue.add_argument("--label")
    kissue.add_argument(
        "--expires-in-days",
        type=positive_days,
        help="the key stops working this many days from now (default: never)",
    )
    kissue.add_argument("--json", action="store_true")
    kissue.set_defaults(handler=cmd_admin_key_issue)
    klist = keys_cmd.add_parser("list")
    klist.add_argument("slug")
    klist.add_argument("--json", action="store_true")
    klist.set_defaults(handler=cmd_admin_key_list)
    krevoke = keys_cmd.add_parser("revoke")
    krevoke.add_argument("slug")
    krevoke.add_argument("key_id")
    krevoke.add_argument("--json", action="store_true")
    krevoke.set_defaults(handler=cmd_admin_key_revoke)

    breaker = sub.add_parser(
        "breaker", help="the mass-deactivation breaker of a tenant"
    ).add_subparsers(dest="action", required=True)
    for action, text in (
        ("status", "show the breaker and the held users"),
        ("approve", "release the held deactivations (and allow more for one window)"),
        ("cancel", "drop the held deactivations: the learners stay active"),
        ("set", "change the thresholds"),
    ):
        p = breaker.add_parser(action, help=text)
        p.add_argument("slug")
        if action == "set":
            p.add_argument("--share", type=float, help="share of learners per window (0.2)")
            p.add_argument("--min-learners", type=int, help="never hold below this many (25)")
            p.add_argument("--window-s", type=int, help="window in seconds (3600)")
            p.add_argument("--enabled", choices=["yes", "no"])
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=cmd_breaker)

    rec = sub.add_parser(
        "reconcile", help="compare the LMS with the shadow; repair drift (or only report it)"
    )
    rec.add_argument("slug")
    rec.add_argument("--report-only", action="store_true", help="report, repair nothing")
    rec.add_argument("--json", action="store_true")
    rec.set_defaults(handler=cmd_reconcile)
