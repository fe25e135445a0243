"""`redis+sentinel://` URLs: one primary, one Sentinel process watching it.

The shadow store, the change feed (pub/sub), the arq queue and the
persistence warning work through the primary the Sentinel names; and the
bridge's real processes run with `REDIS_URL=redis+sentinel://...` (the
queue sharing that Redis) through an Entra-shaped flow to the sandbox LMS.
Also here: the persistence warning on a cluster, and URL parsing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from arq.connections import create_pool

from cli.processes import warn_if_not_persistent
from core.connect import (
    RedisUrlError,
    check_queue_placement,
    close_sentinels,
    connect,
    connect_queue,
    parse,
    persistence,
    queue_settings,
)
from shadow import ResourceStore, Tenant, TenantStore
from tests.integration.cluster.servers import (
    RedisClusterServers,
    SentinelServer,
    missing_binaries,
    start_sentinel,
)
from tests.support.cluster import Cluster, ClusterOptions, entra_user, patch_ops
from tests.support.redis_server import RedisServer
from worker.queue import QUEUE_NAME, enqueue_sync, queue_depth

# arq closes its pools with redis-py 5's deprecated `close()`.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning:arq")

StartRedis = Callable[..., RedisServer]
StartSentinel = Callable[[int], SentinelServer]


def test_urls_parse_into_their_parts() -> None:
    cluster = parse("redis+cluster://:s3cret@10.0.0.1:7000,10.0.0.2:7001/0?socket_timeout=5")
    assert (cluster.kind, cluster.hosts) == ("cluster", (("10.0.0.1", 7000), ("10.0.0.2", 7001)))
    assert cluster.options == {"password": "s3cret", "socket_timeout": 5.0}
    sentinel = parse("redis+sentinel://s1:26379,s2/bridge/2?sentinel_password=x")
    assert (sentinel.kind, sentinel.service, sentinel.db) == ("sentinel", "bridge", 2)
    assert sentinel.hosts == (("s1", 26379), ("s2", 26379))
    assert sentinel.options == {"sentinel_password": "x"}
    assert parse("redis://127.0.0.1:6379/0").kind == "plain"
    assert parse("rediss+cluster://h:1").tls
    with pytest.raises(RedisUrlError, match="only database 0"):
        parse("redis+cluster://h:1/3")
    with pytest.raises(RedisUrlError, match="names its service"):
        parse("redis+sentinel://h:1")
    with pytest.raises(RedisUrlError, match="QUEUE_REDIS_URL must be"):
        check_queue_placement("redis://a/0", "redis+cluster://h:1")
    check_queue_placement("redis+cluster://h:1", "redis+sentinel://s/q/0")
    check_queue_placement("redis+sentinel://s/bridge/0", "")


async def test_shadow_store_credentials_and_queue_through_a_sentinel(
    plain_redis_factory: StartRedis, sentinel_factory: StartSentinel
) -> None:
    primary = plain_redis_factory()
    sentinel = sentinel_factory(primary.port)
    url = sentinel.url(db=3)
    redis = connect(url)
    reader = TenantStore(connect(url))
    try:
        store = ResourceStore(redis)
        written = await store.write("acme", "u", "u1", "create", {"userName": "a@x"})
        assert written.version == 1
        stored = await store.get("acme", "u", "u1")
        assert stored is not None
        assert stored.doc == {"userName": "a@x"}
        # It went to database 3 of the primary the Sentinel named.
        direct = connect(f"redis://127.0.0.1:{primary.port}/3")
        assert await direct.exists("{t:acme}:u:u1")
        await direct.aclose()

        tenants = TenantStore(redis)
        await tenants.create(Tenant(slug="acme", name="A", lms_url="u", lms_api_key="k"))
        issued = await tenants.issue_token("acme")
        assert await reader.authenticate("acme", issued.token) == issued.token_id
        await tenants.revoke_token("acme", issued.token_id)
        assert await reader.authenticate("acme", issued.token) is None

        queue = connect_queue(url)
        await enqueue_sync(queue, "acme", "u1", 1)
        assert await queue_depth(queue) == 1
        await queue.aclose()
        pool = await create_pool(queue_settings(url))
        assert await pool.zcard(QUEUE_NAME) == 1
        await pool.aclose()
        await close_sentinels(pool)  # arq leaves its Sentinel connections open
    finally:
        await reader._redis.aclose()
        await redis.aclose()


def test_persistence_is_read_from_the_sentinels_primary_and_every_cluster_node(
    plain_redis_factory: StartRedis,
    sentinel_factory: StartSentinel,
    redis_cluster: RedisClusterServers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    without_aof = plain_redis_factory(appendonly=False)
    sentinel = sentinel_factory(without_aof.port)
    [(node, aof, _)] = persistence(sentinel.url())
    assert (node, aof) == (f"bridge (127.0.0.1:{without_aof.port})", "no")
    with caplog.at_level(logging.WARNING, logger="scim_bridge"):
        warn_if_not_persistent(sentinel.url())
    assert "no AOF persistence" in caplog.text

    nodes = persistence(redis_cluster.url)
    assert sorted(int(n.rpartition(":")[2]) for n, _, _ in nodes) == sorted(redis_cluster.ports)
    assert {aof for _, aof, _ in nodes} == {"yes"}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scim_bridge"):
        warn_if_not_persistent(redis_cluster.url)
    assert "no AOF persistence" not in caplog.text


class ShadowBehindSentinel(Cluster):
    """The harness with REDIS_URL naming its redis-server through a Sentinel
    (the queue shares that Redis, as QUEUE_REDIS_URL is unset)."""

    def __init__(self, workdir: Path, options: ClusterOptions) -> None:
        super().__init__(workdir, options)
        self.sentinel: SentinelServer | None = None

    def _wait_redis(self) -> None:
        super()._wait_redis()
        if self.sentinel is None:
            self.sentinel = start_sentinel(self.workdir / "sentinel", self.redis_port)

    def _env(self, **extra: str) -> dict[str, str]:
        env = super()._env(**extra)
        if self.sentinel is not None:
            env["REDIS_URL"] = self.sentinel.url()
        return env

    async def stop(self) -> None:
        await super().stop()
        if self.sentinel is not None:
            self.sentinel.stop()


@pytest.fixture
async def behind_sentinel(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[ShadowBehindSentinel]:
    reason = missing_binaries()
    if reason:
        pytest.skip(f"Sentinel tests need redis-server: {reason}")
    failed_before = request.session.testsfailed
    bridge = ShadowBehindSentinel(tmp_path / "bridge", ClusterOptions(workers=1))
    try:
        await bridge.start()
        yield bridge
    finally:
        await bridge.stop()
        if request.session.testsfailed > failed_before:
            bridge.dump_logs()


@pytest.mark.e2e
async def test_the_bridge_runs_through_a_sentinel_url(
    behind_sentinel: ShadowBehindSentinel,
) -> None:
    bridge = behind_sentinel
    assert bridge.sentinel is not None
    assert "redis+sentinel://" in bridge.apis[0].env["REDIS_URL"]
    tenant = await bridge.add_tenant("acme", via_cli=True)
    ids = {}
    for i in range(5):
        created = await tenant.scim.post("/Users", entra_user(f"user{i}@acme.example"))
        assert created.status_code == 201, created.text
        ids[i] = created.json()["id"]

    async def learners_match(retitled: bool) -> bool:
        learners = {x["external_ref"]: x for x in await bridge.sandbox_learners(tenant.org)}
        assert set(learners) == set(ids.values()), learners
        if retitled:
            assert learners[ids[1]]["job_role"] == "Boss"
            assert learners[ids[2]]["status"] == "deactivated"
        status = await bridge.status("acme")
        assert (status["pending"], status["failed"]) == (0, 0), status
        return True

    async def creates_synced() -> bool:
        return await learners_match(False)

    async def changes_synced() -> bool:
        return await learners_match(True)

    # (mypy cannot solve wait_until's `T | Awaitable[T]` for a coroutine function)
    await bridge.wait_until(creates_synced, 60, message="the creates")  # type: ignore[arg-type]
    renamed = await tenant.scim.patch(f"/Users/{ids[1]}", patch_ops(("Replace", "title", "Boss")))
    assert renamed.status_code == 200, renamed.text
    assert (await tenant.scim.delete(f"/Users/{ids[2]}")).status_code == 204
    await bridge.wait_until(changes_synced, 60, message="the changes")  # type: ignore[arg-type]
