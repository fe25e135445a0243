"""Offboarding a large tenant: how long the purge takes, and what another
tenant's Redis latency does meanwhile.

Starts its own redis-server, writes `--users` users of tenant `big` (and
1,000 of `small`) straight through the shadow store's write script in
pipelines (shadow record, indexes, pending mark, sync state, provisioning
log and the arq job, as a SCIM create leaves them), then runs the real
`scim-bridge tenant delete big --purge --yes --json` in its own process.
A probe on its own connection sends a GET of `small`'s tenant record (and a
PING) every 2 ms: first for `--baseline-s` seconds before the purge (the
baseline), then for the whole purge. Prints the purge's time, keys
removed, and the probe's p50/p99 in both phases, then one JSON line; it
never asserts.

    .venv/bin/python -m bench.purge                 # 100,000 users
    .venv/bin/python -m bench.purge --users 10000   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from arq.jobs import serialize_job
from redis.asyncio import Redis

from bench.harness import percentile
from shadow import Tenant, TenantStore, keys, now_iso, scripts
from tests.support.redis_server import start_redis
from worker.queue import QUEUE_NAME, SYNC_USER, sync_job_id

ROOT = Path(__file__).resolve().parents[1]
_BATCH = 500


def _doc(tenant: str, i: int) -> bytes:
    email = f"user{i:06d}@{tenant}.example.com"
    return json.dumps(
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": email,
            "externalId": f"ext-{i}",
            "name": {"givenName": f"Given{i}", "familyName": f"Family{i}"},
            "emails": [{"value": email, "type": "work", "primary": True}],
            "title": "Engineer",
            "active": True,
        },
        separators=(",", ":"),
    ).encode()


async def seed(redis: Redis, tenant: str, users: int) -> None:
    """`users` users written as the API's create writes them, 500 per round trip."""
    await TenantStore(redis).create(
        Tenant(slug=tenant, name=tenant, lms_url="https://lms.test", lms_api_key="k")
    )
    put = redis.register_script(scripts.PUT_RESOURCE)
    prefix = keys.prefix(tenant)
    for start in range(0, users, _BATCH):
        now_ms, stamp = int(time.time() * 1000), now_iso()
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(start, min(users, start + _BATCH)):
                rid = f"{i:08d}-0000-4000-8000-{tenant[:4]:0>12}"
                await put(
                    keys=[
                        keys.resource(tenant, "u", rid),
                        keys.resource_ids(tenant, "u"),
                        keys.sequence(tenant),
                        keys.unique_index(tenant, "u"),
                        keys.state_set(tenant, "pending"),
                        keys.state_set(tenant, "synced"),
                        keys.state_set(tenant, "failed"),
                        keys.sync_state(tenant, rid),
                        keys.queued(tenant),
                        keys.vclock(tenant),
                        keys.user_groups(tenant, rid),
                    ],
                    args=[
                        rid,
                        "create",
                        "",
                        _doc(tenant, i),
                        f"user{i:06d}@{tenant}.example.com",
                        f"ext-{i}",
                        "",
                        stamp,
                        now_ms,
                        1,
                        "1",
                        prefix,
                        "u",
                        serialize_job(SYNC_USER, (tenant, rid), {}, None, now_ms),
                        QUEUE_NAME,
                        "arq:job:",
                        sync_job_id(tenant, rid, 0)[:-1],
                        86_400_000,
                    ],
                    client=pipe,
                )
            await pipe.execute()


async def probe(redis: Redis, key: str, seconds: float | None, stop: asyncio.Event) -> list[float]:
    """Seconds per GET and PING, one of each every 2 ms, until `seconds` or `stop`."""
    samples: list[float] = []
    end = time.monotonic() + seconds if seconds else float("inf")
    while time.monotonic() < end and not stop.is_set():
        began = time.perf_counter()
        await redis.get(key)
        samples.append(time.perf_counter() - began)
        began = time.perf_counter()
        await redis.ping()
        samples.append(time.perf_counter() - began)
        await asyncio.sleep(0.002)
    return samples


def _ms(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50": round(percentile(samples, 50) * 1000, 3),
        "p99": round(percentile(samples, 99) * 1000, 3),
        "max": round(max(samples) * 1000, 3),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-purge-"))
    server = start_redis(workdir)
    url = f"redis://127.0.0.1:{server.port}/0"
    redis = Redis.from_url(url)
    try:
        began = time.perf_counter()
        await seed(redis, "big", args.users)
        await seed(redis, "small", 1000)
        seeded_s = time.perf_counter() - began
        total_keys = int(await redis.dbsize())
        print(f"seeded {args.users:,} + 1,000 users ({total_keys:,} keys) in {seeded_s:.1f}s")
        target = keys.tenant_config("small")  # a small string of the other tenant
        # Commands of 1 ms or more on the server itself, to tell a Redis
        # stall from this 2-core machine's scheduling.
        await redis.config_set("slowlog-log-slower-than", 1000)
        await redis.config_set("slowlog-max-len", 100_000)
        await redis.slowlog_reset()
        prober = Redis.from_url(url)
        stop = asyncio.Event()
        baseline = await probe(prober, target, args.baseline_s, stop)
        env = {**os.environ, "REDIS_URL": url, "PYTHONDONTWRITEBYTECODE": "1"}
        during_task = asyncio.create_task(probe(prober, target, None, stop))
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli.main",
            "tenant",
            "delete",
            "big",
            "--purge",
            "--yes",
            "--json",
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        out, _ = await proc.communicate()
        purge_s = time.perf_counter() - started
        stop.set()
        during = await during_task
        await prober.aclose()
        result = json.loads(out)
        left = len([k async for k in redis.scan_iter(match=keys.prefix("big") + "*", count=1000)])
        jobs_left = len([k async for k in redis.scan_iter(match="arq:job:sync:big:*", count=1000)])
        small_users = int(await redis.zcard(keys.resource_ids("small", "u")))
        slow = [
            (int(e["duration"]), e["command"].split()[0].decode())
            for e in await redis.slowlog_get(100_000)
        ]
    finally:
        await redis.aclose()
        server.stop()
    return {
        "users": args.users,
        "keys_before": total_keys,
        "seed_s": round(seeded_s, 1),
        "purge_s": round(purge_s, 2),
        "state": result.get("state"),
        "removed": result.get("removed"),
        "keys_left": left,
        "jobs_left": jobs_left,
        "small_users_after": small_users,
        "baseline_ms": _ms(baseline),
        "during_ms": _ms(during),
        "server_slow_commands": len(slow),
        "server_slowest_ms": round(max((d for d, _ in slow), default=0) / 1000, 2),
        "server_slowest_command": max(slow, default=(0, ""))[1],
        "server_slow_by_command": {c: sum(1 for _, n in slow if n == c) for _, c in slow},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--baseline-s", type=float, default=5.0)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    base, during = figures["baseline_ms"], figures["during_ms"]
    print(
        f"purged {figures['users']:,} users: {figures['removed']:,} keys in "
        f"{figures['purge_s']}s ({figures['state']}; {figures['keys_left']} keys and "
        f"{figures['jobs_left']} jobs left; small still has {figures['small_users_after']} users)"
    )
    print(
        f"other tenant's GET/PING latency: baseline p50 {base['p50']} ms, p99 {base['p99']} ms; "
        f"during the purge p50 {during['p50']} ms, p99 {during['p99']} ms, max {during['max']} ms"
    )
    print(
        f"server: {figures['server_slow_commands']} command(s) of 1 ms or more, slowest "
        f"{figures['server_slowest_ms']} ms ({figures['server_slowest_command'] or 'none'})"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
