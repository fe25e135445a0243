"""The mass-deactivation breaker: an unassigned security group must not wipe
a customer's training records in one provisioning cycle.

Every deactivation the worker is about to send (SCIM `active: false`, or a
DELETE's deactivation) first asks `admit`. One Lua step, atomic with the
shadow's own writes, counts the tenant's deactivations in a sliding window
(a sorted set of user ids, so a job that runs twice is counted once) and
compares them with the tenant's learners:

- a tenant with fewer than `min_learners` learners is never held (a team of
  ten losing three people is routine);
- otherwise at most `floor(share * learners)` users may be deactivated per
  `window_s`; the next one *trips* the breaker (a Redis flag) and is held,
  and so is every later one until an admin decides.

"Learners" is the number of users the bridge manages (pending, synced,
failed and held), remembered as its highest value within the window, so
deletions already applied do not shrink the base while they happen.

A held user is *parked*: its sync state stays `pending` with a "held by
breaker" note, but it leaves the `pending` sorted set for the breaker's
`held` set, so the sweep does not re-run it in a loop and the oldest-pending
figure is not skewed by a deliberate hold. The shadow keeps every change
(SCIM keeps answering 2xx); a newer change of a held user puts it back in
`pending` through the normal write path.

- `approve` releases the held users (re-marked pending and enqueued) and
  lets the tenant's deactivations through, uncounted, for one window from
  now: the admin confirmed the mass change as a whole. Counting starts
  afresh after it.
- `cancel` drops the held deactivations; the learners stay active. A held
  user that is still `active: false` becomes `failed` with the reason
  "deactivation cancelled by admin" until its next change (or a replay,
  which asks the breaker again). A held user that was deleted in SCIM is
  finished without a deactivation: its shadow record goes as for any
  applied delete and its learner stays active with the old `external_ref`
  (reconcile lists it as an active learner the shadow does not know; when
  Entra re-creates the person under a new id, the worker adopts it).

`breaker_state(redis, tenant)` is the read model for the admin API, the CLI
and metrics; ops/commands.py gives operators `approve` with the queue.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
from redis.asyncio import Redis

from core.clock import iso_of_ms, now_iso
from shadow import ResourceStore, SyncStore, keys

__all__ = [
    "CANCELLED_REASON",
    "HELD_NOTE",
    "BreakerConfig",
    "BreakerHeld",
    "BreakerState",
    "Decision",
    "Enqueue",
    "Mode",
    "admit",
    "allowed_in_window",
    "approve",
    "breaker_mode",
    "breaker_state",
    "cancel",
    "get_bound",
    "get_config",
    "held_since",
    "held_users",
    "set_config",
]

Decision = Literal["allow", "held", "newer"]
Mode = Literal["on", "tripped", "approved", "off"]

HELD_NOTE = "held by breaker: mass deactivation waits for an admin to approve or cancel"
CANCELLED_REASON = "deactivation cancelled by admin"


class BreakerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A tenant's thresholds (stored in `{t:<tenant>}:breaker:config`)."""

    enabled: bool = True
    #: Share of the tenant's learners that may be deactivated per window.
    share: float = 0.2
    #: Tenants with fewer learners than this are never held.
    min_learners: int = 25
    window_s: int = 3600

    def loosened_from(self, bound: BreakerConfig, current: BreakerConfig) -> list[str]:
        """What of this config is looser than `bound` (the operator's), or
        turns off a breaker that is on: a tenant admin may tighten its
        breaker, not disable or loosen it."""
        found = []
        if not self.enabled and (bound.enabled or current.enabled):
            found.append("enabled: only the operator may turn the breaker off")
        if self.share > bound.share:
            found.append(f"share: at most {bound.share:g} (the operator's)")
        if self.min_learners > bound.min_learners:
            found.append(f"min_learners: at most {bound.min_learners} (the operator's)")
        if self.window_s < bound.window_s:
            found.append(f"window_s: at least {bound.window_s} (the operator's)")
        return found

    def problems(self) -> list[str]:
        found = []
        if not 0 < self.share <= 1:
            found.append("share must be more than 0 and at most 1")
        if self.min_learners < 0:
            found.append("min_learners must be 0 or more")
        if not 60 <= self.window_s <= 7 * 86400:
            found.append("window_s must be between 60 and 604800 seconds")
        return found


class BreakerState(msgspec.Struct, frozen=True, kw_only=True):
    """What ops and metrics see about one tenant's breaker."""

    tenant: str
    config: BreakerConfig
    tripped: bool
    tripped_at: str | None
    #: Users parked by the breaker, waiting for approve or cancel.
    held: int
    #: Deactivations let through within the current window.
    window_count: int
    #: The learner count the threshold is taken from.
    learners: int
    #: Deactivations allowed per window, or None when the breaker does not apply.
    allowed: int | None
    approved_until: str | None
    #: The one word ops read: `tripped` (users held or waiting for a decision),
    #: `off` (disabled), `approved` (deactivations let through, uncounted,
    #: until `approved_until`), else `on`.
    mode: Mode

    @property
    def awaits_decision(self) -> bool:
        """Is there anything for approve or cancel to decide?"""
        return self.tripped or self.held > 0


class BreakerHeld(Exception):  # control flow: not an error
    """Raised by the worker's hook: park this user (or re-read a newer version)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision)
        self.decision = decision


def allowed_in_window(config: BreakerConfig, learners: int) -> int | None:
    """Deactivations allowed per window for this many learners; None = no limit.

    The same arithmetic as the Lua step (kept there to stay atomic).
    """
    if not config.enabled or learners < config.min_learners:
        return None
    return int(config.share * learners + 1e-9)


# KEYS: 1 state, 2 config, 3 window, 4 held, 5 held versions, 6 pending,
#       7 synced, 8 failed, 9 user doc, 10 user sync state
# ARGV: 1 user id, 2 version, 3 now ms, 4 now ISO, 5 held note, then the
#       defaults: 6 enabled, 7 share, 8 min learners, 9 window s
# Returns {decision, window count, allowed or -1, learners}.
_ADMIT = """
local uid, now = ARGV[1], tonumber(ARGV[3])
if redis.call('HGET', KEYS[9], 'v') ~= ARGV[2] then return {'newer', 0, -1, 0} end
local cfg = redis.call('HMGET', KEYS[2], 'enabled', 'share', 'min_learners', 'window_s')
local enabled = (cfg[1] or ARGV[6]) == '1'
local share = tonumber(cfg[2] or ARGV[7])
local min_learners = tonumber(cfg[3] or ARGV[8])
local window = tonumber(cfg[4] or ARGV[9]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
local st = redis.call('HMGET', KEYS[1], 'tripped', 'base', 'base_ms', 'approved_until_ms')
local population = redis.call('ZCARD', KEYS[6]) + redis.call('ZCARD', KEYS[7])
  + redis.call('ZCARD', KEYS[8]) + redis.call('ZCARD', KEYS[4])
local base, base_ms = tonumber(st[2] or '0'), tonumber(st[3] or '0')
if population >= base or now - base_ms > window then
  base = population
  redis.call('HSET', KEYS[1], 'base', base, 'base_ms', now)
end
local count = redis.call('ZCARD', KEYS[3])
local allowed = -1
if enabled and base >= min_learners then allowed = math.floor(share * base + 1e-9) end
local function allow(counted)
  if counted then
    if not redis.call('ZSCORE', KEYS[3], uid) then count = count + 1 end
    redis.call('ZADD', KEYS[3], now, uid)
  end
  redis.call('ZREM', KEYS[4], uid)
  redis.call('HDEL', KEYS[5], uid)
  return {'allow', count, allowed, base}
end
-- An approved mass change is not counted: counting starts afresh after it.
if tonumber(st[4] or '0') > now then return allow(false) end
if allowed < 0 or redis.call('ZSCORE', KEYS[3], uid) then return allow(true) end
if st[1] ~= '1' and count + 1 <= allowed then return allow(true) end
if st[1] ~= '1' then
  redis.call('HSET', KEYS[1], 'tripped', '1', 'tripped_at', ARGV[4])
end
redis.call('ZADD', KEYS[4], 'NX', now, uid)
redis.call('HSET', KEYS[5], uid, ARGV[2])
redis.call('ZREM', KEYS[6], uid)
redis.call('HSET', KEYS[10], 'state', 'pending', 'error', ARGV[5], 'updated_at', ARGV[4])
return {'held', count, allowed, base}
"""

_DEFAULT = BreakerConfig()


async def admit(redis: Redis, tenant: str, user_id: str, version: int) -> Decision:
    """May the worker deactivate this user's learner now?

    `allow`: go ahead (counted). `held`: the user is parked (see module
    docstring); send nothing. `newer`: a newer shadow version arrived since
    the pass read it; nothing was counted, re-read and go round again.
    """
    script = redis.register_script(_ADMIT)
    result = await script(
        keys=[
            keys.breaker_state(tenant),
            keys.breaker_config(tenant),
            keys.breaker_window(tenant),
            keys.breaker_held(tenant),
            keys.breaker_held_versions(tenant),
            keys.state_set(tenant, "pending"),
            keys.state_set(tenant, "synced"),
            keys.state_set(tenant, "failed"),
            keys.resource(tenant, "u", user_id),
            keys.sync_state(tenant, user_id),
        ],
        args=[
            user_id,
            version,
            int(time.time() * 1000),
            now_iso(),
            HELD_NOTE,
            "1" if _DEFAULT.enabled else "0",
            _DEFAULT.share,
            _DEFAULT.min_learners,
            _DEFAULT.window_s,
        ],
    )
    decision = _text(result[0])
    if decision not in ("allow", "held", "newer"):
        raise RuntimeError(f"breaker script answered {decision!r}")
    return decision  # type: ignore[return-value]


_FIELDS = ("enabled", "share", "min_learners", "window_s")
#: The operator's thresholds are kept beside the ones in force (same hash,
#: this prefix): the bound a tenant admin may tighten but not loosen.
_BOUND = "operator_"


def _config(values: dict[str, str], prefix: str = "") -> BreakerConfig:
    def get(name: str, default: object) -> str:
        return values.get(prefix + name, str(default))

    return BreakerConfig(
        enabled=get("enabled", "1" if _DEFAULT.enabled else "0") == "1",
        share=float(get("share", _DEFAULT.share)),
        min_learners=int(get("min_learners", _DEFAULT.min_learners)),
        window_s=int(get("window_s", _DEFAULT.window_s)),
    )


async def _stored(redis: Redis, tenant: str) -> dict[str, str]:
    raw = await redis.hgetall(keys.breaker_config(tenant))  # type: ignore[misc]
    return {_text(k): _text(v) for k, v in raw.items()}


async def get_config(redis: Redis, tenant: str) -> BreakerConfig:
    """The thresholds in force."""
    return _config(await _stored(redis, tenant))


async def get_bound(redis: Redis, tenant: str) -> BreakerConfig:
    """The operator's thresholds (the defaults until the operator sets some):
    a tenant admin's own must be at least as strict (`loosened_from`)."""
    return _config(await _stored(redis, tenant), _BOUND)


async def set_config(
    redis: Redis, tenant: str, config: BreakerConfig, *, by_operator: bool = True
) -> None:
    """Store a tenant's thresholds; raises ValueError naming every bad value.

    The operator's become the bound as well; a tenant admin's must not be
    looser than the bound (the caller checks `loosened_from` first, so it
    can say who may do what)."""
    problems = config.problems()
    if problems:
        raise ValueError("; ".join(problems))
    values: dict[str, str | int] = {
        "enabled": "1" if config.enabled else "0",
        "share": repr(config.share),
        "min_learners": config.min_learners,
        "window_s": config.window_s,
    }
    if by_operator:
        values.update({_BOUND + name: values[name] for name in _FIELDS})
    await redis.hset(keys.breaker_config(tenant), mapping=values)  # type: ignore[misc]


async def breaker_state(redis: Redis, tenant: str) -> BreakerState:
    """The tenant's breaker as ops and metrics see it (a few reads, one round trip)."""
    config = await get_config(redis, tenant)
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hmget(
            keys.breaker_state(tenant), ["tripped", "tripped_at", "base", "approved_until_ms"]
        )
        pipe.zcard(keys.breaker_held(tenant))
        pipe.zcount(keys.breaker_window(tenant), now_ms - config.window_s * 1000, "+inf")
        for state in ("pending", "synced", "failed"):
            pipe.zcard(keys.state_set(tenant, state))
        (tripped, tripped_at, base, approved), held, window, *sets = await pipe.execute()
    learners = max(int(base or 0), sum(int(n) for n in sets) + int(held))
    approved_ms = int(approved or 0)
    is_tripped = _text(tripped) == "1"
    approved_until = iso_of_ms(approved_ms) if approved_ms > now_ms else None
    return BreakerState(
        tenant=tenant,
        config=config,
        tripped=is_tripped,
        tripped_at=(_text(tripped_at) or None) if is_tripped else None,
        held=int(held),
        window_count=int(window),
        learners=learners,
        allowed=allowed_in_window(config, learners),
        approved_until=approved_until,
        mode=breaker_mode(config, is_tripped or int(held) > 0, approved_until),
    )


def breaker_mode(config: BreakerConfig, awaiting: bool, approved_until: str | None) -> Mode:
    """The breaker's true state in one word (`BreakerState.mode`): a hold
    waiting for a decision first, since it needs an admin whatever else."""
    if awaiting:
        return "tripped"
    if not config.enabled:
        return "off"
    return "approved" if approved_until else "on"


async def held_users(
    redis: Redis, tenant: str, offset: int = 0, limit: int = 100
) -> list[tuple[str, str]]:
    """(user id, held since ISO) of parked users, oldest first."""
    rows = await redis.zrange(
        keys.breaker_held(tenant), offset, offset + limit - 1, withscores=True
    )
    return [(_text(uid), iso_of_ms(int(score))) for uid, score in rows]


async def held_since(redis: Redis, tenant: str, user_id: str) -> str | None:
    """When the breaker parked this user (ISO), or None when it is not held."""
    score = await redis.zscore(keys.breaker_held(tenant), user_id)
    return None if score is None else iso_of_ms(int(score))


#: Enqueue a sync job of (user id, due ms): the queue is the worker's, not the store's.
Enqueue = Callable[[str, int], Awaitable[None]]


async def approve(redis: Redis, tenant: str, *, interval_ms: int, enqueue: Enqueue) -> int:
    """Release every held user and let deactivations through for one window;
    returns how many users were released (re-marked pending and enqueued)."""
    config = await get_config(redis, tenant)
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(
            keys.breaker_state(tenant),
            mapping={
                "tripped": "0",
                "approved_until_ms": now_ms + config.window_s * 1000,
                "approved_at": now_iso(),
            },
        )
        pipe.delete(keys.breaker_window(tenant))
        await pipe.execute()
    resources, sync = ResourceStore(redis), SyncStore(redis)
    released = 0
    for uid in await _all_held(redis, tenant):
        # Re-mark before un-parking, so a crash in between leaves the user held
        # (approve again), never lost.
        due = await resources.requeue(tenant, uid, interval_ms=interval_ms)
        if due is not None:
            await enqueue(uid, due)
        await _unpark(redis, tenant, uid)
        await sync.log_event(tenant, uid, "breaker_released", reason="approved by admin")
        released += 1
    return released


async def cancel(redis: Redis, tenant: str) -> int:
    """Drop every held deactivation (see the module docstring for what
    becomes of the users); returns how many were dropped."""
    await redis.hset(  # type: ignore[misc]
        keys.breaker_state(tenant), mapping={"tripped": "0", "cancelled_at": now_iso()}
    )
    sync = SyncStore(redis)
    versions = {
        _text(k): int(v)
        for k, v in (await redis.hgetall(keys.breaker_held_versions(tenant))).items()  # type: ignore[misc]
    }
    dropped = 0
    for uid in await _all_held(redis, tenant):
        version = versions.get(uid)
        if version is not None:
            state = await sync.read(tenant, uid)
            # `finish` applies only if `version` is still the newest: a user
            # changed since it was held is in `pending` with a job, untouched.
            if state.deleted:
                await sync.finish(tenant, uid, version, "synced", learner_id=state.learner_id)
            else:
                await sync.finish(tenant, uid, version, "failed", error=CANCELLED_REASON)
        await _unpark(redis, tenant, uid)
        await sync.log_event(tenant, uid, "breaker_cancelled", reason=CANCELLED_REASON)
        dropped += 1
    return dropped


async def _all_held(redis: Redis, tenant: str) -> list[str]:
    return [_text(u) for u in await redis.zrange(keys.breaker_held(tenant), 0, -1)]


async def _unpark(redis: Redis, tenant: str, user_id: str) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zrem(keys.breaker_held(tenant), user_id)
        pipe.hdel(keys.breaker_held_versions(tenant), user_id)
        await pipe.execute()


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
