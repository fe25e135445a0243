"""Convergence: N users created through SCIM until every learner exists in the LMS.

Starts redis, the LMS sandbox (rate limit `--rate`/`--burst`, `--latency-ms`
per answer), the API and `--workers` worker processes (bench/harness.py),
creates one tenant whose `lms_rate`/`lms_burst` equal the sandbox's, then
POSTs `--users` Entra-shaped users through SCIM from `--concurrency`
clients at once. It measures, against the LMS's own bound (users / rate):

- convergence: from the first SCIM create sent to the last learner's
  `created_at` in the sandbox (target at most 1.15 x the bound);
- LMS calls per created user (target 1.0), from the sandbox's request counts;
- 429s as a share of the tenant's LMS calls (target under 0.5%).

Prints a table with the targets beside the figures and the parameters, a
CPU note, then one JSON line. It never asserts: a missed target is a finding.

    .venv/bin/python -m bench.convergence             # 10,000 users at 200/s, 20 ms
    .venv/bin/python -m bench.convergence --quick     # 1,000 users: a smoke run
    .venv/bin/python -m bench.convergence --workers 1 --max-jobs 100 --users 5000
    .venv/bin/python -m bench.convergence --poll-delay 0.5    # WORKER_POLL_DELAY for the run
    .venv/bin/python -m bench.convergence --appendfsync everysec  # Redis's other AOF policy
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.harness import (
    BenchCluster,
    CreateRun,
    add_common_args,
    bridge_counts,
    check_alive,
    cpu_report,
    cpu_seconds,
    create_users,
    created_count,
    job_phases,
    org_stats,
    print_cpu,
    print_table,
    progress_printer,
    redis_ping_ms,
    run_benchmark,
    stamp,
    summary_ms,
    verdict,
    wait_for,
)

TENANT = "conv"
TARGET_RATIO = 1.15
TARGET_CALLS_PER_USER = 1.0
TARGET_429_SHARE = 0.005


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=32, help="concurrent SCIM clients")
    p.add_argument("--timeout", type=float, default=None, help="give up after (default 4 x bound)")
    p.add_argument("--quick", action="store_true", help="a small smoke run (1,000 users)")
    add_common_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.users = min(args.users, 1_000)
    return args


async def run(cluster: BenchCluster, args: argparse.Namespace) -> dict[str, Any]:
    bound = args.users / args.rate
    timeout = args.timeout or max(60.0, 4 * bound)
    tenant = await cluster.add_tenant(TENANT, rate=args.rate, burst=args.burst)
    redis = cluster.redis
    timeline: list[dict[str, Any]] = []
    pings: list[float] = []
    await cluster.reset_sandbox()
    cpu_before = cpu_seconds(cluster)
    started = time.time()
    creates = CreateRun()
    ingest = asyncio.create_task(
        create_users(cluster, TENANT, tenant.token, range(args.users), args.concurrency, creates)
    )
    created = 0
    with progress_printer() as say:
        next_say = 0.0
        deadline = time.monotonic() + timeout
        while created < args.users and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            check_alive(cluster)
            created = created_count(await org_stats(cluster, tenant.org))
            counts = await bridge_counts(redis, TENANT)
            ping = await redis_ping_ms(redis)
            pings.append(ping)
            t = time.time() - started
            timeline.append(
                {
                    "t": round(t, 1),
                    "acked": creates.acked,
                    "created": created,
                    "due_now": counts["queue_due_now"],
                    "redis_ping_ms": ping,
                }
            )
            if t >= next_say:
                next_say += 5
                say(
                    f"SCIM acked {creates.acked}/{args.users}, learners {created}, "
                    f"pending {counts['pending']}, queue {counts['queue_depth']} "
                    f"(due now {counts['queue_due_now']}), redis ping {ping:.1f} ms"
                )
        await ingest
        wall = time.time() - started
        cpu = cpu_report(cpu_before, cpu_seconds(cluster), wall)

        # Let the last jobs record their outcome, so that every call is counted.
        async def settled() -> bool:
            return (await bridge_counts(redis, TENANT))["pending"] == 0

        await wait_for(settled, 30.0, 0.2)
    counts = await bridge_counts(redis, TENANT)
    stats = await org_stats(cluster, tenant.org)
    learners = await cluster.sandbox_learners(tenant.org)
    ids = list(creates.ids.values())
    phases = await job_phases(redis, TENANT, ids[:: max(1, len(ids) // 500)])

    linked = {lr["external_ref"] for lr in learners if lr.get("external_ref")}
    last_created = max((stamp(lr["created_at"]) for lr in learners), default=float("nan"))
    converged = len(learners) >= args.users and len(linked) >= args.users
    convergence_s = last_created - creates.first_sent if converged else float("nan")
    calls = int(stats["total"])
    rejected_429 = int(stats["by_status"].get("429", 0))
    ingest_s = creates.last_acked - creates.first_sent
    return {
        "bench": "convergence",
        "params": {
            "users": args.users,
            "rate": args.rate,
            "burst": args.burst,
            "tenant_lms_rate": args.rate,
            "tenant_lms_burst": args.burst,
            "scim_concurrency": args.concurrency,
            **cluster.spec.describe(),
        },
        "converged": converged,
        "convergence_s": round(convergence_s, 2),
        "bound_s": round(bound, 2),
        "ratio": round(convergence_s / bound, 3),
        "learners": len(learners),
        "distinct_external_refs": len(linked),
        "lms_calls": calls,
        # Per learner created: a run that did not converge is still counted fairly.
        "lms_calls_per_user": round(calls / max(1, len(learners)), 4),
        "lms_calls_by_route": stats["by_route"],
        "lms_calls_by_status": stats["by_status"],
        "lms_429": rejected_429,
        "share_429": round(rejected_429 / calls, 5) if calls else 0.0,
        "effective_lms_rate": round(len(learners) / convergence_s, 1) if converged else 0.0,
        "scim_acked": creates.acked,
        "scim_errors": creates.errors,
        "scim_ingest_s": round(ingest_s, 2),
        "scim_ingest_per_s": round(creates.acked / ingest_s, 1) if ingest_s > 0 else 0.0,
        "scim_latency_ms": summary_ms(creates.latencies),
        "bridge_after": counts,
        "job_phases": phases,
        "redis_ping_ms": summary_ms([p / 1000 for p in pings]),
        "cpu": cpu,
        "timeline": timeline[:: max(1, len(timeline) // 40)],
    }


def report(r: dict[str, Any]) -> None:
    p = r["params"]
    print(
        f"\nConvergence: {p['users']} SCIM creates -> sandbox LMS at {p['rate']:g} req/s "
        f"(burst {p['burst']}), {p['sandbox_latency_ms']:g} ms latency; tenant lms_rate "
        f"{p['tenant_lms_rate']:g}/burst {p['tenant_lms_burst']}; {p['workers']} workers x "
        f"WORKER_MAX_JOBS {p['worker_max_jobs']}, poll_delay {p['poll_delay_s']} s; "
        f"{p['scim_concurrency']} SCIM clients\n"
    )
    ok_ratio = r["converged"] and r["ratio"] <= TARGET_RATIO
    print_table(
        [
            (
                "time to converge",
                f"{r['convergence_s']:.1f} s" if r["converged"] else "did not converge",
                f"bound {r['bound_s']:.1f} s",
                "",
            ),
            ("ratio to the bound", f"{r['ratio']:.3f}", f"<= {TARGET_RATIO}", verdict(ok_ratio)),
            (
                "LMS calls per user",
                f"{r['lms_calls_per_user']:.4f} ({r['lms_calls']} calls, {r['learners']} learners)",
                f"{TARGET_CALLS_PER_USER:.1f}",
                verdict(r["lms_calls_per_user"] <= TARGET_CALLS_PER_USER + 1e-9),
            ),
            (
                "429s / LMS calls",
                f"{r['share_429']:.3%} ({r['lms_429']})",
                f"< {TARGET_429_SHARE:.1%}",
                verdict(r["share_429"] < TARGET_429_SHARE),
            ),
            ("learners in the LMS", f"{r['learners']}", f"{p['users']}", ""),
            ("effective LMS rate", f"{r['effective_lms_rate']:.1f}/s", f"{p['rate']:g}/s", ""),
            (
                "SCIM ingest",
                f"{r['scim_ingest_per_s']:.0f}/s over {r['scim_ingest_s']:.1f} s",
                "not the bottleneck",
                "",
            ),
            (
                "SCIM POST latency",
                "p50 {p50} ms, p99 {p99} ms".format(**r["scim_latency_ms"]),
                "",
                "",
            ),
        ]
    )
    print(f"\nLMS calls by route: {r['lms_calls_by_route']}; by status: {r['lms_calls_by_status']}")
    if r["scim_errors"]:
        print(f"SCIM errors: {r['scim_errors']}")
    print(f"bridge afterwards: {r['bridge_after']}")
    ph = r["job_phases"]
    print(
        f"worker jobs ({ph['sampled_users']} users sampled): start -> LMS answer "
        f"p50 {ph['start_to_lms_answer_ms'].get('p50')} ms / p99 "
        f"{ph['start_to_lms_answer_ms'].get('p99')} ms (pacing wait + the call), "
        f"LMS answer -> done p50 {ph['lms_answer_to_done_ms'].get('p50')} ms / p99 "
        f"{ph['lms_answer_to_done_ms'].get('p99')} ms; {ph['jobs_per_user']} jobs and "
        f"{ph['deferrals_per_user']} deferrals per user"
    )
    ping = r["redis_ping_ms"]
    print(f"redis PING during the run: p50 {ping.get('p50')} ms, p99 {ping.get('p99')} ms")
    print_cpu(r["cpu"])


def main(argv: list[str] | None = None) -> None:
    run_benchmark(parse_args(argv), run, report)


if __name__ == "__main__":
    main()
