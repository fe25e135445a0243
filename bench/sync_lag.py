"""Sync lag at low load: from a SCIM 2xx to the learner updated in the LMS.

Starts the bridge as real processes (bench/harness.py), seeds `--changes`
users and waits until every one is a learner, then sends one Entra-shaped
PATCH (a new `title`) to each user, `--per-second` of them a second, and
reads every learner's `updated_at` from the sandbox. The lag of a change
is the sandbox's `updated_at` minus the moment the client received the
SCIM 2xx (the same machine, the same clock). Each lag is split in two
with the user's provisioning log (the worker's `job_started` event):

- queue wait: SCIM 2xx -> a worker starts the job (arq's poll of its queue);
- job: job started -> learner updated (Redis reads, mapping, pacing, the
  LMS call with the sandbox's `--latency-ms`).

Target: p50 under 100 ms. Prints p50/p90/p99 beside the target, the
parameters and a CPU note, then one JSON line; it never asserts.

    .venv/bin/python -m bench.sync_lag                   # 200 changes at 5/s
    .venv/bin/python -m bench.sync_lag --quick           # 30 changes at 10/s
    .venv/bin/python -m bench.sync_lag --poll-delay 0.5  # arq's own default, to compare
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.harness import (
    BenchCluster,
    add_common_args,
    bridge_counts,
    check_alive,
    cpu_report,
    cpu_seconds,
    create_users,
    event_times,
    print_cpu,
    print_table,
    run_benchmark,
    scim_client,
    stamp,
    summary_ms,
    title_patch,
    verdict,
    wait_for,
)

TENANT = "lag"
TARGET_P50_MS = 100.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--changes", type=int, default=200, help="changes, one per user")
    p.add_argument("--per-second", type=float, default=5.0, help="changes a second")
    p.add_argument("--quick", action="store_true", help="a small smoke run (30 changes at 10/s)")
    add_common_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.changes = min(args.changes, 30)
        args.per_second = max(args.per_second, 10.0)
    return args


async def run(cluster: BenchCluster, args: argparse.Namespace) -> dict[str, Any]:
    tenant = await cluster.add_tenant(TENANT, rate=args.rate, burst=args.burst)
    redis = cluster.redis
    seeded = await create_users(cluster, TENANT, tenant.token, range(args.changes), 8)
    if seeded.errors:
        raise RuntimeError(f"seeding failed: {seeded.errors}")

    async def all_synced() -> bool:
        counts = await bridge_counts(redis, TENANT)
        return counts["pending"] == 0 and counts["synced"] + counts["failed"] >= args.changes

    if not await wait_for(all_synced, 120.0, 0.2):
        raise RuntimeError(f"seeded users did not sync: {await bridge_counts(redis, TENANT)}")
    await asyncio.sleep(1.0)  # quiet: nothing queued, the workers idle

    sent: dict[int, float] = {}
    acked: dict[int, float] = {}
    errors: dict[int, int] = {}
    cpu_before = cpu_seconds(cluster)
    started = time.time()
    async with scim_client(cluster, TENANT, tenant.token, connections=8) as client:

        async def change(i: int) -> None:
            sent[i] = time.time()
            r = await client.patch(f"/Users/{seeded.ids[i]}", json=title_patch(f"Role {i}"))
            if r.status_code == 200:
                acked[i] = time.time()
            else:
                errors[r.status_code] = errors.get(r.status_code, 0) + 1

        tasks = []
        for i in range(args.changes):
            await asyncio.sleep(max(0.0, started + i / args.per_second - time.time()))
            tasks.append(asyncio.create_task(change(i)))
        await asyncio.gather(*tasks)
    wall = time.time() - started

    expected = {seeded.ids[i]: f"Role {i}" for i in acked}
    learners: dict[str, dict[str, Any]] = {}

    async def all_landed() -> bool:
        check_alive(cluster)
        learners.clear()
        for learner in await cluster.sandbox_learners(tenant.org):
            learners[learner["external_ref"]] = learner
        return all(learners.get(uid, {}).get("job_role") == want for uid, want in expected.items())

    landed_all = await wait_for(all_landed, 60.0, 0.25)
    cpu = cpu_report(cpu_before, cpu_seconds(cluster), time.time() - started)

    lags, waits, jobs, scim = [], [], [], []
    for i, got in acked.items():
        uid = seeded.ids[i]
        learner = learners.get(uid)
        scim.append(got - sent[i])
        if learner is None or learner.get("job_role") != expected[uid]:
            continue
        landed = stamp(learner["updated_at"])
        lags.append(landed - got)
        starts = [t for t, event in await event_times(redis, TENANT, uid) if event == "job_started"]
        job_start = next((t for t in starts if t >= sent[i] - 0.001), None)
        if job_start is not None:
            waits.append(max(0.0, job_start - got))
            jobs.append(landed - job_start)
    return {
        "bench": "sync_lag",
        "params": {
            "changes": args.changes,
            "per_second": args.per_second,
            "rate": args.rate,
            "burst": args.burst,
            **cluster.spec.describe(),
        },
        "landed_all": landed_all,
        "changes_acked": len(acked),
        "changes_landed": len(lags),
        "scim_errors": errors,
        "send_wall_s": round(wall, 1),
        "lag_ms": summary_ms(lags),
        "queue_wait_ms": summary_ms(waits),
        "job_ms": summary_ms(jobs),
        "scim_patch_ms": summary_ms(scim),
        "lms_calls": (await cluster.sandbox_stats()).get("orgs", {}).get(tenant.org, {}),
        "cpu": cpu,
    }


def report(r: dict[str, Any]) -> None:
    p = r["params"]
    print(
        f"\nSync lag: {p['changes']} PATCH title changes at {p['per_second']:g}/s, one per "
        f"user; sandbox {p['sandbox_latency_ms']:g} ms latency, rate {p['rate']:g}/burst "
        f"{p['burst']}; {p['workers']} workers x WORKER_MAX_JOBS {p['worker_max_jobs']}, "
        f"poll_delay {p['poll_delay_s']} s\n"
    )
    lag, wait, job, scim = r["lag_ms"], r["queue_wait_ms"], r["job_ms"], r["scim_patch_ms"]

    def ms(d: dict[str, float], key: str) -> str:
        return f"{d[key]:.0f} ms" if d else "n/a"

    print_table(
        [
            (
                "lag p50 (SCIM 2xx -> LMS updated)",
                ms(lag, "p50"),
                f"< {TARGET_P50_MS:.0f} ms",
                verdict(bool(lag) and lag["p50"] < TARGET_P50_MS),
            ),
            ("lag p90", ms(lag, "p90"), "", ""),
            ("lag p99", ms(lag, "p99"), "", ""),
            ("lag max", ms(lag, "max"), "", ""),
            ("  of which queue wait p50 / p99", f"{ms(wait, 'p50')} / {ms(wait, 'p99')}", "", ""),
            ("  of which job p50 / p99", f"{ms(job, 'p50')} / {ms(job, 'p99')}", "", ""),
            ("SCIM PATCH p50 / p99", f"{ms(scim, 'p50')} / {ms(scim, 'p99')}", "", ""),
            (
                "changes landed",
                f"{r['changes_landed']}/{r['changes_acked']} acked",
                f"{p['changes']}",
                "",
            ),
        ]
    )
    if r["scim_errors"]:
        print(f"SCIM errors: {r['scim_errors']}")
    if lag and wait and lag["p50"] >= TARGET_P50_MS and wait["p50"] > lag["p50"] / 2:
        print(
            f"\nDiagnosis: {wait['p50']:.0f} ms of the {lag['p50']:.0f} ms median is the job "
            "waiting in arq's queue until a worker polls it. arq reads its queue every "
            f"poll_delay (here {p['poll_delay_s']} s), so a lone change waits about half of "
            "it (workers started together poll nearly in step, so a second one helps "
            "little). The setting: "
            "`poll_delay_s` in core/settings.py (env WORKER_POLL_DELAY), which "
            "worker/settings.py `worker_options()` passes to arq as `poll_delay`."
        )
    print_cpu(r["cpu"])


def main(argv: list[str] | None = None) -> None:
    run_benchmark(parse_args(argv), run, report)


if __name__ == "__main__":
    main()
