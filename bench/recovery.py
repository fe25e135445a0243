"""Recovery: how long a crash or an outage delays users, under load.

Starts redis (AOF), the LMS sandbox, the API and `--workers` workers with
the production sweep settings (every 30 s, 60 s grace: the sweep cannot
be what recovers within seconds), then runs each `--scenario`, each on its
own tenant, `--users` SCIM creates from 16 clients:

- `kill`: SIGKILL worker 0 once a third of the learners exist; the time
  from the kill until every user it held (its claimed and running jobs,
  read from its claims set just before) is synced, and until all are.
- `outage`: the LMS answers 503 (Retry-After: what is left; or with
  `--outage-kind 502`, 502s without one) for `--outage-s` from the first
  create; the time from the outage's end to the first learner made (the
  backlog moving) and to all.
- `redis`: Redis stops for `--redis-down-s` once a third of the learners
  exist (`--redis-mode stop`: SIGSTOP then SIGCONT; `restart`: SIGKILL, then
  a start that replays the AOF); the time from its return until every
  acknowledged user is synced (target within 15 s).

Prints a table and one JSON line; it never asserts.

    .venv/bin/python -m bench.recovery                      # all three
    .venv/bin/python -m bench.recovery --scenario redis --redis-mode restart
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from typing import Any

from bench.harness import (
    BenchCluster,
    CreateRun,
    add_common_args,
    bridge_counts,
    create_users,
    created_count,
    org_stats,
    print_table,
    progress_printer,
    run_benchmark,
    stamp,
    verdict,
    wait_for,
)
from shadow import keys
from worker.liveness import REGISTRY, claims_key

TARGET_S = 15.0
CLIENTS = 16


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", choices=("all", "kill", "outage", "redis"), default="all")
    p.add_argument("--users", type=int, default=600)
    p.add_argument("--outage-s", type=float, default=20.0)
    p.add_argument(
        "--outage-kind",
        choices=("503", "502"),
        default="503",
        help="503 with Retry-After (what is left), or 502s without one",
    )
    p.add_argument("--redis-down-s", type=float, default=5.0)
    p.add_argument("--redis-mode", choices=("stop", "restart"), default="stop")
    add_common_args(p)
    p.set_defaults(rate=100.0, burst=100)
    return p.parse_args(argv)


async def _start(cluster: BenchCluster, slug: str, args: argparse.Namespace) -> tuple[Any, Any]:
    tenant = await cluster.add_tenant(slug, rate=args.rate, burst=args.burst)
    creates = CreateRun()
    task = asyncio.create_task(
        create_users(cluster, slug, tenant.token, range(args.users), CLIENTS, creates)
    )
    return tenant, (creates, task)


async def _learners(cluster: BenchCluster, org: str) -> int:
    return created_count(await org_stats(cluster, org))


async def _all_synced(cluster: BenchCluster, slug: str, creates: CreateRun) -> bool:
    counts = await bridge_counts(cluster.redis, slug)
    return counts["pending"] == 0 and counts["synced"] >= creates.acked > 0


async def kill_scenario(cluster: BenchCluster, args: argparse.Namespace) -> dict[str, Any]:
    slug = "rkill"
    tenant, (creates, ingest) = await _start(cluster, slug, args)
    await wait_for(lambda: _past(cluster, tenant.org, args.users // 3), 120, 0.05)
    held = await _held_by(cluster, 0)
    cluster.kill_worker(0)
    killed = time.monotonic()
    users = {job.split(":")[2] for job in held if job.startswith(f"sync:{slug}:")}

    async def held_synced() -> bool:
        async with cluster.redis.pipeline(transaction=False) as pipe:
            for uid in users:
                pipe.zscore(keys.state_set(slug, "synced"), uid)
            return all(score is not None for score in await pipe.execute())

    await wait_for(held_synced, 180, 0.1)
    held_s = time.monotonic() - killed
    await ingest
    await wait_for(lambda: _all_synced(cluster, slug, creates), 180, 0.2)
    all_s = time.monotonic() - killed
    cluster.start_worker(0)
    await cluster.wait_worker(0)
    return {
        "held_jobs": len(held),
        "held_users_synced_s": round(held_s, 1),
        "all_synced_s": round(all_s, 1),
    }


async def outage_scenario(cluster: BenchCluster, args: argparse.Namespace) -> dict[str, Any]:
    slug = "routage"
    if args.outage_kind == "503":
        await cluster.set_knobs(outage_seconds=args.outage_s)
    else:  # every answer a 502, no Retry-After: the bridge must find the end itself
        await cluster.set_knobs(fault_rate=1.0, fault_statuses=[502])
    ends = time.time() + args.outage_s
    tenant, (creates, ingest) = await _start(cluster, slug, args)
    await ingest
    if args.outage_kind == "502":
        await asyncio.sleep(max(0.0, ends - time.time()))
        await cluster.set_knobs(fault_rate=0.0, fault_statuses=[502, 503, 504])
    await wait_for(lambda: _all_synced(cluster, slug, creates), args.outage_s + 180, 0.2)
    learners = await cluster.sandbox_learners(tenant.org)
    made = sorted(stamp(lr["created_at"]) for lr in learners)
    return {
        "kind": args.outage_kind,
        "outage_s": args.outage_s,
        "first_learner_after_end_s": round(made[0] - ends, 1) if made else None,
        "all_learners_after_end_s": round(made[-1] - ends, 1) if made else None,
        "bound_s": round(args.users / args.rate, 1),
    }


async def redis_scenario(cluster: BenchCluster, args: argparse.Namespace) -> dict[str, Any]:
    slug = "rredis"
    tenant, (creates, ingest) = await _start(cluster, slug, args)
    await wait_for(lambda: _past(cluster, tenant.org, args.users // 3), 120, 0.05)
    assert cluster.redis_proc is not None
    if args.redis_mode == "stop":
        cluster.redis_proc.send_signal(signal.SIGSTOP)
        await asyncio.sleep(args.redis_down_s)
        cluster.redis_proc.send_signal(signal.SIGCONT)
    else:
        await asyncio.to_thread(cluster.restart_redis, signal.SIGKILL, args.redis_down_s)
    back = time.monotonic()
    await ingest
    await wait_for(lambda: _all_synced(cluster, slug, creates), 180, 0.2)
    synced_s = time.monotonic() - back
    lost_lines = sum(cluster.worker_log(i).count("lost Redis") for i in range(len(cluster.workers)))
    return {
        "mode": args.redis_mode,
        "down_s": args.redis_down_s,
        "acked": creates.acked,
        "scim_errors": creates.errors,
        "all_synced_after_return_s": round(synced_s, 1),
        "worker_lost_redis_lines": lost_lines,
    }


async def _past(cluster: BenchCluster, org: str, learners: int) -> bool:
    return await _learners(cluster, org) >= learners


async def _held_by(cluster: BenchCluster, i: int) -> set[str]:
    """The jobs worker `i` has claimed (running or about to run)."""
    marker = f".{cluster.workers[i].pid}."
    held: set[str] = set()
    for raw in await cluster.redis.zrange(REGISTRY, 0, -1):
        worker_id = raw.decode()
        if marker in worker_id:
            held |= {j.decode() for j in await cluster.redis.smembers(claims_key(worker_id))}  # type: ignore[misc]
    return held


SCENARIOS = {"kill": kill_scenario, "outage": outage_scenario, "redis": redis_scenario}


async def run(cluster: BenchCluster, args: argparse.Namespace) -> dict[str, Any]:
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    results: dict[str, Any] = {
        "bench": "recovery",
        "params": {"users": args.users, **cluster.spec.describe()},
    }
    with progress_printer() as say:
        for name in names:
            say(f"scenario {name}")
            results[name] = await SCENARIOS[name](cluster, args)
            say(f"{name}: {results[name]}")
    return results


def report(r: dict[str, Any]) -> None:
    p = r["params"]
    print(
        f"\nRecovery: {p['users']} SCIM creates per scenario, "
        f"sandbox at {p['sandbox_rate']:g} req/s, "
        f"{p['sandbox_latency_ms']:g} ms; {p['workers']} workers; sweep every 30 s, 60 s grace\n"
    )
    rows: list[tuple[str, str, str, str]] = []
    if "kill" in r:
        k = r["kill"]
        rows.append(
            (
                "SIGKILL -> its users synced",
                f"{k['held_users_synced_s']} s ({k['held_jobs']} jobs held)",
                f"<= {TARGET_S:g} s",
                verdict(k["held_users_synced_s"] <= TARGET_S),
            )
        )
        rows.append(("SIGKILL -> every user synced", f"{k['all_synced_s']} s", "", ""))
    if "outage" in r:
        o = r["outage"]
        rows.append(
            (
                f"LMS outage ({o['outage_s']:g} s of {o['kind']}) end -> backlog moving",
                f"{o['first_learner_after_end_s']} s",
                "a few seconds",
                verdict(
                    o["first_learner_after_end_s"] is not None
                    and o["first_learner_after_end_s"] <= 5
                ),
            )
        )
        rows.append(
            (
                "outage end -> backlog done",
                f"{o['all_learners_after_end_s']} s",
                f"bound {o['bound_s']} s",
                "",
            )
        )
    if "redis" in r:
        d = r["redis"]
        rows.append(
            (
                f"Redis {d['mode']} {d['down_s']:g} s -> every user synced",
                f"{d['all_synced_after_return_s']} s after its return",
                f"<= {TARGET_S:g} s",
                verdict(d["all_synced_after_return_s"] <= TARGET_S),
            )
        )
        rows.append(
            ("workers' 'lost Redis' lines", str(d["worker_lost_redis_lines"]), "one per worker", "")
        )
    print_table(rows)


def main(argv: list[str] | None = None) -> None:
    run_benchmark(parse_args(argv), run, report)


if __name__ == "__main__":
    main()
