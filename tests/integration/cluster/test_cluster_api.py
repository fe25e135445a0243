"""The SCIM API (and the admin API) in-process with its shadow store on a
Redis Cluster and its queue on a plain Redis: what only a cluster can get
wrong. The API, groups and admin tests themselves run on a cluster too
(`also_on_cluster` in their modules). Below: the app refuses a cluster
without a queue of its own, and answers 503 (a SCIM error) when the
cluster is out of reach.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from core.connect import RedisUrlError
from core.settings import Settings
from tests.integration.cluster.servers import cluster_node_port
from tests.support.api import add_tenant


async def test_the_app_refuses_a_cluster_without_a_queue_redis(cluster_url: str) -> None:
    client = AsyncTestClient(app=create_app(Settings(redis_url=cluster_url)))
    refused = pytest.RaisesExc(RedisUrlError, match="set QUEUE_REDIS_URL")
    with pytest.RaisesGroup(refused, allow_unwrapped=True, flatten_subgroups=True):
        await client.__aenter__()


def test_processes_refuse_a_cluster_without_a_queue_redis(cluster_url: str) -> None:
    """`scim-bridge api` and `scim-bridge worker` exit at once, saying why."""
    env = {k: v for k, v in os.environ.items() if k not in ("QUEUE_REDIS_URL",)}
    env.update(REDIS_URL=cluster_url, PORT=str(cluster_node_port()))
    for command in ("api", "worker"):
        done = subprocess.run(
            [sys.executable, "-m", "cli", command],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
            cwd=Path(__file__).resolve().parents[3],
        )
        assert done.returncode != 0, command
        assert b"set QUEUE_REDIS_URL to a Redis of its own" in done.stderr, done.stderr[-2000:]


async def test_a_cluster_out_of_reach_is_a_503_scim_error(queue_url: str) -> None:
    port = cluster_node_port()  # nothing listens there
    settings = Settings(
        redis_url=f"redis+cluster://127.0.0.1:{port}/0?socket_connect_timeout=0.5",
        queue_redis_url=queue_url,
    )
    async with AsyncTestClient(app=create_app(settings)) as http:
        response = await http.get(
            "/scim/acme/v2/Users", headers={"Authorization": "Bearer scimb_x"}
        )
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert body["status"] == "503"
        ready = await http.get("/readyz")
        assert ready.status_code == 503


async def test_tokens_work_across_nodes(redis: Redis, cluster_url: str, queue_url: str) -> None:
    """Tenants spread over the nodes; each one's token opens its own users only."""
    tokens = {slug: await add_tenant(redis, slug) for slug in (f"org{i}" for i in range(8))}
    settings = Settings(
        redis_url=cluster_url, queue_redis_url=queue_url, public_url="https://bridge.test"
    )
    async with AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as http:
        for slug, token in tokens.items():
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
            created = await http.post(
                f"/scim/{slug}/v2/Users",
                json={
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": f"ada@{slug}.example",
                },
                headers=headers,
            )
            assert created.status_code == 201, created.text
        for slug, token in tokens.items():
            listed = await http.get(
                f"/scim/{slug}/v2/Users", headers={"Authorization": f"Bearer {token}"}
            )
            assert listed.status_code == 200, listed.text
            names = [r["userName"] for r in listed.json()["Resources"]]
            assert names == [f"ada@{slug}.example"]
