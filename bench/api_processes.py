"""`scim-bridge api --processes 2` against one process, on this machine.

Starts a throwaway redis-server and two API deployments on it: one process
(`API_PROCESSES=1`) and a group of `--processes` (2) sharing one port
(`--connections` 32 by default: one process lets a tenant have 32 SCIM
requests in flight and answers 429 past that, which would flatter it)
(cli/process_group.py). Drives each with `wrk` (POST /Users, filtered GET,
PATCH; bench/api_bench.py's workloads), alternating one, group, one, group
... for `--rounds`, so each ratio compares runs seconds apart on a shared
machine. Prints requests a second and p50/p99 per workload and the median
ratio group / one process, then one JSON line. Never asserts.

    .venv/bin/python -m bench.api_processes [--seconds 5] [--rounds 3] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.api_bench import (
    GET_FILTER,
    PATCH_OP,
    PATCH_USERS,
    POST_USERS,
    USER_SCHEMA,
    make_tenant,
    run_wrk,
    seed,
    wait_http,
)
from tests.support.api import SECRET_KEY
from tests.support.redis_server import free_port, start_redis


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    server = start_redis(Path(tempfile.mkdtemp()))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        env = {
            **os.environ,
            "REDIS_URL": server.url,
            "LOG_LEVEL": "WARNING",
            "BRIDGE_SECRET_KEY": SECRET_KEY,
            "BRIDGE_SCIM_RATE_LIMIT": "off",
        }
        urls = {}
        for label, count in (("1 process", 1), (f"{args.processes} processes", args.processes)):
            port = free_port()
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "cli", "api"],
                    env={**env, "PORT": str(port), "API_PROCESSES": str(count)},
                )
            )
            urls[label] = f"http://127.0.0.1:{port}"
            wait_http(urls[label] + "/healthz")
        token = asyncio.run(make_tenant(server.url))
        one = next(iter(urls.values()))
        ids = asyncio.run(seed(server.url, one, token, 500))
        wrk_env = {
            "TOKEN": token,
            "BASE": "/scim/bench/v2",
            "USER_SCHEMA": USER_SCHEMA,
            "PATCH_OP": PATCH_OP,
            "SEEDED": "500",
            "IDS": ",".join(ids),
        }
        workloads = {"POST /Users": POST_USERS, "GET filter": GET_FILTER, "PATCH": PATCH_USERS}
        for url in urls.values():  # warm-up
            for lua in workloads.values():
                run_wrk(lua, url, 2, args.connections, wrk_env, procs[0].pid)
        runs: dict[str, dict[str, list[dict[str, float]]]] = {
            w: {label: [] for label in urls} for w in workloads
        }
        for _ in range(args.rounds):
            for name, lua in workloads.items():
                for label, url in urls.items():
                    result = run_wrk(
                        lua, url, args.seconds, args.connections, wrk_env, procs[0].pid
                    )
                    runs[name][label].append(result)
        labels = list(urls)
        print(
            f"\n{'workload':14} {'deployment':12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} non-2xx"
        )
        summary: dict[str, dict[str, float]] = {}
        for name, by_label in runs.items():
            for label in labels:
                rows = by_label[label]
                med = {k: statistics.median(r[k] for r in rows) for k in ("rps", "p50", "p99")}
                med["non2xx"] = sum(r["non2xx"] for r in rows)
                summary[f"{name} / {label}"] = med
                print(
                    f"{name:14} {label:12} {med['rps']:8.0f} {med['p50']:8.2f} {med['p99']:8.2f} "
                    f"{int(med['non2xx'])}"
                )
            ratios = [
                b["rps"] / a["rps"]
                for a, b in zip(by_label[labels[0]], by_label[labels[1]], strict=True)
            ]
            summary[f"{name} / ratio"] = {"median": statistics.median(ratios)}
            print(
                f"{name:14} {'ratio':12} {statistics.median(ratios):8.2f}  (per round: "
                + " ".join(f"{r:.2f}" for r in ratios)
                + ")"
            )
        print(json.dumps({"bench": "api_processes", "cpus": os.cpu_count(), "summary": summary}))
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
        server.stop()


if __name__ == "__main__":
    main()
