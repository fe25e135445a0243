"""Offboarding and erasure on a Redis Cluster: the tenant's keys share one
slot, so the purge scans one node; nothing of the tenant or the person is
left on any node."""

from __future__ import annotations

from arq.connections import ArqRedis
from redis.asyncio import Redis

from shadow import ResourceStore, Tenant, TenantStore, keys
from tests.support.keyscan import traces_of
from tests.support.worker_fixtures import scim_user
from worker.lifecycle import erase_person, offboard_tenant


async def test_erase_and_purge_leave_nothing_on_any_node(redis: Redis, queue: ArqRedis) -> None:
    tenants, resources = TenantStore(redis), ResourceStore(redis)
    for slug in ("acme", "other"):
        await tenants.create(
            Tenant(slug=slug, name=slug, lms_url="https://l.test", lms_api_key="k")
        )
        await tenants.issue_token(slug)
    for i in range(30):
        await resources.write("acme", "u", f"u{i}", "create", scim_user(f"p{i}@acme.test", f"G{i}"))
    await resources.write("other", "u", "o1", "create", scim_user("o1@other.test", "Olga"))

    erased = await erase_person(redis, queue, "acme", "u7")
    assert erased.keys_removed >= 2
    assert await traces_of(redis, "p7@acme.test", "G7") == []

    result = await offboard_tenant(redis, queue, "acme")
    assert result.state == "deleted"
    assert await traces_of(redis, "acme") == []
    assert await traces_of(queue, "acme") == []
    assert await resources.get("other", "u", "o1") is not None
    assert await redis.exists(keys.tenant_config("other"))
