"""The shadow store on a three-node Redis Cluster.

The shadow store's tests (tests/integration/shadow/test_shadow_store.py) and
the worker's sync tests (basics, linking, ordering, faults, sweep) run on a
cluster too (`also_on_cluster`: shadow on the cluster, queue on a plain
Redis). The tests below check what only a cluster can get wrong:
a tenant's keys in one slot, tenants spread over the nodes, transactions
held to one slot, and scripts in pipelines after a node forgot its scripts.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, ResponseError

from core.connect import BridgeRedisCluster
from core.wire import HiredisPacking
from shadow import ResourceStore, SyncStore, Tenant, TenantStore, keys
from tests.integration.cluster.servers import RedisClusterServers


def _user(name: str) -> dict[str, object]:
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}


def _cluster(redis: Redis) -> BridgeRedisCluster:
    assert isinstance(redis, BridgeRedisCluster)
    return redis


async def test_the_client_is_a_cluster_client(
    redis: Redis, redis_cluster: RedisClusterServers
) -> None:
    cluster = _cluster(redis)
    await cluster.initialize()
    assert len(cluster.get_primaries()) == len(redis_cluster.ports)


async def test_every_node_packs_commands_with_hiredis(redis: Redis) -> None:
    """The nodes given and the nodes discovered (core.wire)."""
    cluster = _cluster(redis)
    await cluster.initialize()
    await redis.set("{t:acme}:wire", "Zoë")
    assert await redis.get("{t:acme}:wire") == "Zoë".encode()
    nodes = cluster.get_nodes()
    assert nodes
    assert all(issubclass(n.connection_class, HiredisPacking) for n in nodes)


async def test_a_tenant_lives_in_one_slot_and_tenants_spread_over_nodes(redis: Redis) -> None:
    cluster = _cluster(redis)
    store, sync = ResourceStore(redis), SyncStore(redis)
    tenants = [f"tenant-{i}" for i in range(30)]
    for slug in tenants:
        await TenantStore(redis).create(Tenant(slug=slug, name=slug, lms_url="u", lms_api_key="k"))
        await store.write(slug, "u", "u1", "create", {**_user("a@x"), "externalId": "X"})
        await store.write(slug, "g", "g1", "create", {"displayName": "Team"})
        await store.change_members(slug, "g1", add=["u1"])
        token = await sync.lock(slug, "u1", 5)
        assert token is not None
        await sync.finish(slug, "u1", 1, "synced", learner_id=7, applied={"email": "a@x"})
        await sync.log_event(slug, "u1", "synced")
    names = [k.decode() for k in await cluster.keys("*")]
    slots_of: dict[str, set[int]] = {}
    for name in names:
        if name == keys.TENANTS:
            continue
        tenant = name[len("{t:") : name.index("}")]
        slots_of.setdefault(tenant, set()).add(cluster.keyslot(name))
    assert set(slots_of) == set(tenants)
    assert all(len(slots) == 1 for slots in slots_of.values()), slots_of
    nodes = set()
    for slug in tenants:
        node = cluster.get_node_from_key(keys.prefix(slug))
        assert node is not None
        nodes.add(node.name)
    assert len(nodes) > 1, "30 tenants should not all hash to one node"


async def test_a_transaction_runs_atomically_in_one_slot(redis: Redis) -> None:
    key = keys.prefix("acme") + "tx"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hincrbyfloat(key, "a", 1.5)
        pipe.hset(key, mapping={"b": "1"})
        pipe.hmget(key, ["a", "b", "missing"])
        pipe.zadd(key + ":z", {"m": 3})
        pipe.zrange(key + ":z", 0, -1, withscores=True)
        pipe.expire(key, 60, nx=True)
        results = await pipe.execute()
    assert results == [1.5, 1, [b"1.5", b"1", None], 1, [(b"m", 3.0)], True]


async def test_a_transaction_across_slots_is_refused_before_anything_is_written(
    redis: Redis,
) -> None:
    pipe = redis.pipeline(transaction=True)
    pipe.set(keys.prefix("acme") + "x", 1)
    pipe.set(keys.prefix("globex") + "x", 1)
    with pytest.raises(RedisClusterException, match="one hash slot"):
        await pipe.execute()
    assert await redis.get(keys.prefix("acme") + "x") is None


async def test_a_failing_command_in_a_transaction_raises(redis: Redis) -> None:
    key = keys.prefix("acme") + "s"
    await redis.set(key, "text")
    pipe = redis.pipeline(transaction=True)
    pipe.hset(key, "f", "v")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await pipe.execute()


async def test_group_changes_requeue_through_a_pipeline_after_the_nodes_forgot_their_scripts(
    redis: Redis,
) -> None:
    """requeue_changed_groups calls a registered script inside a pipeline:
    sent as EVAL, it runs even on a node whose script cache was flushed."""
    store, sync = ResourceStore(redis), SyncStore(redis)
    tenants = [f"t{i}" for i in range(6)]
    for slug in tenants:
        for uid in ("u1", "u2"):
            await store.write(slug, "u", uid, "create", _user(f"{uid}@x"))
            await sync.clear_queued(slug, uid)  # as if its job had started
    await _cluster(redis).execute_command("SCRIPT FLUSH", target_nodes=RedisCluster.PRIMARIES)
    for slug in tenants:
        due = await store.requeue_changed_groups(slug, ["u1", "u2"], interval_ms=10)
        assert [uid for uid, _ in due] == ["u1", "u2"]
        stored = await store.get(slug, "u", "u1")
        assert stored is not None
        assert stored.version == 2  # bumped: its groups changed
    # Scripts called directly (EVALSHA, NOSCRIPT, then SCRIPT LOAD on every
    # primary) and transactions run again after a flush too.
    await _cluster(redis).execute_command("SCRIPT FLUSH", target_nodes=RedisCluster.PRIMARIES)
    for slug in tenants:
        out = await store.write(slug, "u", "u3", "create", _user("u3@x"))
        assert out.version == 1
        state = await sync.read(slug, "u3")
        assert (state.exists, state.version, state.state) == (True, 1, "pending")


async def test_credentials_are_never_cached_on_a_cluster(redis: Redis) -> None:
    """PUBLISH on a cluster counts one node's subscribers, so a change could
    not be confirmed by every process: every check reads the tenant's slot."""
    store = TenantStore(redis, cache_ttl_s=60)
    await asyncio.wait_for(store.watch_changes(), 1)  # returns at once: nothing to watch
    await store.create(Tenant(slug="acme", name="A", lms_url="u", lms_api_key="k"))
    issued = await store.issue_token("acme")
    assert await store.authenticate("acme", issued.token) == issued.token_id
    await store.revoke_token("acme", issued.token_id)  # no publish, no wait
    assert await store.authenticate("acme", issued.token) is None
