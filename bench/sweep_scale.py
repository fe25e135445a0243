"""The sweep at scale: thousands of tenants, one lost job each.

Starts its own redis-server, creates `--tenants` tenants with one user each
whose job was lost (its pending mark written as a SCIM create writes it,
no arq job), then runs the sweep as its cron does, one run per
`--interval` seconds of budget, until every user has a job again. Prints
each run's time and how many it recovered, then one JSON line; the target
is every user recovered within two sweep intervals. It never asserts.

    .venv/bin/python -m bench.sweep_scale                 # 5,000 tenants
    .venv/bin/python -m bench.sweep_scale --tenants 500   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis

from core.settings import Settings
from shadow import ResourceStore, Tenant, TenantStore
from tests.support.redis_server import start_redis
from worker.deps import WorkerDeps
from worker.queue import QUEUE_NAME
from worker.sweep import sweep, sweep_budget_s

USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "userName": "lost@example.com",
    "name": {"givenName": "Lost", "familyName": "Job"},
    "emails": [{"value": "lost@example.com", "type": "work", "primary": True}],
    "active": True,
}


async def seed(redis: Redis, tenants: int) -> None:
    store, resources = TenantStore(redis), ResourceStore(redis)
    for i in range(tenants):
        slug = f"t{i:05d}"
        await store.create(
            Tenant(slug=slug, name=slug, lms_url="https://lms.test", lms_api_key="k")
        )
        await resources.write(slug, "u", "lost", "create", USER, interval_ms=1)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server = start_redis(Path(tempfile.mkdtemp(prefix="sweep-scale-")))
    settings = Settings(
        redis_url=server.url,
        sweep_interval_s=args.interval,
        sweep_grace_s=0.0,
    )
    redis = Redis.from_url(server.url)
    queue = await create_pool(RedisSettings.from_dsn(server.url))
    deps = WorkerDeps.open(settings, queue)
    try:
        began = time.monotonic()
        await seed(redis, args.tenants)
        seed_s = time.monotonic() - began
        runs: list[dict[str, float]] = []
        recovered = 0
        while recovered < args.tenants and len(runs) < 10:
            began = time.monotonic()
            found = await sweep({"deps": deps})
            runs.append({"seconds": round(time.monotonic() - began, 2), "recovered": found})
            recovered += found
            print(f"run {len(runs)}: {found:,} recovered in {runs[-1]['seconds']}s")
        jobs = int(await queue.zcard(QUEUE_NAME))
    finally:
        await deps.aclose()
        await queue.aclose()
        await redis.aclose()
        server.stop()
    return {
        "tenants": args.tenants,
        "interval_s": args.interval,
        "budget_s": sweep_budget_s(settings),
        "seed_s": round(seed_s, 1),
        "runs": runs,
        "recovered": recovered,
        "jobs_queued": jobs,
        "within_two_intervals": recovered == args.tenants and len(runs) <= 2,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=5000)
    parser.add_argument("--interval", type=int, default=30, help="WORKER_SWEEP_INTERVAL")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(
        f"{figures['recovered']:,} of {figures['tenants']:,} lost jobs recovered in "
        f"{len(figures['runs'])} run(s) of the sweep "
        f"(budget {figures['budget_s']:.0f}s a run; target: two runs)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
