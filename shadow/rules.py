"""A tenant's mapping rules, and the re-sync that carries a change of them
to every learner (invariant 9, docs/architecture.md "Rules are
state too").

The LMS must reflect the newest shadow *and* the current rules, so a rule
change is a change of every user. Storing the rules and starting the
re-sync are one atomic step: the new overrides, a new *generation* and a
cursor at the start of the tenant's users. Workers then advance the cursor
a page at a time (worker/rules.py), marking each user of the page pending
with a new version, so a pass that read the old rules cannot record its
result as current. A crash between pages repeats at most one page; a newer
change of the rules restarts the cursor under the newer generation.
"""

from __future__ import annotations

from typing import Any

import msgspec
from redis.asyncio import Redis

from core.clock import now_iso
from mappings import (
    GroupRef,
    MappingConfigError,
    RuleSet,
    build_rules,
    decode_overrides,
    preview,
)
from shadow import keys
from shadow.resources import ResourceStore

__all__ = ["MappingStore", "ResyncPage", "ResyncProgress"]

# KEYS: 1 mapping, 2 resync cursor, 3 user ids
# ARGV: 1 overrides JSON, or "" to go back to the defaults, 2 now ISO
# Returns the new generation.
_SET_RULES = """
if ARGV[1] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
local gen = redis.call('HINCRBY', KEYS[2], 'gen', 1)
redis.call('HSET', KEYS[2], 'after', 0, 'done', 0, 'total', redis.call('ZCARD', KEYS[3]),
  'state', 'running', 'started_at', ARGV[2], 'finished_at', '')
return gen
"""

# Move the cursor past a page, only if no newer rule change restarted it.
# KEYS: 1 resync cursor; ARGV: 1 generation, 2 last sequence done (or "" when
# the page was empty: the end), 3 users in the page, 4 now ISO
# Returns 1 when moved, 0 when the generation changed.
_ADVANCE = """
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('HSET', KEYS[1], 'state', 'done', 'finished_at', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'after', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'done', ARGV[3])
end
return 1
"""


class ResyncProgress(msgspec.Struct, frozen=True, kw_only=True):
    """What status shows of the re-sync after the newest rule change."""

    state: str  # "running" | "done" | "none" (rules never changed)
    generation: int
    done: int
    total: int
    started_at: str
    finished_at: str


class ResyncPage(msgspec.Struct, frozen=True):
    """The next users to re-sync under `generation`; `last` is the cursor
    after them (None: the end was reached)."""

    generation: int
    user_ids: list[str]
    last: int | None


class MappingStore:
    """The tenant's overrides as stored, and the re-sync cursor."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._set = redis.register_script(_SET_RULES)
        self._advance = redis.register_script(_ADVANCE)

    async def raw(self, tenant: str) -> bytes | None:
        value = await self._redis.get(keys.mapping(tenant))
        return bytes(value) if value is not None else None

    async def rules(self, tenant: str) -> RuleSet:
        """The tenant's rules; raises `MappingConfigError` when the stored
        overrides no longer build."""
        raw = await self.raw(tenant)
        return build_rules(decode_overrides(raw) if raw else None)

    async def uses_groups(self, tenant: str) -> bool:
        """True when the tenant's team comes from its groups (and so a group
        change is a change of its members). Broken stored rules count as
        True: re-syncing shows the users the problem, skipping would hide it."""
        try:
            return (await self.rules(tenant)).team_from_groups is not None
        except MappingConfigError:
            return True

    async def replace(self, tenant: str, overrides_json: bytes | None) -> int:
        """Store new overrides (None: back to the defaults) and start the
        re-sync of every user, in one step; the new generation."""
        return int(
            await self._set(
                keys=[
                    keys.mapping(tenant),
                    keys.rules_resync(tenant),
                    keys.resource_ids(tenant, "u"),
                ],
                args=[overrides_json or b"", now_iso()],
            )
        )

    async def progress(self, tenant: str) -> ResyncProgress:
        raw = await self._redis.hgetall(keys.rules_resync(tenant))  # type: ignore[misc]
        values = {_text(k): _text(v) for k, v in raw.items()}
        return ResyncProgress(
            state=values.get("state", "none"),
            generation=int(values.get("gen", 0)),
            done=int(values.get("done", 0)),
            total=int(values.get("total", 0)),
            started_at=values.get("started_at", ""),
            finished_at=values.get("finished_at", ""),
        )

    async def next_page(self, tenant: str, size: int) -> ResyncPage | None:
        """The next page of a running re-sync, or None when none runs."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hmget(keys.rules_resync(tenant), ["gen", "after", "state"])
            ((gen, after, state),) = await pipe.execute()
        if _text(state) != "running":
            return None
        rows = await self._redis.zrangebyscore(
            keys.resource_ids(tenant, "u"),
            f"({int(after or 0)}",
            "+inf",
            start=0,
            num=size,
            withscores=True,
        )
        ids = [_text(uid) for uid, _ in rows]
        last = int(rows[-1][1]) if rows else None
        return ResyncPage(generation=int(gen or 0), user_ids=ids, last=last)

    async def advance(self, tenant: str, page: ResyncPage) -> bool:
        """Move the cursor past `page`; False when a newer rule change
        restarted the re-sync meanwhile (the caller reads the next page)."""
        moved = await self._advance(
            keys=[keys.rules_resync(tenant)],
            args=[
                page.generation,
                "" if page.last is None else page.last,
                len(page.user_ids),
                now_iso(),
            ],
        )
        return bool(int(moved))

    async def preview(
        self, tenant: str, user: dict[str, Any], groups: list[GroupRef] | None = None
    ) -> dict[str, Any]:
        """What `user` would become under the tenant's current rules, with
        the groups the team rule would see: those of the stored user of the
        same `id`, else the tenant's groups the body lists in `groups`.
        Raises `MappingConfigError` when the stored rules do not build."""
        rules = await self.rules(tenant)
        if groups is None:
            groups = await self._groups_for_preview(tenant, user)
        return preview(user, rules, groups)

    async def _groups_for_preview(self, tenant: str, user: dict[str, Any]) -> list[GroupRef]:
        resources = ResourceStore(self._redis)
        user_id = user.get("id")
        if keys.is_resource_id(user_id) and await resources.exists(tenant, "u", str(user_id)):
            return await resources.group_refs(tenant, str(user_id))
        listed = user.get("groups")
        ids = [
            g["value"]
            for g in (listed if isinstance(listed, list) else [])
            if isinstance(g, dict) and keys.is_resource_id(g.get("value"))
        ]
        return await resources.refs_of_groups(tenant, ids[:100])


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
