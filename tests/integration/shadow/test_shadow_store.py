"""The shadow store against a real Redis: atomic writes, indexes, tokens."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from core.connect import connect
from shadow import (
    InlineJob,
    ResourceStore,
    StoreConflict,
    SyncStore,
    Tenant,
    TenantError,
    TenantStore,
    keys,
)

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster


def _user(name: str, **extra: object) -> dict[str, object]:
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, **extra}


async def test_create_writes_document_indexes_and_pending_mark_together(redis: Redis) -> None:
    store = ResourceStore(redis)
    out = await store.write("acme", "u", "u1", "create", _user("Ada@Example.com", externalId="X1"))
    assert out.version == 1
    assert out.enqueue_due_ms is not None
    assert await store.ids_by_user_name("acme", "ada@example.com") == ["u1"]
    assert await store.ids_by_external_id("acme", "u", "X1") == ["u1"]
    assert await redis.zscore(keys.state_set("acme", "pending"), "u1") is not None
    assert await redis.zscore(keys.queued("acme"), "u1") == out.enqueue_due_ms
    assert (await SyncStore(redis).counts("acme")).pending == 1


async def test_every_key_of_a_tenant_carries_its_hash_tag(redis: Redis) -> None:
    store = ResourceStore(redis)
    await store.write("acme", "u", "u1", "create", _user("a@x", externalId="E"))
    await store.write("acme", "g", "g1", "create", {"displayName": "Team"})
    await store.change_members("acme", "g1", add=["u1"])
    await TenantStore(redis).create(Tenant(slug="acme", name="A", lms_url="u", lms_api_key="k"))
    names = [k.decode() for k in await redis.keys("*")]
    assert names
    for name in names:
        assert name.startswith("{t:acme}:") or name == keys.TENANTS, name


async def test_user_name_is_unique_regardless_of_case(redis: Redis) -> None:
    store = ResourceStore(redis)
    await store.write("acme", "u", "u1", "create", _user("ada@example.com"))
    with pytest.raises(StoreConflict) as caught:
        await store.write("acme", "u", "u2", "create", _user("ADA@example.com"))
    assert caught.value.reason == "uniqueness"
    assert await store.get("acme", "u", "u2") is None
    assert await store.count("acme", "u") == 1


async def test_same_user_name_in_two_tenants_is_fine(redis: Redis) -> None:
    store = ResourceStore(redis)
    await store.write("acme", "u", "u1", "create", _user("ada@example.com"))
    await store.write("globex", "u", "u2", "create", _user("ada@example.com"))
    assert await store.ids_by_user_name("globex", "ada@example.com") == ["u2"]
    assert await store.get("globex", "u", "u1") is None


async def test_stale_expected_version_is_refused(redis: Redis) -> None:
    store = ResourceStore(redis)
    await store.write("acme", "u", "u1", "create", _user("a@x"))
    await store.write("acme", "u", "u1", "update", _user("b@x"), expected_version=1)
    with pytest.raises(StoreConflict) as caught:
        await store.write("acme", "u", "u1", "update", _user("c@x"), expected_version=1)
    assert caught.value.reason == "version_mismatch"
    stored = await store.get("acme", "u", "u1")
    assert stored is not None
    assert stored.doc["userName"] == "b@x"
    assert stored.version == 2


async def test_rename_moves_the_index_entry(redis: Redis) -> None:
    store = ResourceStore(redis)
    await store.write("acme", "u", "u1", "create", _user("a@x"))
    await store.write("acme", "u", "u1", "update", _user("b@x"))
    assert await store.ids_by_user_name("acme", "a@x") == []
    await store.write("acme", "u", "u2", "create", _user("a@x"))


async def test_delete_hides_user_but_keeps_it_for_the_worker(redis: Redis) -> None:
    store = ResourceStore(redis)
    await store.write("acme", "u", "u1", "create", _user("a@x"))
    sync = SyncStore(redis)
    await sync.clear_queued("acme", "u1")
    out = await store.write("acme", "u", "u1", "delete", None)
    assert out.enqueue_due_ms is not None
    assert await store.get("acme", "u", "u1") is None
    assert await store.ids_by_user_name("acme", "a@x") == []
    assert await store.count("acme", "u") == 0
    pending = await sync.read("acme", "u1")
    assert pending.deleted
    assert pending.doc is not None
    assert pending.doc["userName"] == "a@x"
    finish = await sync.finish("acme", "u1", out.version, "synced")
    assert finish.done
    assert not await redis.exists(keys.resource("acme", "u", "u1"))


async def test_finish_refuses_to_mark_an_older_version_synced(redis: Redis) -> None:
    store = ResourceStore(redis)
    sync = SyncStore(redis)
    await store.write("acme", "u", "u1", "create", _user("a@x"))
    await store.write("acme", "u", "u1", "update", _user("b@x"))
    result = await sync.finish("acme", "u1", 1, "synced", learner_id=7)
    assert not result.done
    assert (await sync.counts("acme")).pending == 1
    assert (await sync.read("acme", "u1")).learner_id == 7
    assert (await sync.finish("acme", "u1", 2, "synced")).done
    counts = await sync.counts("acme")
    assert (counts.pending, counts.synced) == (0, 1)


async def test_queue_slots_follow_the_tenant_fair_share_clock(redis: Redis) -> None:
    store = ResourceStore(redis)
    dues: list[int] = []
    for i in range(5):
        out = await store.write("big", "u", f"u{i}", "create", _user(f"{i}@x"), interval_ms=50)
        assert out.enqueue_due_ms is not None
        dues.append(out.enqueue_due_ms)
    assert all(b - a >= 50 for a, b in itertools.pairwise(dues))
    other = await store.write("small", "u", "v1", "create", _user("v@x"), interval_ms=50)
    assert other.enqueue_due_ms is not None
    assert other.enqueue_due_ms < dues[-1]
    # A second change while queued needs no new job.
    again = await store.write("big", "u", "u0", "update", _user("0b@x"), interval_ms=50)
    assert again.enqueue_due_ms is None


async def test_group_members_must_be_live_users_of_the_tenant(redis: Redis) -> None:
    store = ResourceStore(redis)
    await store.write("acme", "u", "u1", "create", _user("a@x"))
    await store.write("globex", "u", "x1", "create", _user("b@x"))
    await store.write("acme", "g", "g1", "create", {"displayName": "Team"})
    # Another tenant's user is left out, never stored; the rest applies.
    outcome = await store.change_members("acme", "g1", add=["u1", "x1"])
    assert (outcome.changed, outcome.skipped) == (["u1"], ["x1"])
    assert await store.member_ids("acme", "g1") == ["u1"]
    assert (await store.change_members("acme", "g1", add=["u1"])).changed == []
    assert await store.group_ids_of("acme", "u1") == ["g1"]
    await store.write("acme", "u", "u1", "delete", None)
    assert await store.member_ids("acme", "g1") == []


async def test_tokens_hash_only_rotate_and_revoke(redis: Redis) -> None:
    tenants = TenantStore(redis)
    await tenants.create(Tenant(slug="acme", name="Acme", lms_url="http://x", lms_api_key="k"))
    first = await tenants.issue_token("acme")
    second = await tenants.issue_token("acme")
    assert len(first.token) > 50
    stored = await redis.hgetall(keys.tokens("acme"))
    assert all(first.token.encode() not in v for v in stored.values())
    assert await tenants.authenticate("acme", first.token) == first.token_id
    assert await tenants.authenticate("acme", second.token) == second.token_id
    assert await tenants.authenticate("acme", first.token + "x") is None
    assert await tenants.authenticate("other", first.token) is None
    assert await tenants.revoke_token("acme", first.token_id)
    assert await tenants.authenticate("acme", first.token) is None
    assert await tenants.authenticate("acme", second.token) == second.token_id
    listed = await tenants.list_tokens("acme")
    assert [t.token_id for t in listed] == [second.token_id]
    assert listed[0].last_used_at is not None


async def test_tenant_slug_rules_and_duplicates(redis: Redis) -> None:
    tenants = TenantStore(redis)
    with pytest.raises(TenantError):
        await tenants.create(Tenant(slug="Bad Slug", name="x", lms_url="u", lms_api_key="k"))
    await tenants.create(Tenant(slug="acme", name="x", lms_url="u", lms_api_key="k"))
    with pytest.raises(TenantError):
        await tenants.create(Tenant(slug="acme", name="y", lms_url="u", lms_api_key="k"))


@contextlib.asynccontextmanager
async def watching(*stores: TenantStore) -> AsyncIterator[None]:
    """Run the stores' change feeds, as the API's lifespan does."""
    watchers = [asyncio.create_task(s.watch_changes()) for s in stores]
    try:
        async with asyncio.timeout(5):
            for store in stores:
                if store.caches:  # none does on a cluster
                    await store.listening.wait()
        yield
    finally:
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)


@pytest.mark.plain_redis_only  # nothing caches credentials on a cluster (test_cluster_shadow.py)
async def test_a_revocation_or_disable_elsewhere_ends_cached_credentials_at_once(
    redis: Redis, redis_url: str
) -> None:
    """Two API processes caching credentials: a revocation or a disabled
    tenant written by one is refused by the other as soon as it returns."""
    other_redis = connect(redis_url)
    api_a = TenantStore(redis, cache_ttl_s=60)
    api_b = TenantStore(other_redis, cache_ttl_s=60)
    try:
        async with watching(api_a, api_b):
            await api_a.create(Tenant(slug="acme", name="A", lms_url="u", lms_api_key="k"))
            for _ in range(30):
                issued = await api_a.issue_token("acme")
                tenant, token_id = await api_b.credentials("acme", issued.token)
                assert tenant is not None
                assert token_id == issued.token_id
                assert await api_b.authenticate("acme", issued.token) == issued.token_id
                await api_a.revoke_token("acme", issued.token_id)
                assert await api_b.credentials("acme", issued.token) == (tenant, None)

            second = await api_a.issue_token("acme")
            assert await api_b.authenticate("acme", second.token) == second.token_id
            tenant.enabled = False
            await api_a.save(tenant)
            seen, token_id = await api_b.credentials("acme", second.token)
            assert seen is not None
            assert not seen.enabled
    finally:
        await other_redis.aclose()


@pytest.mark.plain_redis_only  # nothing caches credentials on a cluster (test_cluster_shadow.py)
async def test_credentials_come_from_the_cache_only_while_subscribed(redis: Redis) -> None:
    store = TenantStore(redis, cache_ttl_s=60)
    await store.create(Tenant(slug="acme", name="A", lms_url="u", lms_api_key="k"))
    issued = await store.issue_token("acme")
    # Not subscribed: every check reads Redis.
    assert await store.authenticate("acme", issued.token) == issued.token_id
    await redis.hdel(keys.tokens("acme"), issued.token_id)  # type: ignore[misc]
    assert await store.authenticate("acme", issued.token) is None
    # Subscribed: a second check is served from memory (proved by removing the
    # record behind the cache's back, which no real revocation does).
    second = await store.issue_token("acme")
    async with watching(store):
        assert await store.authenticate("acme", second.token) == second.token_id
        await redis.hdel(keys.tokens("acme"), second.token_id)  # type: ignore[misc]
        assert await store.authenticate("acme", second.token) == second.token_id


@pytest.mark.plain_redis_only  # nothing caches credentials on a cluster (test_cluster_shadow.py)
async def test_a_read_overtaken_by_an_eviction_is_not_cached(redis: Redis) -> None:
    store = TenantStore(redis, cache_ttl_s=60)
    await store.create(Tenant(slug="acme", name="A", lms_url="u", lms_api_key="k"))
    issued = await store.issue_token("acme")
    async with watching(store):
        reading = asyncio.create_task(store.credentials("acme", issued.token))
        await asyncio.sleep(0)  # the read is on the wire
        store._evict(f"token acme {issued.token_id}")  # a revocation's message lands first
        assert (await reading)[1] == issued.token_id
        await redis.hdel(keys.tokens("acme"), issued.token_id)  # type: ignore[misc]
        assert await store.authenticate("acme", issued.token) is None  # not from a stale copy


@pytest.mark.plain_redis_only  # nothing caches credentials on a cluster (test_cluster_shadow.py)
async def test_a_change_returns_once_every_subscriber_confirmed(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The revoking side waits for each API process's acknowledgement; one
    that never answers holds it up only `ack_wait_s`, with a warning."""
    store = TenantStore(redis, ack_wait_s=0.5)
    await store.create(Tenant(slug="acme", name="A", lms_url="u", lms_api_key="k"))
    slow = redis.pubsub()
    await slow.subscribe(store.changes_channel)
    await slow.get_message(timeout=1)  # the subscribe confirmation

    async def acknowledge_late() -> None:
        message = None
        while message is None:
            message = await slow.get_message(ignore_subscribe_messages=True, timeout=1)
        await asyncio.sleep(0.2)
        await redis.rpush(keys.change_acks(message["data"].decode().split(" ")[0]), 1)  # type: ignore[misc]

    try:
        issued = await store.issue_token("acme")
        acking = asyncio.create_task(acknowledge_late())
        started = time.monotonic()
        await store.revoke_token("acme", issued.token_id)
        assert 0.2 <= time.monotonic() - started < 0.5
        await acking
        assert "did not confirm" not in caplog.text

        silent = await store.issue_token("acme")
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="scim_bridge"):
            await store.revoke_token("acme", silent.token_id)
        assert time.monotonic() - started >= 0.5
        assert "1 of 1 API processes did not confirm" in caplog.text
    finally:
        await slow.aclose()  # type: ignore[no-untyped-call]


@pytest.mark.plain_redis_only  # nothing caches credentials on a cluster (test_cluster_shadow.py)
async def test_a_deployment_on_another_database_is_not_waited_for(
    redis: Redis, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Pub/sub channels span a Redis server's databases: the API processes of
    a deployment on database 1 must not hold up (or be counted by) a change
    made on database 0."""
    other_db = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1")
    neighbour = TenantStore(other_db, cache_ttl_s=60)
    store = TenantStore(redis, ack_wait_s=2.0)
    assert store.changes_channel != neighbour.changes_channel
    try:
        await store.create(Tenant(slug="acme", name="A", lms_url="u", lms_api_key="k"))
        issued = await store.issue_token("acme")
        async with watching(neighbour):
            started = time.monotonic()
            with caplog.at_level(logging.WARNING, logger="scim_bridge"):
                await store.revoke_token("acme", issued.token_id)
            assert time.monotonic() - started < 1.0
        assert "did not confirm" not in caplog.text
    finally:
        await other_db.aclose()


async def test_an_expired_token_is_refused_from_that_instant_even_when_cached(
    redis: Redis,
) -> None:
    now = [1_800_000_000.0]  # the store's wall clock, moved by the test
    store = TenantStore(redis, cache_ttl_s=60, clock=lambda: now[0])
    await store.create(Tenant(slug="acme", name="A", lms_url="u", lms_api_key="k"))
    lasting = await store.issue_token("acme")
    brief = await store.issue_token("acme", expires_in_s=30)
    assert brief.expires_at == "2027-01-15T08:00:30.000Z"
    assert lasting.expires_at is None
    async with watching(store):
        assert await store.authenticate("acme", brief.token) == brief.token_id  # now cached
        [listed] = [t for t in await store.list_tokens("acme") if t.token_id == brief.token_id]
        assert listed.expires_at == brief.expires_at
        now[0] += 29.999
        assert await store.authenticate("acme", brief.token) == brief.token_id  # a moment before
        now[0] = 1_800_000_030.0
        assert await store.authenticate("acme", brief.token) is None
        assert await store.authenticate("acme", lasting.token) == lasting.token_id


async def test_credentials_of_an_unknown_tenant_or_malformed_token(redis: Redis) -> None:
    store = TenantStore(redis)
    await store.create(Tenant(slug="acme", name="A", lms_url="u", lms_api_key="k"))
    issued = await store.issue_token("acme")
    assert await store.credentials("other", issued.token) == (None, None)
    # A malformed token or slug is refused before any lookup.
    assert await store.credentials("acme", "not-a-token") == (None, None)
    assert await store.credentials("Acme\n", issued.token) == (None, None)
    assert (await store.credentials("acme", issued.token + "x"))[1] is None


async def test_a_stale_recent_copy_can_never_be_written_back(redis: Redis) -> None:
    """Two API processes: A's remembered copy goes stale when B writes; A's
    read-modify-write with it is refused, and a fresh read sees B's change."""
    api_a, api_b = ResourceStore(redis), ResourceStore(redis)
    await api_a.write("acme", "u", "u1", "create", _user("a@x", title="one"))
    await api_b.write("acme", "u", "u1", "update", _user("a@x", title="two"))
    stale = await api_a.get("acme", "u", "u1", recent=True)
    assert stale is not None
    assert stale.version == 1
    with pytest.raises(StoreConflict) as caught:
        await api_a.write(
            "acme", "u", "u1", "update", _user("a@x", title="three"), expected_version=1
        )
    assert caught.value.reason == "version_mismatch"
    fresh = await api_a.get("acme", "u", "u1", recent=True)
    assert fresh is not None
    assert (fresh.version, fresh.doc["title"]) == (2, "two")


# The inline arq job needs the queue on the shadow's Redis, which a cluster never is.
@pytest.mark.plain_redis_only
async def test_a_tenant_without_backlog_starts_at_the_head_of_an_overdue_queue(
    redis: Redis,
) -> None:
    """Start-time fair queueing: another tenant's overdue backlog does not sort
    ahead of a newcomer's first change."""
    store = ResourceStore(redis)
    now_ms = int(time.time() * 1000)
    await redis.zadd("queue", {"sync:big:u0:1": now_ms - 10_000})  # big is 10 s behind
    job = InlineJob(
        payload=b"job",
        queue_key="queue",
        key_prefix="arq:job:",
        id_prefix="sync:small:v1:",
        expires_extra_ms=60_000,
    )
    out = await store.write("small", "u", "v1", "create", _user("v@x"), interval_ms=50, job=job)
    assert out.enqueued
    assert out.enqueue_due_ms is not None
    assert out.enqueue_due_ms <= now_ms - 10_000
    # The job really sits in the queue at that time, level with or ahead of
    # the overdue backlog's head.
    small_score = await redis.zscore("queue", f"sync:small:v1:{out.enqueue_due_ms}")
    assert small_score == out.enqueue_due_ms
    assert small_score <= await redis.zscore("queue", "sync:big:u0:1")
