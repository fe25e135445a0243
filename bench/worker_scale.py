"""Delivery grows with the workers: a 1 s LMS, 1, 2 and 4 workers.

For each worker count, starts redis, the LMS sandbox answering every call
after `--latency-ms` (1,000 by default) with no rate limit to speak of, the
API and the workers (`WORKER_MAX_JOBS` `--max-jobs`, 50 by default)
(bench/harness.py), creates one tenant with the same generous limit (and lets it use every
job slot: `WORKER_TENANT_MAX_JOBS` = `--max-jobs`), then
POSTs `--users` users through SCIM and waits until every learner exists.
Delivery is users per second from the first create sent to the last
learner created. With a 1 s LMS the bound is workers x max_jobs users a
second (or the API's ingest rate, or this 2-core machine's CPU, whichever
is lower); before the bridge read the queue itself, arq's
`queue_read_limit` held the whole fleet at 20 jobs running (19 users/s).
The 1-worker row is the same-run baseline. It never asserts.

    .venv/bin/python -m bench.worker_scale                     # 1, 2, 4 workers, 1,000 users
    .venv/bin/python -m bench.worker_scale --workers 1 2 --users 400
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench.harness import (
    ClusterSpec,
    CreateRun,
    bench_cluster,
    check_alive,
    create_users,
    created_count,
    org_stats,
    stamp,
)

TENANT = "scale"
#: Far above what the runs reach: the LMS's own limit is not what is measured.
GENEROUS = 100_000


class ScaleSpec(ClusterSpec):
    """One tenant may use every slot (WORKER_TENANT_MAX_JOBS = max_jobs):
    what is measured is the queue read, not the per-tenant cap that keeps
    one slow LMS from holding a worker (worker/fairness.py)."""

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), "WORKER_TENANT_MAX_JOBS": str(self.max_jobs)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--max-jobs", type=int, default=50)
    p.add_argument("--latency-ms", type=float, default=1000.0)
    p.add_argument("--concurrency", type=int, default=32, help="concurrent SCIM clients")
    p.add_argument("--timeout", type=float, default=180.0)
    return p.parse_args(argv)


async def one_run(workers: int, args: argparse.Namespace) -> dict[str, Any]:
    spec = ScaleSpec(
        workers=workers,
        max_jobs=args.max_jobs,
        latency_ms=args.latency_ms,
        rate=GENEROUS,
        burst=GENEROUS,
    )
    async with bench_cluster(spec) as cluster:
        tenant = await cluster.add_tenant(TENANT, rate=GENEROUS, burst=GENEROUS)
        await cluster.reset_sandbox()
        creates = CreateRun()
        numbers = range(args.users)
        ingest = asyncio.create_task(
            create_users(cluster, TENANT, tenant.token, numbers, args.concurrency, creates)
        )
        deadline = time.monotonic() + args.timeout
        created = 0
        while created < args.users and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            check_alive(cluster)
            created = created_count(await org_stats(cluster, tenant.org))
        await ingest
        learners = await cluster.sandbox_learners(tenant.org)
    last = max((stamp(lr["created_at"]) for lr in learners), default=float("nan"))
    delivery_s = last - creates.first_sent
    ingest_s = creates.last_acked - creates.first_sent
    return {
        "workers": workers,
        "max_jobs": args.max_jobs,
        "users": args.users,
        "learners": len(learners),
        "delivery_s": round(delivery_s, 2),
        "users_per_s": round(len(learners) / delivery_s, 1) if delivery_s > 0 else None,
        "ingest_users_per_s": round(creates.acked / ingest_s, 1) if ingest_s > 0 else None,
        "bound_users_per_s": round(workers * args.max_jobs * 1000 / args.latency_ms, 1),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = [asyncio.run(one_run(n, args)) for n in args.workers]
    base = rows[0]["users_per_s"] or 0.0
    print(f"{'workers':>7}  {'users/s':>8}  {'x 1st row':>9}  {'bound':>6}  {'ingest/s':>8}")
    for r in rows:
        ratio = f"{(r['users_per_s'] or 0) / base:.2f}" if base else "-"
        print(
            f"{r['workers']:>7}  {r['users_per_s']!s:>8}  {ratio:>9}  "
            f"{r['bound_users_per_s']:>6}  {r['ingest_users_per_s']!s:>8}"
        )
    print(json.dumps({"bench": "worker_scale", "latency_ms": args.latency_ms, "runs": rows}))


if __name__ == "__main__":
    main()
