"""The `scim-bridge` command: the processes, and tenant, token and sync admin.

Admin commands talk to Redis directly (REDIS_URL), so they work before any
API process runs. `--json` output is for scripts; the default is for people.

Exit status, for every command: 0 done; 1 not found or refused (no such
tenant, token or user; Redis unreachable; a check failed); 2 usage (a bad
flag or argument, a bad environment value). An operator's mistake is one
line on stderr (or `{"error": ...}` on stdout with --json), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from cli.ops import UsageError, credential_listing, emit, positive_days
from core.connect import RedisUrlError, connect, describe
from core.sealing import SealError
from core.settings import ConfigError, Settings, load_settings
from ops.views import check_tenant_settings, check_webhook_url, tenant_view
from shadow import Tenant, TenantError, TenantStore
from shadow.webhooks import WebhookStore, new_secret

#: Exit statuses (see the module docstring).
EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


async def _with_redis(settings: Settings, fn: Callable[[Redis], Awaitable[int]]) -> int:
    redis = connect(settings.redis_url)
    try:
        return await fn(redis)
    finally:
        await redis.aclose()


def _check_tenant_flags(args: argparse.Namespace) -> None:
    """The admin API's rules for tenant settings, applied to the flags given."""
    given = {
        field: getattr(args, field)
        for field in ("name", "lms_url", "lms_api_key", "lms_rate", "lms_burst")
        if getattr(args, field) is not None
    }
    problems = check_tenant_settings(given)
    if problems:
        raise UsageError("; ".join(problems))


async def cmd_tenant_create(args: argparse.Namespace, settings: Settings) -> int:
    _check_tenant_flags(args)

    async def run(redis: Redis) -> int:
        tenant = Tenant(
            slug=args.slug,
            name=args.name or args.slug,
            lms_url=args.lms_url,
            lms_api_key=args.lms_api_key,
            lms_rate=args.lms_rate,
            lms_burst=args.lms_burst,
        )
        await TenantStore(redis, sealer=settings.require_sealer()).create(tenant)
        url = settings.scim_url(args.slug)
        emit(args, {"tenant": args.slug, "scim_url": url}, f"created {args.slug}: {url}")
        return 0

    return await _with_redis(settings, run)


async def cmd_tenant_reseal(args: argparse.Namespace, settings: Settings) -> int:
    """Re-seal every tenant's LMS key under the newest BRIDGE_SECRET_KEY."""
    redis = connect(settings.redis_url)
    try:
        count = await TenantStore(redis, sealer=settings.require_sealer()).reseal_all()
    except SealError as exc:
        raise TenantError(f"{exc}; keep the old key in BRIDGE_SECRET_KEY until done") from None
    finally:
        await redis.aclose()
    emit(args, {"resealed": count}, f"re-sealed the LMS keys of {count} tenant(s)")
    return EXIT_OK


async def cmd_tenant_update(args: argparse.Namespace, settings: Settings) -> int:
    _check_tenant_flags(args)
    _check_webhook_flags(args)

    async def run(redis: Redis) -> int:
        store = TenantStore(redis, sealer=settings.require_sealer())
        tenant = await store.get(args.slug)
        if tenant is None:
            raise TenantError(f"no tenant {args.slug!r}")
        for field in ("name", "lms_url", "lms_api_key", "lms_rate", "lms_burst"):
            value = getattr(args, field)
            if value is not None:
                setattr(tenant, field, value)
        if args.enabled is not None:
            tenant.enabled = args.enabled == "yes"
        await store.save(tenant)
        view, human = tenant_view(tenant, settings), f"updated {args.slug}"
        if args.webhook_url is not None:
            view["webhook"], said = await _set_webhook(redis, args)
            human += "\n" + said
        emit(args, view, human)
        return 0

    return await _with_redis(settings, run)


def _check_webhook_flags(args: argparse.Namespace) -> None:
    url, secret = args.webhook_url, args.webhook_secret
    if secret is not None and not url:
        raise UsageError("--webhook-secret needs --webhook-url")
    if url and (problem := check_webhook_url(url)):
        raise UsageError(f"--webhook-url: {problem}")
    if secret is not None and not 16 <= len(secret) <= 200:
        raise UsageError("--webhook-secret: expected 16 to 200 characters")


async def _set_webhook(redis: Redis, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Set (or, with an empty URL, remove) the notification webhook; the
    signing secret is printed this once (docs/operations.md, "Notifications")."""
    store = WebhookStore(redis)
    if not args.webhook_url:
        await store.clear(args.slug)
        return {"url": None}, "webhook removed"
    config = await store.set(args.slug, args.webhook_url, args.webhook_secret or new_secret())
    said = f"webhook {config.url}\nsigning secret (shown once): {config.secret}"
    return {"url": config.url, "secret": config.secret}, said


async def cmd_tenant_list(args: argparse.Namespace, settings: Settings) -> int:
    async def run(redis: Redis) -> int:
        store = TenantStore(redis)
        views = [
            tenant_view(t, settings)
            for slug in await store.slugs()
            if (t := await store.get(slug)) is not None
        ]
        human = "\n".join(f"{v['tenant']}\t{v['scim_url']}\t{v['lms_url']}" for v in views)
        emit(args, {"tenants": views}, human or "no tenants")
        return 0

    return await _with_redis(settings, run)


async def cmd_tenant_show(args: argparse.Namespace, settings: Settings) -> int:
    async def run(redis: Redis) -> int:
        tenant = await TenantStore(redis).get(args.slug)
        if tenant is None:
            raise TenantError(f"no tenant {args.slug!r}")
        view = tenant_view(tenant, settings)
        emit(args, view, "\n".join(f"{k}: {v}" for k, v in view.items()))
        return 0

    return await _with_redis(settings, run)


async def cmd_token_issue(args: argparse.Namespace, settings: Settings) -> int:
    async def run(redis: Redis) -> int:
        expires_in_s = args.expires_in_days * 86_400 if args.expires_in_days else None
        issued = await TenantStore(redis).issue_token(
            args.slug, label=args.label or "", expires_in_s=expires_in_s
        )
        url = settings.scim_url(args.slug)
        data = {
            "tenant": args.slug,
            "token_id": issued.token_id,
            "token": issued.token,
            "scim_url": url,
            "expires_at": issued.expires_at,
        }
        expiry = f"Expires: {issued.expires_at}\n" if issued.expires_at else ""
        human = (
            f"Tenant URL: {url}\nSecret token: {issued.token}\n{expiry}"
            "Copy the token now: it is not shown again."
        )
        emit(args, data, human)
        return 0

    return await _with_redis(settings, run)


async def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    async def run(redis: Redis) -> int:
        store = TenantStore(redis)
        if await store.get(args.slug) is None:
            raise TenantError(f"no tenant {args.slug!r}")
        tokens = await store.list_tokens(args.slug)
        data, human = credential_listing(args.slug, tokens, "tokens", "token_id")
        emit(args, data, human or "no tokens")
        return 0

    return await _with_redis(settings, run)


async def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async def run(redis: Redis) -> int:
        removed = await TenantStore(redis).revoke_token(args.slug, args.token_id)
        emit(
            args,
            {"tenant": args.slug, "token_id": args.token_id, "revoked": removed},
            "revoked" if removed else "no such token",
        )
        return 0 if removed else 1

    return await _with_redis(settings, run)


async def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from cli.doctor import render, run_checks

    checks = await run_checks(settings)
    ok = all(c.ok for c in checks)
    data = {"ok": ok, "checks": [msgspec.to_builtins(c) for c in checks]}
    emit(args, data, render(checks))
    return EXIT_OK if ok else EXIT_REFUSED


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from cli.processes import run_api, run_sandbox, run_up, run_worker_process

    if args.command == "api":
        settings.require_sealer()  # it stores LMS keys: sealed, never plain
        run_api(settings)
    elif args.command == "worker" and args.check:
        from worker.health import check_worker

        return check_worker(settings)
    elif args.command == "worker":
        settings.require_sealer()  # it calls the LMS: it unseals the keys
        run_worker_process(settings, burst=args.burst)
    elif args.command == "sandbox":
        run_sandbox()
    else:
        run_up(settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from cli.lifecycle import add_tenant_commands
    from cli.ops import add_ops_commands

    parser = argparse.ArgumentParser(prog="scim-bridge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="run the SCIM API (PORT, REDIS_URL, ...)")
    worker = sub.add_parser("worker", help="run a sync worker")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if a worker is alive (arq's health key), else 1",
    )
    sub.add_parser("sandbox", help="run the sandbox LMS (SANDBOX_PORT, default 8100)")
    sub.add_parser("up", help="run everything for local use: Redis, sandbox, API, worker")

    tenant = sub.add_parser("tenant", help="manage tenants").add_subparsers(
        dest="action", required=True
    )
    create = tenant.add_parser("create", help="create a tenant")
    create.add_argument("slug")
    create.add_argument("--name")
    create.add_argument("--lms-url", required=True)
    create.add_argument("--lms-api-key", required=True)
    create.add_argument("--lms-rate", type=float, default=20.0)
    create.add_argument("--lms-burst", type=int, default=40)
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler=cmd_tenant_create)
    update = tenant.add_parser("update", help="change a tenant's settings")
    update.add_argument("slug")
    update.add_argument("--name")
    update.add_argument("--lms-url")
    update.add_argument("--lms-api-key")
    update.add_argument("--lms-rate", type=float)
    update.add_argument("--lms-burst", type=int)
    update.add_argument("--enabled", choices=["yes", "no"])
    update.add_argument(
        "--webhook-url", help="notify this URL of failures (empty: remove the webhook)"
    )
    update.add_argument("--webhook-secret", help="the signing secret (default: one is drawn)")
    update.add_argument("--json", action="store_true")
    update.set_defaults(handler=cmd_tenant_update)
    add_tenant_commands(tenant)
    reseal = tenant.add_parser(
        "reseal", help="re-seal every tenant's LMS key under the newest BRIDGE_SECRET_KEY"
    )
    reseal.add_argument("--json", action="store_true")
    reseal.set_defaults(handler=cmd_tenant_reseal)
    for name, handler in (("list", cmd_tenant_list), ("show", cmd_tenant_show)):
        p = tenant.add_parser(name)
        if name == "show":
            p.add_argument("slug")
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=handler)

    token = sub.add_parser("token", help="manage SCIM bearer tokens").add_subparsers(
        dest="action", required=True
    )
    issue = token.add_parser("issue", help="issue a token (shown once)")
    issue.add_argument("slug")
    issue.add_argument("--label")
    issue.add_argument(
        "--expires-in-days",
        type=positive_days,
        help="the token stops working this many days from now (default: never)",
    )
    issue.add_argument("--json", action="store_true")
    issue.set_defaults(handler=cmd_token_issue)
    tlist = token.add_parser("list")
    tlist.add_argument("slug")
    tlist.add_argument("--json", action="store_true")
    tlist.set_defaults(handler=cmd_token_list)
    revoke = token.add_parser("revoke")
    revoke.add_argument("slug")
    revoke.add_argument("token_id")
    revoke.add_argument("--json", action="store_true")
    revoke.set_defaults(handler=cmd_token_revoke)

    doctor = sub.add_parser(
        "doctor", help="check Redis, versions, a live worker and every tenant's LMS key"
    )
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(handler=cmd_doctor)

    add_ops_commands(sub)
    return parser


def _fail(args: argparse.Namespace, message: str, status: int) -> int:
    """One line saying what is wrong: JSON on stdout with --json, else stderr."""
    if getattr(args, "json", False):
        print(json.dumps({"error": message}))
    else:
        print(f"scim-bridge: {message}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        return _fail(args, str(exc), EXIT_USAGE)
    handler: Handler | None = getattr(args, "handler", None)
    try:
        if handler is None:
            return _serve(args, settings)
        return asyncio.run(handler(args, settings))
    except (UsageError, ConfigError) as exc:
        return _fail(args, str(exc), EXIT_USAGE)
    except (TenantError, RedisUrlError) as exc:
        return _fail(args, str(exc), EXIT_REFUSED)
    except (RedisConnectionError, RedisTimeoutError, RedisClusterException) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        where = describe(settings.redis_url)
        return _fail(args, f"cannot reach Redis at REDIS_URL={where}: {first}", EXIT_REFUSED)
    except OSError as exc:  # a file named on the command line
        return _fail(args, f"{exc.filename or ''}: {exc.strerror or exc}", EXIT_USAGE)


if __name__ == "__main__":
    raise SystemExit(main())
