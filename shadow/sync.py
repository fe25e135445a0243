"""Sync state of each user: what the worker applied, and what ops see.

A user is in exactly one of `pending`, `synced` or `failed` (sorted sets
scored by since-when, so counts and the oldest pending age are O(1) or
O(log n) reads). The worker records an outcome only for the version it
applied; if a newer version arrived meanwhile the user stays pending and
the worker goes round again (docs/architecture.md, invariant 3).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import msgspec
from redis.asyncio import Redis

from core.clock import now_iso
from core.settings import Retention
from shadow import keys, scripts
from shadow.retention import scrub

SyncStateName = Literal["pending", "synced", "failed"]
#: How long an applied delete is remembered (`keys.gone_users`): ids only,
#: for reconcile to re-deactivate a deleted user's learner turned on by hand.
GONE_KEPT_MS = 90 * 86_400_000
_decode_dict = msgspec.json.Decoder(dict[str, Any]).decode
HolderGone = Callable[[str], Awaitable[bool]]
"""Tells whether the worker a lock names (its `holder/` prefix) has died."""


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


class SyncInput(msgspec.Struct, frozen=True):
    """Everything one sync pass needs, read in one round trip."""

    user_id: str
    exists: bool
    deleted: bool
    version: int
    doc: dict[str, Any] | None
    learner_id: int | None
    applied: dict[str, Any] | None
    applied_version: int
    state: str
    error: str


class SyncRecord(msgspec.Struct, frozen=True):
    """What ops see about one user."""

    user_id: str
    state: str
    applied_version: int
    learner_id: int | None
    error: str
    updated_at: str


class Finish(msgspec.Struct, frozen=True):
    """The result of recording an outcome: `done` False means a newer version
    is waiting; `pending_since_ms`/`modified_ms` give the sync lag;
    `released` are users that waited for this one (a conflict) and are
    pending again, to be enqueued."""

    done: bool
    pending_since_ms: int | None
    modified_ms: int | None
    released: tuple[str, ...] = ()


class LmsPause(msgspec.Struct, frozen=True):
    """A tenant whose LMS refuses its key: deliveries wait, users stay pending."""

    reason: str
    since: str
    key: str  # fingerprint of the refused key (`key_fingerprint`)


def key_fingerprint(api_key: str) -> str:
    """Tells whether the key changed since it was refused, without storing it."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


class StateCounts(msgspec.Struct, frozen=True):
    pending: int
    synced: int
    failed: int
    queued: int
    oldest_pending_ms: int | None


class SyncStore:
    def __init__(self, redis: Redis, *, retention: Retention | None = None) -> None:
        self._redis = redis
        self.retention = retention or Retention()
        self._finish = redis.register_script(scripts.FINISH_SYNC)
        self._release = redis.register_script(scripts.RELEASE_LOCK)
        self.holder = ""
        self.holder_gone: HolderGone | None = None

    async def read(self, tenant: str, user_id: str) -> SyncInput:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hmget(keys.resource(tenant, "u", user_id), ["doc", "v", "del"])
            pipe.hmget(
                keys.sync_state(tenant, user_id),
                ["learner_id", "applied", "applied_v", "state", "error"],
            )
            (
                (doc, version, deleted),
                (learner, applied, applied_v, state, error),
            ) = await pipe.execute()
        return SyncInput(
            user_id=user_id,
            exists=version is not None,
            deleted=deleted == b"1",
            version=int(version or 0),
            doc=_decode_dict(doc) if doc else None,
            learner_id=int(learner) if learner else None,
            applied=_decode_dict(applied) if applied else None,
            applied_version=int(applied_v or 0),
            state=_text(state),
            error=_text(error),
        )

    async def record_link(
        self, tenant: str, user_id: str, learner_id: int, applied: dict[str, Any]
    ) -> None:
        """Remember the learner and what it now holds, before the pass ends,
        so a crash after a create never loses the link."""
        await self._redis.hset(  # type: ignore[misc]
            keys.sync_state(tenant, user_id),
            mapping={"learner_id": learner_id, "applied": msgspec.json.encode(applied)},
        )

    async def finish(
        self,
        tenant: str,
        user_id: str,
        version: int,
        outcome: Literal["synced", "failed"],
        *,
        learner_id: int | None = None,
        applied: dict[str, Any] | None = None,
        error: str = "",
        waits_on: str = "",
        gone: bool = False,
        began_ms: int = 0,
    ) -> Finish:
        """Record a pass's outcome if `version` is still the newest.

        `waits_on`: a failed user that needs what another user of the tenant
        holds (its email); it is pending again once that user's next sync
        ends (`began_ms`: when the pass started; a holder that finished since
        may have let go, so the user is pending again at once). `gone`: a
        deleted user whose learner was deactivated (or never existed) is
        remembered for reconcile.
        """
        if waits_on and not keys.is_resource_id(waits_on):
            raise ValueError("waits_on must be a user id of the bridge")
        result = await self._finish(
            keys=[
                keys.resource(tenant, "u", user_id),
                keys.sync_state(tenant, user_id),
                keys.state_set(tenant, "pending"),
                keys.state_set(tenant, "synced"),
                keys.state_set(tenant, "failed"),
                keys.user_groups(tenant, user_id),
            ],
            args=[
                user_id,
                version,
                outcome,
                "" if learner_id is None else learner_id,
                msgspec.json.encode(applied) if applied is not None else "",
                scrub(error),
                int(time.time() * 1000),
                now_iso(),
                keys.prefix(tenant),
                waits_on,
                "gone" if gone else "",
                GONE_KEPT_MS,
                began_ms,
            ],
        )
        since, modified = int(result[1]), int(result[2])
        return Finish(
            done=_text(result[0]) == "done",
            pending_since_ms=since if since >= 0 else None,
            modified_ms=modified if modified >= 0 else None,
            released=tuple(_text(result[3]).split()),
        )

    async def lms_pause(self, tenant: str) -> LmsPause | None:
        raw = await self._redis.hmget(keys.lms_pause(tenant), ["reason", "since", "key"])  # type: ignore[misc]
        reason, since, key = raw
        if reason is None:
            return None
        return LmsPause(reason=_text(reason), since=_text(since), key=_text(key))

    async def pause_lms(self, tenant: str, reason: str, key: str, probe_ms: int = 0) -> bool:
        """Pause the tenant's deliveries, the next try of the LMS `probe_ms`
        from now; True when this started the pause."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(keys.lms_pause(tenant), "since", now_iso())
            pipe.hset(keys.lms_pause(tenant), mapping={"reason": reason, "key": key})
            if probe_ms:
                pipe.set(keys.lms_probe(tenant), "1", px=probe_ms)
            started, *_ = await pipe.execute()
        return bool(started)

    async def take_probe(self, tenant: str, every_ms: int) -> bool:
        """True for the one job of a paused tenant that may try the LMS now."""
        return bool(await self._redis.set(keys.lms_probe(tenant), "1", nx=True, px=every_ms))

    async def resume_lms(self, tenant: str) -> bool:
        """End the pause; True when there was one."""
        return bool(await self._redis.delete(keys.lms_pause(tenant), keys.lms_probe(tenant)))

    async def note_fault(self, tenant: str, user_id: str) -> int:
        """Count a pass that ended in an unexpected error; the count so far.
        Reset by the user's next finish or SCIM change."""
        return int(
            await self._redis.hincrby(keys.sync_state(tenant, user_id), "faults", 1)  # type: ignore[misc]
        )

    async def waits_for(self, tenant: str, user_id: str, other_id: str) -> bool:
        """True when `user_id` is failed waiting for `other_id` (a conflict)."""
        return bool(
            await self._redis.sismember(keys.conflict_waiters(tenant, other_id), user_id)  # type: ignore[misc]
        )

    async def was_deleted(self, tenant: str, user_id: str) -> bool:
        """True when a delete of this user was applied (within `GONE_KEPT_MS`)."""
        if not keys.is_resource_id(user_id):
            return False
        return await self._redis.zscore(keys.gone_users(tenant), user_id) is not None

    async def record(self, tenant: str, user_id: str) -> SyncRecord | None:
        raw = await self._redis.hmget(  # type: ignore[misc]
            keys.sync_state(tenant, user_id),
            ["state", "applied_v", "learner_id", "error", "updated_at"],
        )
        state, applied_v, learner, error, updated = raw
        if state is None:
            return None
        return SyncRecord(
            user_id=user_id,
            state=_text(state),
            applied_version=int(applied_v or 0),
            learner_id=int(learner) if learner else None,
            error=_text(error),
            updated_at=_text(updated),
        )

    async def counts(self, tenant: str) -> StateCounts:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.state_set(tenant, "pending"))
            pipe.zcard(keys.state_set(tenant, "synced"))
            pipe.zcard(keys.state_set(tenant, "failed"))
            pipe.zcard(keys.queued(tenant))
            pipe.zrange(keys.state_set(tenant, "pending"), 0, 0, withscores=True)
            pending, synced, failed, queued, oldest = await pipe.execute()
        return StateCounts(
            pending=int(pending),
            synced=int(synced),
            failed=int(failed),
            queued=int(queued),
            oldest_pending_ms=int(oldest[0][1]) if oldest else None,
        )

    async def users_in(
        self,
        tenant: str,
        state: SyncStateName,
        *,
        older_than_ms: int | None = None,
        limit: int = 100,
    ) -> list[str]:
        """Users in a state, oldest first (optionally only those since before a time)."""
        top = "+inf" if older_than_ms is None else older_than_ms
        raw = await self._redis.zrangebyscore(
            keys.state_set(tenant, state), "-inf", top, start=0, num=limit
        )
        return [_text(r) for r in raw]

    async def queued_due(self, tenant: str, user_id: str) -> int | None:
        score = await self._redis.zscore(keys.queued(tenant), user_id)
        return int(score) if score is not None else None

    async def keep_queued(self, tenant: str, user_id: str, due_ms: int) -> None:
        """Put the queue mark back for a job that deferred itself, so the sweep
        does not add a second job for it."""
        await self._redis.zadd(keys.queued(tenant), {user_id: due_ms}, nx=True)

    async def forget_link(self, tenant: str, user_id: str) -> None:
        """Drop a learner link the LMS no longer knows (its PATCH answered 404)."""
        await self._redis.hdel(keys.sync_state(tenant, user_id), "learner_id", "applied")  # type: ignore[misc]

    async def clear_queued(self, tenant: str, user_id: str) -> None:
        """Called when a job starts: a change from now on needs a new job."""
        await self._redis.zrem(keys.queued(tenant), user_id)

    def name_holder(self, holder: str, gone: HolderGone) -> None:
        """Make locks name their holder (`holder/token`), and break a lock
        whose holder `gone` says has died rather than wait out its lifetime."""
        self.holder, self.holder_gone = holder, gone

    async def lock(self, tenant: str, user_id: str, ttl_s: float) -> str | None:
        """Take the per-user lock; its token, or None when another worker holds it."""
        key = keys.user_lock(tenant, user_id)
        token = f"{self.holder}/{secrets.token_hex(8)}" if self.holder else secrets.token_hex(8)
        if await self._redis.set(key, token, nx=True, px=int(ttl_s * 1000)):
            return token
        held = _text(await self._redis.get(key))
        holder = held.partition("/")[0] if "/" in held else ""
        if not holder or self.holder_gone is None or not await self.holder_gone(holder):
            return None
        await self._release(keys=[key], args=[held])  # only that dead holder's lock
        ok = await self._redis.set(key, token, nx=True, px=int(ttl_s * 1000))
        return token if ok else None

    async def is_locked(self, tenant: str, user_id: str) -> bool:
        return bool(await self._redis.exists(keys.user_lock(tenant, user_id)))

    async def unlock(self, tenant: str, user_id: str, token: str) -> None:
        await self._release(keys=[keys.user_lock(tenant, user_id)], args=[token])

    async def log_event(self, tenant: str, user_id: str, event: str, **fields: str | int) -> None:
        """Append to the user's provisioning log (a capped stream): what ops
        read to follow one user past Entra's view. No personal data: values
        are scrubbed, and the log is capped by count and age (shadow/retention.py)."""
        key, age_ms = keys.events(tenant, user_id), self.retention.events_max_age_ms
        entry = {"event": event, "at": now_iso(), **{k: scrub(str(v)) for k, v in fields.items()}}
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, entry, maxlen=self.retention.events_kept, approximate=True)  # type: ignore[arg-type]
            pipe.xtrim(key, minid=f"{int(time.time() * 1000) - age_ms}-0", approximate=False)
            pipe.pexpire(key, age_ms)
            await pipe.execute()

    async def events(self, tenant: str, user_id: str, limit: int = 100) -> list[dict[str, str]]:
        rows = await self._redis.xrevrange(keys.events(tenant, user_id), count=limit)
        return [
            {_text(k): _text(v) for k, v in fields.items()} | {"id": _text(eid)}
            for eid, fields in rows
        ]
