"""CLI commands for the data lifecycle: offboard a tenant, erase a person,
export and import a tenant's configuration. The work is in
worker/lifecycle.py and shadow/ (the admin API calls the same)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import msgspec

from cli.ops import UsageError, emit
from core.connect import connect, connect_queue
from core.settings import Settings
from shadow import TenantError
from shadow.config_io import export_config, import_config
from shadow.lifecycle import estimate_keys, find_user
from worker.lifecycle import (
    Deactivation,
    deactivate_learners,
    erase_person,
    offboard_tenant,
    withdraw_first,
)

audit_log = logging.getLogger("scim_bridge.admin.audit")


class _Bar:
    """A bar of keys removed against an estimate, on stderr, only on a terminal."""

    def __init__(self, label: str, width: int = 30) -> None:
        self.label = label
        self.width = width
        self.estimate = 0
        self.shown = sys.stderr.isatty()

    def __call__(self, removed: int, running: int) -> None:
        if not self.shown:
            return
        share = min(1.0, removed / self.estimate) if self.estimate else 0.0
        filled = int(share * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        wait = f", waiting for {running} running job(s)" if running else ""
        sys.stderr.write(f"\r{self.label} [{bar}] {removed:,} keys removed{wait}")
        sys.stderr.flush()

    def close(self, done: int | None = None) -> None:
        """End the line; `done`: the purge finished with this many keys."""
        if self.shown:
            if done is not None:
                self.estimate = max(1, done)
                self(done, 0)
            sys.stderr.write("\n")


def _audit(action: str, tenant: str, **fields: Any) -> None:
    """The admin audit record of a CLI change: ids and counts, never personal data."""
    if not logging.getLogger().handlers:
        from core.logs import configure_logging

        configure_logging("INFO")
    audit_log.info(
        "admin %s by cli on %s",
        action,
        tenant,
        extra={"action": action, "by": "cli", "tenant": tenant, **fields},
    )


async def cmd_tenant_delete(args: argparse.Namespace, settings: Settings) -> int:
    if not args.purge or not args.yes:
        raise UsageError(
            "deleting a tenant removes every key of it for good: "
            "pass --purge --yes to confirm (the LMS's learners are left as they are)"
        )
    redis = connect(settings.redis_url)
    queue = connect_queue(settings.queue_url)
    bar = _Bar(f"deleting {args.slug}")
    done: int | None = None
    try:
        if args.deactivate_learners:
            waiting = await deactivate_learners(redis, queue, args.slug)
            if not waiting.done:
                emit(args, msgspec.to_builtins(waiting), _waiting_human(waiting))
                return 1
        bar.estimate = await estimate_keys(redis, args.slug)
        result = await offboard_tenant(
            redis, queue, args.slug, progress=bar, lock_wait_s=settings.job_timeout_s + 30
        )
        done = result.removed if result.state == "deleted" else None
    finally:
        bar.close(done)
        await queue.aclose()
        await redis.aclose()
    data = msgspec.to_builtins(result)
    _audit("tenant delete", args.slug, removed=result.removed, state=result.state)
    if result.state == "deleted":
        human = f"deleted {args.slug}: {result.removed:,} keys removed"
        emit(args, data, human)
        return 0
    human = (
        f"{args.slug} is still being deleted ({result.running_jobs} sync job(s) still running); "
        "run the command again to finish"
    )
    emit(args, data, human)
    return 1


def _waiting_human(waiting: Deactivation) -> str:
    slug = waiting.tenant
    lines = [
        f"{slug}: its credentials are revoked; deactivating its learners first "
        f"({waiting.pending} pending, {waiting.held} held by the breaker, "
        f"{waiting.failed} failed)"
    ]
    if waiting.held:
        lines.append(f"  approve the deactivations: scim-bridge breaker approve {slug}")
    if waiting.failed:
        lines.append(f"  see why: scim-bridge users failed {slug}; then scim-bridge replay {slug}")
    lines.append("  then run this command again to finish the purge")
    return "\n".join(lines)


def _withdrawing_human(slug: str, user_id: str, state: str) -> str:
    what = {
        "held": f"held by the breaker (scim-bridge breaker approve {slug})",
        "failed": f"failed (scim-bridge users show {slug} {user_id}; then replay)",
    }.get(state, "queued for a worker")
    return (
        f"user {user_id}'s learner is being deactivated first: {what}; "
        f"then run: scim-bridge users erase {slug} {user_id} --deactivate-learner"
    )


async def cmd_users_erase(args: argparse.Namespace, settings: Settings) -> int:
    redis = connect(settings.redis_url)
    queue = connect_queue(settings.queue_url)
    try:
        user_id = await find_user(redis, args.slug, args.who)
        if args.deactivate_learner:
            state = await withdraw_first(redis, queue, args.slug, user_id)
            if state is not None:
                data = {"tenant": args.slug, "user_id": user_id, "state": state}
                emit(args, data, _withdrawing_human(args.slug, user_id, state))
                return 1
        erased = await erase_person(redis, queue, args.slug, user_id)
    finally:
        await queue.aclose()
        await redis.aclose()
    _audit("user erase", args.slug, keys_removed=erased.keys_removed)  # no id: it names a learner
    data = msgspec.to_builtins(erased)
    learner = (
        f"; learner {erased.learner_id} in the LMS is left as it is"
        if erased.learner_id is not None
        else ""
    )
    emit(args, data, f"erased user {erased.user_id} of {args.slug}{learner}")
    return 0


async def cmd_tenant_export(args: argparse.Namespace, settings: Settings) -> int:
    redis = connect(settings.redis_url)
    try:
        exported = await export_config(redis, args.slug)
    finally:
        await redis.aclose()
    text = msgspec.json.format(msgspec.json.encode(exported), indent=2).decode() + "\n"
    if args.out and args.out != "-":
        Path(args.out).write_text(text)
        Path(args.out).chmod(0o600)
        print(f"exported {args.slug} to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


async def cmd_tenant_import(args: argparse.Namespace, settings: Settings) -> int:
    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    settings.require_sealer()  # it stores an LMS key: sealed, never plain
    redis = connect(settings.redis_url)
    try:
        result = await import_config(
            redis, raw, lms_api_key=args.lms_api_key, sealer=settings.require_sealer()
        )
    except TenantError:
        raise  # exists: a refusal, not a usage error
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    finally:
        await redis.aclose()
    _audit("tenant import", result["tenant"])
    note = "" if result["enabled"] else " (disabled until its LMS API key is set)"
    emit(args, result, f"imported {result['tenant']}{note}")
    return 0


def add_tenant_commands(tenant: Any) -> None:
    delete = tenant.add_parser("delete", help="offboard a tenant: remove every key of it")
    delete.add_argument("slug")
    delete.add_argument("--purge", action="store_true", help="remove all of its data")
    delete.add_argument("--yes", action="store_true", help="confirm")
    delete.add_argument(
        "--deactivate-learners",
        action="store_true",
        help="first deactivate its learners (through the breaker's approval), then purge",
    )
    delete.add_argument("--json", action="store_true")
    delete.set_defaults(handler=cmd_tenant_delete)
    export = tenant.add_parser("export", help="write a tenant's configuration as JSON")
    export.add_argument("slug")
    export.add_argument("--out", help="file to write (default: stdout)")
    export.set_defaults(handler=cmd_tenant_export)
    imp = tenant.add_parser("import", help="create a tenant from an export")
    imp.add_argument("file", help="the export (- for stdin)")
    imp.add_argument("--lms-api-key", help="the LMS API key, when the export holds none")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(handler=cmd_tenant_import)


def add_users_commands(users: Any) -> None:
    erase = users.add_parser("erase", help="erase a person: shadow record, indexes, log, state")
    erase.add_argument("slug")
    erase.add_argument("who", metavar="id|userName|email")
    erase.add_argument(
        "--deactivate-learner",
        action="store_true",
        help="first deactivate the person's learner (as an IdP delete would), then erase",
    )
    erase.add_argument("--json", action="store_true")
    erase.set_defaults(handler=cmd_users_erase)
