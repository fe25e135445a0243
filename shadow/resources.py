"""The shadow record of every SCIM resource (Users and Groups).

A write is one Lua step that stores the document, its indexes and, for users,
the pending mark and queue slot together: a 2xx from the API means all of it
is in Redis (docs/architecture.md, invariant 1). Documents are canonical SCIM dicts without
`id` and `meta`, which are kept beside them and rebuilt on output.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import msgspec
from redis.asyncio import Redis

from core.clock import now_iso
from mappings import GroupRef
from shadow import keys, scripts
from shadow.keys import Kind

WriteMode = Literal["create", "update", "delete"]


class Stored(msgspec.Struct, frozen=True):
    """A resource as the store holds it."""

    id: str
    doc: dict[str, Any]
    version: int
    created: str
    modified: str


class WriteOutcome(msgspec.Struct, frozen=True):
    """What a write did: the new version, and the due time (ms) of the sync
    job the caller must enqueue, or None when one is already queued."""

    version: int
    created: str
    modified: str
    enqueue_due_ms: int | None
    enqueued: bool = False


class Followups(msgspec.Struct, frozen=True):
    """Group follow-ups as read, with the version a drop is checked against."""

    users: list[str]
    groups: list[str]
    version: str


class MemberOutcome(msgspec.Struct, frozen=True):
    """What a membership change did: the users whose membership changed (to
    re-sync) and the ids to add that were left out, not being live users."""

    changed: list[str]
    skipped: list[str]


class InlineJob(msgspec.Struct, frozen=True):
    """A sync job to write in the same Lua step as the change, when the queue
    lives on the shadow's Redis (not on Cluster): the job id is
    `id_prefix + due_ms`, known only inside the script."""

    payload: bytes
    queue_key: str
    key_prefix: str
    id_prefix: str
    expires_extra_ms: int


class StoreConflict(Exception):
    """A write refused by the store; `reason` is uniqueness, version_mismatch,
    not_found or exists."""

    def __init__(self, reason: str, current_version: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.current_version = current_version


_encode = msgspec.json.encode
_decode_doc = msgspec.json.Decoder(dict[str, Any]).decode


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


class ResourceStore:
    """Users and Groups of every tenant; stateless apart from the Redis client."""

    def __init__(self, redis: Redis, *, recent_size: int = 5000) -> None:
        self._redis = redis
        self._recent: OrderedDict[tuple[str, Kind, str], Stored] = OrderedDict()
        self._recent_size = recent_size
        self._put = redis.register_script(scripts.PUT_RESOURCE)
        self._members = redis.register_script(scripts.CHANGE_MEMBERS)
        self._requeue = redis.register_script(scripts.REQUEUE)
        self._find_user_name = redis.register_script(scripts.FIND_BY_USER_NAME)
        self._drop_followups = redis.register_script(scripts.DROP_FOLLOWUPS)

    async def write(
        self,
        tenant: str,
        kind: Kind,
        rid: str,
        mode: WriteMode,
        doc: dict[str, Any] | None,
        *,
        expected_version: int | None = None,
        interval_ms: int = 0,
        job: InlineJob | None = None,
    ) -> WriteOutcome:
        """Create, replace or delete one resource atomically with its indexes.

        For users the same step marks the user pending and, unless a sync job
        is already queued for it, reserves a queue slot at the tenant's
        fair-share clock (`interval_ms` apart); with `job` it writes the
        sync job there too, so no wake-up call can be lost in between.
        """
        doc = doc or {}
        external_id = str(doc.get("externalId", "") or "")
        # Unique among the tenant's live resources of the kind: a user's
        # userName (not caseExact); a group's externalId, the IdP's own id of
        # it, so that a create retried after a lost answer meets a 409 and
        # never makes a second group (docs/architecture.md, "Crash safety").
        unique = str(doc.get("userName", "")).lower() if kind == "u" else external_id
        name = str(doc.get("displayName", "")).lower() if kind == "g" else ""
        now_ms = int(time.time() * 1000)
        stamp = now_iso()
        links = keys.user_groups(tenant, rid) if kind == "u" else keys.members(tenant, rid)
        result = await self._put(
            keys=[
                keys.resource(tenant, kind, rid),
                keys.resource_ids(tenant, kind),
                keys.sequence(tenant),
                keys.unique_index(tenant, kind),
                keys.state_set(tenant, "pending"),
                keys.state_set(tenant, "synced"),
                keys.state_set(tenant, "failed"),
                keys.sync_state(tenant, rid),
                keys.queued(tenant),
                keys.vclock(tenant),
                links,
            ],
            args=[
                rid,
                mode,
                "" if expected_version is None else str(expected_version),
                _encode(doc) if mode != "delete" else b"",
                unique,
                external_id,
                name,
                stamp,
                now_ms,
                interval_ms,
                "1" if kind == "u" else "0",
                keys.prefix(tenant),
                kind,
                *(
                    (
                        job.payload,
                        job.queue_key,
                        job.key_prefix,
                        job.id_prefix,
                        job.expires_extra_ms,
                    )
                    if job is not None and kind == "u"
                    else ()
                ),
            ],
        )
        status = _text(result[0])
        if status != "ok":
            self._recent.pop((tenant, kind, rid), None)
            raise StoreConflict(status, int(result[1]) if result[1] else None)
        due = int(result[3])
        if mode == "delete":
            self._recent.pop((tenant, kind, rid), None)
        else:
            self._remember(tenant, kind, Stored(rid, doc, int(result[1]), _text(result[2]), stamp))
        return WriteOutcome(
            version=int(result[1]),
            created=_text(result[2]),
            modified=stamp,
            enqueue_due_ms=due if due >= 0 else None,
            enqueued=bool(int(result[4])),
        )

    def _remember(self, tenant: str, kind: Kind, stored: Stored) -> None:
        key = (tenant, kind, stored.id)
        self._recent[key] = stored
        self._recent.move_to_end(key)
        if len(self._recent) > self._recent_size:
            self._recent.popitem(last=False)

    async def get(
        self, tenant: str, kind: Kind, rid: str, *, recent: bool = False
    ) -> Stored | None:
        """A live resource, or None when absent or deleted.

        `recent=True` may answer from this process's copy of what it last read
        or wrote, saving a round trip for read-modify-write (PATCH, PUT). Such
        a copy may be stale: the caller must write it back with
        `expected_version` (the store refuses a stale one) and re-read with
        `recent=False` before trusting any conclusion drawn from it.
        Documents are shared: never mutate `Stored.doc`.
        """
        if recent and (hit := self._recent.get((tenant, kind, rid))) is not None:
            return hit
        raw = await self._redis.hmget(  # type: ignore[misc]
            keys.resource(tenant, kind, rid), ["doc", "v", "created", "modified", "del"]
        )
        stored = _stored(rid, raw)
        if stored is None:
            self._recent.pop((tenant, kind, rid), None)
        else:
            self._remember(tenant, kind, stored)
        return stored

    async def get_many(self, tenant: str, kind: Kind, ids: Sequence[str]) -> list[Stored]:
        """Live resources in the order of `ids`, skipping any that vanished."""
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for rid in ids:
                pipe.hmget(
                    keys.resource(tenant, kind, rid), ["doc", "v", "created", "modified", "del"]
                )
            rows = await pipe.execute()
        return [s for rid, raw in zip(ids, rows, strict=True) if (s := _stored(rid, raw))]

    async def get_by_user_name(self, tenant: str, user_name: str) -> Stored | None:
        """The live user with this userName (case-insensitive), in one round trip."""
        row = await self._find_user_name(
            keys=[keys.unique_index(tenant, "u")], args=[user_name.lower(), keys.prefix(tenant)]
        )
        if not row:
            return None
        rid, doc, version, created, modified = row
        return Stored(
            id=_text(rid),
            doc=_decode_doc(doc),
            version=int(version),
            created=_text(created),
            modified=_text(modified),
        )

    async def ids_by_user_name(self, tenant: str, user_name: str) -> list[str]:
        rid = await self._redis.hget(keys.unique_index(tenant, "u"), user_name.lower())  # type: ignore[misc]
        return [_text(rid)] if rid else []

    async def group_holding(self, tenant: str, external_id: str) -> str | None:
        """The live group whose externalId this is (unique: `write`), if any."""
        rid = await self._redis.hget(keys.unique_index(tenant, "g"), external_id)  # type: ignore[misc]
        return _text(rid) if rid else None

    async def ids_by_external_id(self, tenant: str, kind: Kind, external_id: str) -> list[str]:
        members = await self._redis.smembers(keys.external_id_index(tenant, kind, external_id))  # type: ignore[misc]
        return sorted(_text(m) for m in members)

    async def ids_by_display_name(self, tenant: str, display_name: str) -> list[str]:
        members = await self._redis.smembers(  # type: ignore[misc]
            keys.display_name_index(tenant, display_name)
        )
        return sorted(_text(m) for m in members)

    async def count(self, tenant: str, kind: Kind) -> int:
        return int(await self._redis.zcard(keys.resource_ids(tenant, kind)))

    async def page_ids(self, tenant: str, kind: Kind, offset: int, limit: int) -> list[str]:
        """Ids in creation order, for startIndex/count paging (RFC 7644 §3.4.2.4)."""
        if limit <= 0:
            return []
        raw = await self._redis.zrange(keys.resource_ids(tenant, kind), offset, offset + limit - 1)
        return [_text(r) for r in raw]

    async def scan(self, tenant: str, kind: Kind, batch: int = 500) -> AsyncIterator[Stored]:
        """Every live resource in creation order, a batch at a time."""
        offset = 0
        while True:
            ids = await self.page_ids(tenant, kind, offset, batch)
            if not ids:
                return
            for stored in await self.get_many(tenant, kind, ids):
                yield stored
            offset += len(ids)

    async def change_members(
        self,
        tenant: str,
        group_id: str,
        *,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        remove_all: bool = False,
    ) -> MemberOutcome:
        """Apply membership changes as set operations in one step. A member to
        add that is not a live user of the tenant is left out (`skipped`),
        the rest applies. Raises StoreConflict not_found."""
        result = await self._members(
            keys=[keys.resource(tenant, "g", group_id), keys.members(tenant, group_id)],
            args=[
                group_id,
                keys.prefix(tenant),
                "1" if remove_all else "0",
                len(add),
                *add,
                *remove,
            ],
        )
        status = _text(result[0])
        if status != "ok":
            raise StoreConflict(status)
        return MemberOutcome(
            changed=[u for u in _text(result[1]).split(" ") if u],
            skipped=[u for u in _text(result[2]).split(" ") if u],
        )

    async def member_ids(self, tenant: str, group_id: str) -> list[str]:
        members = await self._redis.zrange(keys.members(tenant, group_id), 0, -1)
        return [_text(m) for m in members]

    async def member_count(self, tenant: str, group_id: str) -> int:
        return int(await self._redis.zcard(keys.members(tenant, group_id)))

    async def member_ids_after(
        self, tenant: str, group_id: str, after: str | None, count: int
    ) -> list[str]:
        """Up to `count` member ids in id order, after `after` (from the start
        when None): a page of a large group, O(log n + count) in Redis."""
        low = f"({after}" if after is not None else "-"
        members = await self._redis.zrangebylex(
            keys.members(tenant, group_id), low, "+", start=0, num=count
        )
        return [_text(m) for m in members]

    async def group_ids_of(self, tenant: str, user_id: str) -> list[str]:
        members = await self._redis.smembers(keys.user_groups(tenant, user_id))  # type: ignore[misc]
        return sorted(_text(m) for m in members)

    async def group_refs(self, tenant: str, user_id: str) -> list[GroupRef]:
        """The user's groups as the mapping's team rule reads them: id,
        displayName and externalId (the IdP's own id of the group)."""
        return await self.refs_of_groups(tenant, await self.group_ids_of(tenant, user_id))

    async def refs_of_groups(self, tenant: str, group_ids: Sequence[str]) -> list[GroupRef]:
        found = await self.get_many(tenant, "g", group_ids)
        return [
            GroupRef(
                g.id,
                _text_or_none(g.doc.get("displayName")),
                _text_or_none(g.doc.get("externalId")),
            )
            for g in found
        ]

    async def followups(self, tenant: str, count: int) -> Followups:
        """Up to `count` users, and the groups, whose teams are still to be
        re-synced after a group change (see `keys.followup_users`)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.srandmember(keys.followup_users(tenant), count)
            pipe.smembers(keys.followup_groups(tenant))
            pipe.get(keys.followup_version(tenant))
            users, groups, version = await pipe.execute()
        return Followups(
            users=sorted(_text(u) for u in users),
            groups=sorted(_text(g) for g in groups),
            version=_text(version) or "0",
        )

    async def add_followup_users(self, tenant: str, user_ids: Sequence[str]) -> None:
        if user_ids:
            await self._redis.sadd(keys.followup_users(tenant), *user_ids)  # type: ignore[misc]

    async def drop_followups(
        self, tenant: str, read: Followups, *, users: Sequence[str] = (), group: str | None = None
    ) -> bool:
        """Done with these: after their re-sync was marked, never before, and
        only if no group change wrote follow-ups since `read` (else False)."""
        dropped = await self._drop_followups(
            keys=[
                keys.followup_users(tenant),
                keys.followup_groups(tenant),
                keys.followup_version(tenant),
            ],
            args=[read.version, group or "", *users],
        )
        return bool(int(dropped))

    async def exists(self, tenant: str, kind: Kind, rid: str) -> bool:
        """True while the resource is stored, live or with its delete still
        to be applied; False for anything that is not an id of the bridge."""
        if not keys.is_resource_id(rid):
            return False
        return bool(await self._redis.hexists(keys.resource(tenant, kind, rid), "v"))  # type: ignore[misc]

    def _requeue_call(
        self, tenant: str, user_id: str, interval_ms: int, force: bool, bump: bool
    ) -> tuple[list[str], list[str | int]]:
        return (
            [
                keys.resource(tenant, "u", user_id),
                keys.state_set(tenant, "pending"),
                keys.state_set(tenant, "synced"),
                keys.state_set(tenant, "failed"),
                keys.sync_state(tenant, user_id),
                keys.queued(tenant),
                keys.vclock(tenant),
            ],
            [
                user_id,
                int(time.time() * 1000),
                interval_ms,
                "force" if force else "",
                "bump" if bump else "",
            ],
        )

    async def requeue(
        self, tenant: str, user_id: str, *, interval_ms: int = 0, force: bool = False
    ) -> int | None:
        """Mark a user pending again (replay, sweep); the due time of the job to
        enqueue, or None when one is queued already or the user is gone."""
        call_keys, args = self._requeue_call(tenant, user_id, interval_ms, force, False)
        due = int(await self._requeue(keys=call_keys, args=args))
        return due if due >= 0 else None

    async def requeue_many(
        self, users: Sequence[tuple[str, str, int]], *, force: bool = False
    ) -> list[int | None]:
        """`requeue` for many (tenant, user id, interval ms), a batch per round
        trip (the sweep, across tenants); each one's due time or None."""
        dues: list[int | None] = []
        for start in range(0, len(users), 500):
            async with self._redis.pipeline(transaction=False) as pipe:
                for tenant, uid, interval_ms in users[start : start + 500]:
                    call_keys, args = self._requeue_call(tenant, uid, interval_ms, force, False)
                    await self._requeue(keys=call_keys, args=args, client=pipe)
                raw = await pipe.execute()
            dues += [int(d) if int(d) >= 0 else None for d in raw]
        return dues

    async def requeue_changed_groups(
        self, tenant: str, user_ids: Sequence[str], *, interval_ms: int, batch: int = 500
    ) -> list[tuple[str, int]]:
        """Re-sync users whose group membership changed, a batch per round
        trip; each gets a new version, and users already queued are not
        queued twice (Entra's member batches coalesce into one sync per user).
        Returns (user id, due ms) for the jobs to enqueue."""
        due_jobs: list[tuple[str, int]] = []
        for start in range(0, len(user_ids), batch):
            chunk = user_ids[start : start + batch]
            async with self._redis.pipeline(transaction=False) as pipe:
                for uid in chunk:
                    call_keys, args = self._requeue_call(tenant, uid, interval_ms, False, True)
                    await self._requeue(keys=call_keys, args=args, client=pipe)
                dues = await pipe.execute()
            due_jobs += [(uid, int(d)) for uid, d in zip(chunk, dues, strict=True) if int(d) >= 0]
            for uid in chunk:
                self._recent.pop((tenant, "u", uid), None)
        return due_jobs


def _stored(rid: str, raw: list[bytes | None]) -> Stored | None:
    doc, version, created, modified, deleted = raw
    if doc is None or version is None or deleted == b"1":
        return None
    return Stored(
        id=rid,
        doc=_decode_doc(doc),
        version=int(version),
        created=_text(created),
        modified=_text(modified),
    )
