"""Letting data go: offboarding a tenant and erasing one person.

Offboarding happens in steps that can each be repeated, so an interrupted
purge is finished by running it again:

1. a durable mark (`keys.TENANTS_DELETING`) says the tenant is going; a new
   tenant cannot take the slug while it is there;
2. the tenant's config, SCIM tokens and admin keys go in one step, and every
   API process is told (as a token revocation is) and confirms: from then on
   no credential of the tenant is accepted anywhere, and a sync job that
   still runs finds no tenant and does nothing;
3. every key under the tenant's hash tag is found by SCAN (MATCH on the tag)
   and UNLINKed in bounded batches; a running job's user lock is left to its
   job, which may write once more, so the purge scans again once it is gone;
4. the mark goes last.

On Redis Cluster the hash tag keeps all of these keys in one slot, so the
scan visits that slot's node only.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import msgspec
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from core.clock import now_iso
from shadow import keys
from shadow.tenants import SLUG_RE, TenantError, TenantStore

__all__ = [
    "Erasure",
    "PurgeProgress",
    "begin_purge",
    "cut_credentials",
    "erase_user",
    "estimate_keys",
    "find_user",
    "mark_deleting",
    "purge_keys",
    "purge_marked",
    "scan_keys",
]

#: Keys unlinked per UNLINK, and asked for per SCAN step.
PURGE_BATCH = 100

Progress = Callable[[int, int], None]


class PurgeProgress(msgspec.Struct, kw_only=True):
    """What a purge did; `state` is "deleted" once nothing of the tenant is left."""

    tenant: str
    state: Literal["deleting", "deleted"]
    removed: int = 0
    scanned_passes: int = 0
    #: Sync jobs still running for the tenant (their user locks are held).
    running_jobs: int = 0
    started_at: str = ""


async def purge_marked(redis: Redis) -> list[str]:
    """Tenants whose purge began and has not finished."""
    raw = await redis.hkeys(keys.TENANTS_DELETING)  # type: ignore[misc]
    return sorted(r.decode() if isinstance(r, bytes) else r for r in raw)


async def estimate_keys(redis: Redis, slug: str) -> int:
    """About how many keys a tenant has (for a progress bar): a user has
    about four (record, sync state, log, groups), a group two."""
    users = await redis.zcard(keys.resource_ids(slug, "u"))
    groups = await redis.zcard(keys.resource_ids(slug, "g"))
    return 4 * int(users) + 2 * int(groups) + 30


async def mark_deleting(redis: Redis, slug: str, *, learners: bool = False) -> str:
    """Step 1: the durable mark (kept if there is one); when it was set.
    `learners`: the tenant first deactivates its learners (its config stays
    for the workers until that is done). TenantError when there is no such
    tenant and no purge of it to finish."""
    if not SLUG_RE.match(slug):
        raise TenantError(f"no tenant {slug!r}")
    started = await redis.hget(keys.TENANTS_DELETING, slug)  # type: ignore[misc]
    if started is None:
        if not await redis.exists(keys.tenant_config(slug)):
            raise TenantError(f"no tenant {slug!r}")
        stamp = now_iso()
        await redis.hsetnx(  # type: ignore[misc]
            keys.TENANTS_DELETING, slug, f"{_DEACTIVATING}{stamp}" if learners else stamp
        )
        started = await redis.hget(keys.TENANTS_DELETING, slug)  # type: ignore[misc]
    text = started.decode() if isinstance(started, bytes) else str(started)
    return text.removeprefix(_DEACTIVATING)


_DEACTIVATING = "deactivating-learners "


async def cut_credentials(redis: Redis, slug: str, *, with_config: bool) -> int:
    """Step 2: the tenant's tokens and admin keys (and, `with_config`, its
    record and registry entry) go, and every API process confirms it dropped
    its cached copy, as for a revocation. The number of keys removed."""
    names = [keys.tokens(slug), keys.tokens_used(slug)]
    names += [keys.admin_keys(slug), keys.admin_keys_used(slug)]
    if with_config:
        names.append(keys.tenant_config(slug))
    removed = int(await redis.delete(*names))  # one slot: one step
    if with_config:
        await redis.srem(keys.TENANTS, slug)  # type: ignore[misc]
    await TenantStore(redis)._publish(f"tenant {slug}")
    return removed


async def begin_purge(redis: Redis, slug: str) -> int:
    """Steps 1 and 2 (module docstring); the number of keys removed.
    Raises TenantError when there is no such tenant and no purge of it to
    finish. Repeating it is harmless."""
    await mark_deleting(redis, slug)
    return await cut_credentials(redis, slug, with_config=True)


async def scan_keys(redis: Redis, match: str, count: int = PURGE_BATCH) -> AsyncIterator[bytes]:
    """SCAN with MATCH; on a cluster only the node that holds `match`'s hash tag."""
    if isinstance(redis, RedisCluster):
        node = redis.get_node_from_key(match)
        async for key in redis.scan_iter(match=match, count=count, target_nodes=node):
            yield key
        return
    async for key in redis.scan_iter(match=match, count=count):
        yield key


async def purge_keys(
    redis: Redis,
    slug: str,
    *,
    progress: Progress | None = None,
    deadline: float | None = None,
    lock_wait_s: float = 0.0,
    batch_size: int = PURGE_BATCH,
) -> PurgeProgress:
    """Step 3 and 4: unlink every key of the tenant in batches, then drop the mark.

    `deadline` (monotonic) stops early with state "deleting" (run it again to
    go on); `lock_wait_s` is how long to wait for running sync jobs.
    `progress(removed, running_jobs)` is called after each batch.
    """
    started = await redis.hget(keys.TENANTS_DELETING, slug)  # type: ignore[misc]
    result = PurgeProgress(
        tenant=slug,
        state="deleting",
        started_at=started.decode().removeprefix(_DEACTIVATING) if started else "",
    )
    lock_prefix = keys.user_lock(slug, "").encode()
    match = keys.prefix(slug) + "*"  # braces are not special in a SCAN pattern
    wait_until = time.monotonic() + lock_wait_s
    while True:
        locks: list[bytes] = []
        batch: list[bytes] = []
        async for key in scan_keys(redis, match, batch_size):
            if key.startswith(lock_prefix):
                locks.append(key)  # its job releases it; we scan again after
                continue
            batch.append(key)
            if len(batch) >= batch_size:
                await _unlink(redis, batch)
                result.removed += len(batch)
                batch = []
                if progress:
                    progress(result.removed, len(locks))
                if deadline is not None and time.monotonic() > deadline:
                    return result
        if batch:
            await _unlink(redis, batch)
            result.removed += len(batch)
        result.scanned_passes += 1
        result.running_jobs = len(locks)
        if progress:
            progress(result.removed, len(locks))
        if not locks:
            break
        # A running job may write once more before it lets go: scan again after.
        if time.monotonic() >= wait_until or (deadline is not None and time.monotonic() > deadline):
            return result
        await _wait_released(redis, locks, wait_until, deadline)
    await redis.hdel(keys.TENANTS_DELETING, slug)  # type: ignore[misc]
    result.state = "deleted"
    result.running_jobs = 0
    return result


async def _unlink(redis: Redis, batch: list[bytes]) -> int:
    return int(await redis.unlink(*batch))


async def _wait_released(
    redis: Redis, locks: list[bytes], until: float, deadline: float | None
) -> None:
    """Wait until the running jobs' user locks are released (or expire)."""
    import asyncio

    end = until if deadline is None else min(until, deadline)
    while time.monotonic() < end:
        if not await redis.exists(*locks):
            return
        await asyncio.sleep(0.2)


# -- one person -----------------------------------------------------------------

# Erase one user's traces from the tenant's keys in one step. KEYS: 1 the
# user's lock (must hold ARGV 3). ARGV: 1 tenant prefix, 2 user id, 3 lock token.
# Returns {keys deleted, space-separated users that waited on this one}.
ERASE_USER = """
local p, id = ARGV[1], ARGV[2]
if redis.call('GET', KEYS[1]) ~= ARGV[3] then return {-1, ''} end
local doc = p .. 'u:' .. id
local cur = redis.call('HMGET', doc, 'un', 'xid')
if cur[1] and cur[1] ~= '' and redis.call('HGET', p .. 'u:idx:un', cur[1]) == id then
  redis.call('HDEL', p .. 'u:idx:un', cur[1])
end
if cur[2] and cur[2] ~= '' then redis.call('SREM', p .. 'u:x:' .. cur[2], id) end
for _, g in ipairs(redis.call('SMEMBERS', p .. 'u:' .. id .. ':groups')) do
  redis.call('ZREM', p .. 'g:' .. g .. ':members', id)
end
local waited = redis.call('HGET', p .. 'sync:' .. id, 'waits_on')
if waited then redis.call('SREM', p .. 'conflict:' .. waited, id) end
local waiters = redis.call('SMEMBERS', p .. 'conflict:' .. id)
for _, w in ipairs(waiters) do redis.call('HDEL', p .. 'sync:' .. w, 'waits_on') end
for _, z in ipairs({'u:ids', 'state:pending', 'state:synced', 'state:failed', 'queued',
                    'u:gone', 'breaker:window', 'breaker:held'}) do
  redis.call('ZREM', p .. z, id)
end
redis.call('HDEL', p .. 'breaker:heldv', id)
local n = redis.call('DEL', doc, p .. 'u:' .. id .. ':groups', p .. 'sync:' .. id,
  p .. 'events:' .. id, p .. 'conflict:' .. id)
return {n, table.concat(waiters, ' ')}
"""


class Erasure(msgspec.Struct, kw_only=True):
    """What an erasure removed; `learner_id` is the LMS learner left as it is."""

    tenant: str
    user_id: str
    keys_removed: int
    learner_id: int | None
    #: Users that waited for this one (a conflict): to be re-queued.
    released: tuple[str, ...] = ()


class UserBusy(TenantError):
    """The user's sync job kept running for the whole wait."""


async def find_user(redis: Redis, slug: str, who: str) -> str:
    """The id of the user `who` names: an id (live or with data left), a
    userName, or an email address. Raises TenantError when none or several."""
    if keys.is_resource_id(who):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.exists(
                keys.resource(slug, "u", who), keys.sync_state(slug, who), keys.events(slug, who)
            )
            pipe.zscore(keys.gone_users(slug), who)
            found, gone = await pipe.execute()
        if found or gone is not None:
            return who
    by_name = await redis.hget(keys.unique_index(slug, "u"), who.lower())  # type: ignore[misc]
    if by_name:
        return by_name.decode() if isinstance(by_name, bytes) else str(by_name)
    wanted = who.strip().lower()
    matches: list[str] = []
    start = 0
    while True:
        ids = await redis.zrange(keys.resource_ids(slug, "u"), start, start + PURGE_BATCH - 1)
        if not ids:
            break
        start += len(ids)
        async with redis.pipeline(transaction=False) as pipe:
            for raw_id in ids:
                pipe.hget(keys.resource(slug, "u", raw_id.decode()), "doc")
            docs = await pipe.execute()
        for raw_id, doc in zip(ids, docs, strict=True):
            if doc and wanted in _emails(doc):
                matches.append(raw_id.decode())
    if len(matches) > 1:
        raise TenantError(
            f"{len(matches)} users of {slug!r} have that address ({', '.join(matches)}); "
            "name one by id"
        )
    if not matches:
        raise TenantError(f"no such user in tenant {slug!r}")
    return matches[0]


_decode_doc = msgspec.json.Decoder(dict[str, Any]).decode


def _emails(raw: bytes) -> set[str]:
    try:
        doc = _decode_doc(raw)
    except msgspec.DecodeError:
        return set()
    found = {
        e["value"].strip().lower()
        for e in doc.get("emails") or []
        if isinstance(e, dict) and isinstance(e.get("value"), str)
    }
    return found


async def erase_user(redis: Redis, slug: str, user_id: str, *, wait_s: float = 10.0) -> Erasure:
    """Remove one user's shadow record, index entries, group memberships,
    provisioning log, sync and breaker state, in one step under the user's
    lock (so no sync job of the user runs meanwhile); its id is also taken
    out of the last reconcile report and the recent webhook deliveries. The
    LMS learner is not touched."""
    import asyncio
    import secrets

    if not keys.is_resource_id(user_id):
        raise TenantError(f"no such user in tenant {slug!r}")
    token = secrets.token_hex(8)
    lock = keys.user_lock(slug, user_id)
    end = time.monotonic() + wait_s
    while not await redis.set(lock, token, nx=True, px=60_000):
        if time.monotonic() > end:
            raise UserBusy(f"user {user_id!r} is being synced; try again in a minute")
        await asyncio.sleep(0.2)
    try:
        learner = await redis.hget(keys.sync_state(slug, user_id), "learner_id")  # type: ignore[misc]
        script = redis.register_script(ERASE_USER)
        removed, waiters = await script(keys=[lock], args=[keys.prefix(slug), user_id, token])
    finally:
        await redis.delete(lock)
    await _scrub_reconcile_report(redis, slug, user_id)
    await _drop_webhook_deliveries(redis, slug, user_id)
    text = waiters.decode() if isinstance(waiters, bytes) else str(waiters)
    return Erasure(
        tenant=slug,
        user_id=user_id,
        keys_removed=int(removed),
        learner_id=int(learner) if learner else None,
        released=tuple(text.split()),
    )


async def _drop_webhook_deliveries(redis: Redis, slug: str, user_id: str) -> None:
    """Recent webhook deliveries (kept a week) name users: drop this one's."""
    ids = await redis.zrange(keys.webhook_deliveries(slug), 0, -1)
    if not ids:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for raw in ids:
            pipe.hget(keys.webhook_delivery(slug, raw.decode()), "body")
        bodies = await pipe.execute()
    needle = user_id.encode()
    gone = [raw for raw, body in zip(ids, bodies, strict=True) if body and needle in body]
    for start in range(0, len(gone), PURGE_BATCH):
        chunk = gone[start : start + PURGE_BATCH]
        await redis.unlink(*(keys.webhook_delivery(slug, raw.decode()) for raw in chunk))
        await redis.zrem(keys.webhook_deliveries(slug), *chunk)


async def _scrub_reconcile_report(redis: Redis, slug: str, user_id: str) -> None:
    """The last reconcile report lists drift by user id: drop this user's rows."""
    raw = await redis.get(keys.reconcile_last(slug))
    if not raw:
        return
    report = _decode_doc(raw)
    rows = report.get("drift")
    if isinstance(rows, list):
        kept = [r for r in rows if not (isinstance(r, dict) and r.get("user_id") == user_id)]
        if len(kept) != len(rows):
            report["drift"] = kept
            await redis.set(keys.reconcile_last(slug), msgspec.json.encode(report), keepttl=True)
