"""Fair share: one tenant's single change while another converges a big backlog.

Starts the bridge as real processes (bench/harness.py) with two tenants on
their own sandbox organisations, both at the LMS's `--rate`/`--burst`.
Tenant B gets one user per probe, synced beforehand. Then tenant A starts
an initial cycle: `--users` Entra-shaped creates from `--concurrency`
SCIM clients, which keeps org A at its rate limit for users / rate
seconds. At each `--probes` offset into A's run, B sends a single PATCH
(a new `title`) and the benchmark reports how long it took to land in B's
LMS (the sandbox's `updated_at` minus the moment the PATCH was sent; also
from the SCIM 2xx, and the part spent waiting in the queue), beside A's
progress at that moment (learners created, SCIM creates acknowledged,
A's pending users, the arq queue and how much of it is overdue).

Target: each of B's changes lands within 1 s. Prints a table, the
parameters and a CPU note, then one JSON line; it never asserts.

    .venv/bin/python -m bench.fair_share                      # A: 10,000 users; B at 5, 15, 25 s
    .venv/bin/python -m bench.fair_share --quick              # A: 1,000 users; B at 1, 2.5, 4 s
    .venv/bin/python -m bench.fair_share --probes 2,10,20,40
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
    event_times,
    org_stats,
    print_cpu,
    print_table,
    progress_printer,
    run_benchmark,
    scim_client,
    stamp,
    title_patch,
    verdict,
    wait_for,
)

A, B = "tenant-a", "tenant-b"
TARGET_S = 1.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=10_000, help="tenant A's initial cycle")
    p.add_argument(
        "--probes", default="5,15,25", help="seconds into A's run at which B sends a change"
    )
    p.add_argument("--concurrency", type=int, default=32, help="tenant A's concurrent SCIM clients")
    p.add_argument("--quick", action="store_true", help="a small smoke run (A: 1,000 users)")
    add_common_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.users = min(args.users, 1_000)
        if args.probes == p.get_default("probes"):
            args.probes = "1,2.5,4"
    args.offsets = sorted(float(x) for x in args.probes.split(",") if x.strip())
    return args


async def a_progress(cluster: BenchCluster, creates: CreateRun, users: int) -> dict[str, Any]:
    counts = await bridge_counts(cluster.redis, A)
    return {
        "a_learners": created_count(await org_stats(cluster, A)),
        "a_scim_acked": creates.acked,
        "a_pending": counts["pending"],
        "queue_depth": counts["queue_depth"],
        "queue_due_now": counts["queue_due_now"],
        "a_users": users,
    }


async def probe(
    cluster: BenchCluster,
    b_token: str,
    user_id: str,
    k: int,
    started: float,
    creates: CreateRun,
    users: int,
    patience: float,
) -> dict[str, Any]:
    """One change of B; returns when it landed (or `patience` seconds passed)."""
    title = f"Probe {k}"
    async with scim_client(cluster, B, b_token) as client:
        progress_task = asyncio.create_task(a_progress(cluster, creates, users))
        sent = time.time()
        r = await client.patch(f"/Users/{user_id}", json=title_patch(title))
        acked = time.time()
        progress = await progress_task
    result: dict[str, Any] = {
        "offset_s": round(sent - started, 2),
        "scim_status": r.status_code,
        "scim_ms": round((acked - sent) * 1000, 1),
        **progress,
    }
    landed_learner: dict[str, Any] = {}

    async def landed() -> bool:
        check_alive(cluster)
        for learner in await cluster.sandbox_learners(B):
            if learner["external_ref"] == user_id and learner["job_role"] == title:
                landed_learner.update(learner)
                return True
        return False

    if r.status_code != 200 or not await wait_for(landed, patience, 0.05):
        result["landed"] = False
        return result
    at = stamp(landed_learner["updated_at"])
    starts = [t for t, e in await event_times(cluster.redis, B, user_id) if e == "job_started"]
    job_start = next((t for t in starts if t >= sent - 0.001), None)
    result.update(
        landed=True,
        sent_to_landed_ms=round((at - sent) * 1000, 1),
        acked_to_landed_ms=round((at - acked) * 1000, 1),
        queue_wait_ms=round((job_start - acked) * 1000, 1) if job_start else None,
    )
    return result


async def run(cluster: BenchCluster, args: argparse.Namespace) -> dict[str, Any]:
    a = await cluster.add_tenant(A, rate=args.rate, burst=args.burst)
    b = await cluster.add_tenant(B, rate=args.rate, burst=args.burst)
    seeded = await create_users(cluster, B, b.token, range(len(args.offsets)), 1)
    if seeded.errors:
        raise RuntimeError(f"seeding B failed: {seeded.errors}")

    async def b_synced() -> bool:
        return (await bridge_counts(cluster.redis, B))["synced"] >= len(args.offsets)

    if not await wait_for(b_synced, 60.0, 0.1):
        raise RuntimeError("tenant B's users did not sync")
    await cluster.reset_sandbox()
    await asyncio.sleep(1.0)

    cpu_before = cpu_seconds(cluster)
    creates = CreateRun()
    started = time.time()
    ingest = asyncio.create_task(
        create_users(cluster, A, a.token, range(args.users), args.concurrency, creates)
    )
    with progress_printer() as say:
        patience = max(120.0, 4 * args.users / args.rate)

        async def probe_at(k: int, offset: float) -> dict[str, Any]:
            await asyncio.sleep(max(0.0, started + offset - time.time()))
            result = await probe(
                cluster, b.token, seeded.ids[k], k, started, creates, args.users, patience
            )
            say(
                f"B's change at {result['offset_s']:.1f}s: "
                + (
                    f"landed in {result['sent_to_landed_ms']:.0f} ms"
                    if result.get("landed")
                    else "did not land"
                )
                + f"; A {result['a_learners']}/{args.users} learners, "
                f"queue {result['queue_depth']} (due now {result['queue_due_now']})"
            )
            return result

        # Each probe is its own task (and its own user of B): a slow one does
        # not delay the next.
        probes = list(await asyncio.gather(*(probe_at(k, o) for k, o in enumerate(args.offsets))))
        await ingest

        async def a_done() -> bool:
            check_alive(cluster)
            return created_count(await org_stats(cluster, A)) >= int(args.users)

        a_converged = await wait_for(a_done, max(120.0, 4 * args.users / args.rate), 0.5)
        say("A converged" if a_converged else "A did not converge in time")
    wall = time.time() - started
    cpu = cpu_report(cpu_before, cpu_seconds(cluster), wall)
    a_learners = await cluster.sandbox_learners(A)
    a_last = max((stamp(lr["created_at"]) for lr in a_learners), default=float("nan"))
    stats = await cluster.sandbox_stats()
    return {
        "bench": "fair_share",
        "params": {
            "a_users": args.users,
            "probes_at_s": args.offsets,
            "rate": args.rate,
            "burst": args.burst,
            "tenants_lms_rate": args.rate,
            "tenants_lms_burst": args.burst,
            "a_scim_concurrency": args.concurrency,
            **cluster.spec.describe(),
        },
        "probes": probes,
        "a_converged": a_converged,
        "a_convergence_s": round(a_last - creates.first_sent, 2) if a_converged else None,
        "a_bound_s": round(args.users / args.rate, 2),
        "a_scim_ingest_s": round(creates.last_acked - creates.first_sent, 2),
        "lms_calls": {org: stats.get("orgs", {}).get(org, {}).get("by_status") for org in (A, B)},
        "cpu": cpu,
    }


def report(r: dict[str, Any]) -> None:
    p = r["params"]
    print(
        f"\nFair share: tenant A converges {p['a_users']} users ({p['a_scim_concurrency']} "
        f"SCIM clients) while tenant B sends one change at {p['probes_at_s']} s; both at "
        f"{p['rate']:g} req/s (burst {p['burst']}) on their own sandbox orgs, "
        f"{p['sandbox_latency_ms']:g} ms latency; {p['workers']} workers x WORKER_MAX_JOBS "
        f"{p['worker_max_jobs']}, poll_delay {p['poll_delay_s']} s\n"
    )
    rows: list[tuple[str, str, str, str]] = []
    for pr in r["probes"]:
        a_state = (
            f"A: {pr['a_learners']}/{pr['a_users']} learners, {pr['a_scim_acked']} acked, "
            f"{pr['a_pending']} pending, queue {pr['queue_depth']} ({pr['queue_due_now']} due)"
        )
        if pr.get("landed"):
            value = (
                f"{pr['sent_to_landed_ms']:.0f} ms (from 2xx {pr['acked_to_landed_ms']:.0f}, "
                f"queue wait {pr['queue_wait_ms']} ms, SCIM {pr['scim_ms']:.0f} ms)"
            )
            ok = pr["sent_to_landed_ms"] <= TARGET_S * 1000
        else:
            value, ok = f"did not land (SCIM {pr['scim_status']})", False
        label = f"B's change at {pr['offset_s']:.1f} s"
        rows.append((label, value, f"<= {TARGET_S:g} s", verdict(ok)))
        rows.append(("", a_state, "", ""))
    conv = r["a_convergence_s"]
    rows.append(
        (
            "A's convergence",
            f"{conv:.1f} s (ratio {conv / r['a_bound_s']:.3f})" if conv else "did not converge",
            f"bound {r['a_bound_s']:.1f} s",
            "",
        )
    )
    print_table(rows)
    print(f"\nLMS answers by status: {r['lms_calls']}")
    print_cpu(r["cpu"])


def main(argv: list[str] | None = None) -> None:
    run_benchmark(parse_args(argv), run, report)


if __name__ == "__main__":
    main()
