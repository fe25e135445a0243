"""What the end-to-end benchmarks share: the bridge as real processes, and figures.

Process management is `tests/support/cluster.py`'s `Cluster` (redis with
AOF, the sandbox LMS, the API and N workers, each its own process); this
module only sets it up the way the benchmarks want it (`bench_cluster`):
production worker settings instead of the tests' short sweep ones, the
sandbox's rate limit and latency, `WORKER_MAX_JOBS`, and optionally arq's
`poll_delay` (`WORKER_POLL_DELAY`).

On top of it: many SCIM callers each on its own connection
(`create_users`), the bridge's queue figures straight from Redis, CPU
accounting per process (this machine has 2 cores and is shared), and
percentiles and a table printer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import shutil
import signal
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from redis.asyncio import Redis

from core.settings import Settings
from shadow import keys
from tests.support.cluster import PATCH_OP, SCIM_JSON, Cluster, ClusterOptions, entra_user
from worker.queue import QUEUE_NAME

__all__ = [
    "BenchCluster",
    "Cluster",
    "ClusterSpec",
    "CreateRun",
    "add_common_args",
    "bench_cluster",
    "bridge_counts",
    "check_alive",
    "cpu_report",
    "cpu_seconds",
    "create_users",
    "created_count",
    "event_times",
    "job_phases",
    "org_stats",
    "percentile",
    "print_cpu",
    "print_table",
    "progress_printer",
    "redis_ping_ms",
    "scim_client",
    "spec_from_args",
    "stamp",
    "summary_ms",
    "title_patch",
    "user_body",
    "verdict",
    "wait_for",
]

#: The bridge's production worker settings (core/settings.py), instead of the
#: short sweep settings tests/support/cluster.py gives its workers.
PRODUCTION_WORKER_ENV = {
    "WORKER_SWEEP_INTERVAL": "30",
    "WORKER_SWEEP_GRACE": "60",
    "WORKER_JOB_TIMEOUT": "120",
}


@dataclass(frozen=True)
class ClusterSpec:
    """What to start: the sandbox's knobs and the workers' concurrency."""

    workers: int = 2
    max_jobs: int = 50
    latency_ms: float = 20.0
    rate: float = 200.0
    burst: int = 200
    #: arq's poll_delay for the workers (WORKER_POLL_DELAY); None keeps the
    #: bridge's default (core/settings.py `poll_delay_s`).
    poll_delay: float | None = None
    #: Redis's AOF fsync policy. tests/support/cluster.py starts Redis with
    #: `always`; docs/operations.md allows `everysec` or `always` in production.
    appendfsync: str = "always"

    def worker_env(self) -> dict[str, str]:
        env = {"WORKER_MAX_JOBS": str(self.max_jobs)}
        if self.poll_delay is not None:
            env["WORKER_POLL_DELAY"] = str(self.poll_delay)
        return env

    def describe(self) -> dict[str, Any]:
        default = Settings().poll_delay_s
        return {
            "workers": self.workers,
            "worker_max_jobs": self.max_jobs,
            "poll_delay_s": self.poll_delay if self.poll_delay is not None else default,
            "poll_delay_is_default": self.poll_delay is None or self.poll_delay == default,
            "sandbox_latency_ms": self.latency_ms,
            "sandbox_rate": self.rate,
            "sandbox_burst": self.burst,
            "api_processes": 1,
            "redis": f"AOF on, appendfsync {self.appendfsync}",
            "log_level": "INFO (the default)",
            "cpus": os.cpu_count(),
        }


class BenchCluster(Cluster):
    """The tests' cluster, knowing the spec it was started with."""

    spec: ClusterSpec = ClusterSpec()


@contextlib.asynccontextmanager
async def bench_cluster(spec: ClusterSpec) -> AsyncIterator[BenchCluster]:
    """A started cluster for `spec`, stopped (every process) on the way out,
    also on SIGTERM; its logs are printed when the benchmark failed."""
    workdir = Path(tempfile.mkdtemp(prefix="scim-bench-"))
    options = ClusterOptions(
        workers=spec.workers,
        knobs={"latency_ms": spec.latency_ms, "rate": spec.rate, "burst": spec.burst},
        worker_env={**PRODUCTION_WORKER_ENV, **spec.worker_env()},
        # These measure the pipeline behind the API: one tenant sends far more
        # than its default SCIM request rate (bench/load.py keeps it on).
        api_env={"BRIDGE_SCIM_RATE_LIMIT": "off"},
    )
    cluster = BenchCluster(workdir, options)
    cluster.spec = spec
    previous = signal.signal(signal.SIGTERM, _raise_exit)
    try:
        await cluster.start()
        await cluster.redis.config_set("appendfsync", spec.appendfsync)
        yield cluster
    except Exception:
        cluster.dump_logs(sys.stderr)  # a failed run: show what the processes said
        raise
    finally:
        await cluster.stop()
        for proc in cluster.processes():  # belt and braces: nothing outlives the run
            if proc.alive:
                proc.kill()
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(workdir, ignore_errors=True)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def check_alive(cluster: Cluster) -> None:
    dead = [p.describe() for p in cluster.processes() if not p.alive]
    if dead:
        raise RuntimeError(f"bridge process(es) exited early: {'; '.join(dead)}")


# -- SCIM side ---------------------------------------------------------------


def user_body(tenant: str, i: int) -> dict[str, Any]:
    """User `i` of a tenant, shaped like Entra's create (tests/support/cluster.py)."""
    return entra_user(
        f"user{i:06d}@{tenant}.example",
        given="Bench",
        family=f"User {i}",
        title="Engineer",
        department="Sales",
        company="Contoso",
        external_id=f"{tenant}-ext-{i:06d}",
    )


def title_patch(title: str) -> dict[str, Any]:
    """Entra's PATCH for one changed attribute (its capitalised `Replace`)."""
    op = {"op": "Replace", "path": "title", "value": title}
    return {"schemas": [PATCH_OP], "Operations": [op]}


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client (unused on plain HTTP): building one
    per client costs ~30 ms of CPU each, enough to stall 32 clients' start."""
    return ssl.create_default_context()


def scim_client(
    cluster: Cluster, tenant: str, token: str, connections: int = 1
) -> httpx.AsyncClient:
    """One keep-alive connection to the tenant's SCIM base. The benchmarks use
    one client per concurrent caller: one httpx pool shared by 32 callers
    topped out near 200 requests a second here (its pool bookkeeping, with
    the API mostly idle), which would make the client the bottleneck."""
    return httpx.AsyncClient(
        base_url=f"{cluster.api_url}/scim/{tenant}/v2",
        headers={"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON},
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=60.0,
        verify=_tls(),
    )


@dataclass
class CreateRun:
    """What a batch of SCIM creates gave back (filled while it runs)."""

    first_sent: float = 0.0
    last_acked: float = 0.0
    ids: dict[int, str] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)  # status -> count
    latencies: list[float] = field(default_factory=list)

    @property
    def acked(self) -> int:
        return len(self.ids)


async def create_users(
    cluster: Cluster,
    tenant: str,
    token: str,
    numbers: range,
    concurrency: int,
    run: CreateRun | None = None,
) -> CreateRun:
    """POST /Users for each number from `concurrency` callers at once, each on
    its own connection; fills `run` as it goes (so a caller can watch it)."""
    run = run or CreateRun()
    todo = iter(numbers)

    async def caller() -> None:
        async with scim_client(cluster, tenant, token) as client:
            for i in todo:
                body = user_body(tenant, i)
                sent = time.time()
                if not run.first_sent:
                    run.first_sent = sent
                r = await client.post("/Users", json=body)
                done = time.time()
                run.latencies.append(done - sent)
                if r.status_code == 201:
                    run.ids[i] = r.json()["id"]
                    run.last_acked = done
                else:
                    run.errors[r.status_code] = run.errors.get(r.status_code, 0) + 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return run


# -- the sandbox and the bridge's own figures ---------------------------------


async def org_stats(cluster: Cluster, org: str) -> dict[str, Any]:
    """The sandbox's request counts for one organisation."""
    empty: dict[str, Any] = {"total": 0, "by_status": {}, "by_route": {}, "routes": {}}
    found: dict[str, Any] = (await cluster.sandbox_stats()).get("orgs", {}).get(org, empty)
    return found


def created_count(stats: dict[str, Any]) -> int:
    """Learners the sandbox created (201s to POST /learners) in `org_stats`."""
    return int(stats["routes"].get("POST /api/v1/learners", {}).get("201", 0))


async def bridge_counts(redis: Redis, tenant: str) -> dict[str, int]:
    """The tenant's pending/synced/failed users and the arq queue's depth."""
    async with redis.pipeline(transaction=False) as pipe:
        for state in ("pending", "synced", "failed"):
            pipe.zcard(keys.state_set(tenant, state))
        pipe.zcard(QUEUE_NAME)
        pipe.zcount(QUEUE_NAME, "-inf", int(time.time() * 1000))
        pending, synced, failed, depth, due = await pipe.execute()
    return {
        "pending": int(pending),
        "synced": int(synced),
        "failed": int(failed),
        "queue_depth": int(depth),
        "queue_due_now": int(due),
    }


async def wait_for(
    check: Callable[[], Awaitable[bool]], within: float, interval: float = 0.1
) -> bool:
    """Poll `check` until it is true (True) or `within` seconds pass (False)."""
    deadline = time.monotonic() + within
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)


def stamp(text: str) -> float:
    """The sandbox's RFC 3339 UTC time (microseconds) as epoch seconds."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


async def event_times(redis: Redis, tenant: str, user_id: str) -> list[tuple[float, str]]:
    """The user's provisioning log as (epoch seconds of the stream id, event)."""
    rows = await redis.xrange(keys.events(tenant, user_id))
    return [
        (int(eid.decode().split("-")[0]) / 1000, fields[b"event"].decode()) for eid, fields in rows
    ]


async def job_phases(redis: Redis, tenant: str, user_ids: list[str]) -> dict[str, Any]:
    """Where the workers' time went, from the users' provisioning logs: per
    job, start -> LMS answer (pacing wait plus the call) and LMS answer ->
    done (recording the outcome); plus deferrals and jobs per user."""
    to_lms, to_done, total = [], [], []
    deferred = jobs = 0
    for uid in user_ids:
        events = await event_times(redis, tenant, uid)
        deferred += sum(1 for _, e in events if e == "deferred")
        starts = [t for t, e in events if e == "job_started"]
        jobs += len(starts)
        lms = [t for t, e in events if e == "lms"]
        done = [t for t, e in events if e in ("synced", "failed")]
        if starts and lms and done:
            to_lms.append(lms[-1] - starts[-1])
            to_done.append(done[-1] - lms[-1])
            total.append(done[-1] - starts[-1])
    n = max(1, len(user_ids))
    return {
        "sampled_users": len(user_ids),
        "start_to_lms_answer_ms": summary_ms(to_lms),
        "lms_answer_to_done_ms": summary_ms(to_done),
        "job_ms": summary_ms(total),
        "jobs_per_user": round(jobs / n, 3),
        "deferrals_per_user": round(deferred / n, 3),
    }


async def redis_ping_ms(redis: Redis) -> float:
    """One PING's round trip: with `appendfsync always` it includes the fsync
    of whatever the other clients wrote in the same event-loop turn."""
    start = time.perf_counter()
    await redis.ping()
    return round((time.perf_counter() - start) * 1000, 2)


def add_common_args(p: argparse.ArgumentParser) -> None:
    """The cluster's knobs, the same in every benchmark."""
    p.add_argument("--rate", type=float, default=200.0, help="LMS requests a second (both sides)")
    p.add_argument("--burst", type=int, default=200, help="LMS burst (both sides)")
    p.add_argument("--latency-ms", type=float, default=20.0, help="sandbox latency per answer")
    p.add_argument("--workers", type=int, default=2, help="worker processes")
    p.add_argument("--max-jobs", type=int, default=50, help="WORKER_MAX_JOBS per worker")
    p.add_argument(
        "--poll-delay",
        type=float,
        default=None,
        help="arq poll_delay of the workers (WORKER_POLL_DELAY; default: the bridge's)",
    )
    p.add_argument(
        "--appendfsync",
        choices=("always", "everysec"),
        default="always",
        help="Redis AOF fsync policy (default: always, as tests/support/cluster.py)",
    )


def spec_from_args(args: argparse.Namespace) -> ClusterSpec:
    return ClusterSpec(
        workers=args.workers,
        max_jobs=args.max_jobs,
        latency_ms=args.latency_ms,
        rate=args.rate,
        burst=args.burst,
        poll_delay=args.poll_delay,
        appendfsync=args.appendfsync,
    )


# -- CPU -----------------------------------------------------------------------


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_times(pid: int) -> tuple[float, float]:
    """(CPU seconds, seconds runnable but waiting for a CPU) of a process so
    far, from /proc (Linux): utime + stime of /proc/<pid>/stat, and the run
    queue wait of each of its threads (/proc/<pid>/task/*/schedstat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    waited = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            waited += int(task.read_text().split()[1])
    return cpu, waited / 1e9


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (user, nice, system, irq, softirq)."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in first[1:8])
    return (user + nice + system + irq + softirq) / _TICK


def cpu_seconds(cluster: Cluster) -> dict[str, tuple[float, float]]:
    """(CPU seconds used, seconds waiting for a CPU) so far, for each bridge
    process, this benchmark process ("bench client"), and the whole machine
    ("machine": busy CPU seconds, and 0). Empty where /proc is not there."""
    pids = {p.name: p.pid for p in cluster.processes() if p.alive}
    pids["bench client"] = os.getpid()
    out: dict[str, tuple[float, float]] = {}
    try:
        out["machine"] = (_machine_busy_s(), 0.0)
    except (OSError, ValueError):
        return {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError, ValueError, IndexError):
            out[name] = _proc_times(pid)
    return out


def cpu_report(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]], wall: float
) -> dict[str, Any]:
    """Per process over `wall` seconds: cores used, and the share of the time
    it waited for a CPU while runnable; ours and the machine's totals."""
    wall = max(wall, 1e-9)
    cores = os.cpu_count() or 1
    if "machine" not in before or "machine" not in after:
        return {"cores": cores, "wall_s": round(wall, 1), "unavailable": True}
    names = [n for n in after if n != "machine" and n in before]
    used = {n: after[n][0] - before[n][0] for n in names}
    waited = {n: after[n][1] - before[n][1] for n in names}
    ours = sum(used.values())
    machine = after["machine"][0] - before["machine"][0]
    order = sorted(names, key=lambda n: -used[n])
    return {
        "cores": cores,
        "wall_s": round(wall, 1),
        "ours_share_of_machine": round(ours / (wall * cores), 2),
        "machine_busy_share": round(machine / (wall * cores), 2),
        "others_cores": round(max(0.0, machine - ours) / wall, 2),
        "per_process_cores": {n: round(used[n] / wall, 2) for n in order},
        "per_process_cpu_wait_share": {n: round(waited[n] / wall, 2) for n in order},
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def print_cpu(cpu: dict[str, Any]) -> None:
    if cpu.get("unavailable"):
        print(f"\nCPU note: {cpu['cores']} cores; per-process figures need Linux's /proc.")
        return
    per = ", ".join(
        f"{n} {v:.2f} (waited {cpu['per_process_cpu_wait_share'][n]:.0%})"
        for n, v in cpu["per_process_cores"].items()
    )
    print(
        f"\nCPU note: this machine has {cpu['cores']} cores, shared by every process "
        f"here (redis, sandbox, API, workers and this client) and by whatever else runs "
        f"on it. Over {cpu['wall_s']} s ours used {cpu['ours_share_of_machine']:.0%} of "
        f"the machine; it was {cpu['machine_busy_share']:.0%} busy in all, other work "
        f"taking {cpu['others_cores']:.2f} cores (load average {cpu['load_avg_1m']}). "
        f"Cores used per process, and the share of the run it spent runnable but waiting "
        f"for a CPU: {per}. Where that wait is large the figures measure this box's "
        "contention, not the bridge."
    )


# -- figures -----------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def summary_ms(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean of seconds, in milliseconds."""
    if not values:
        return {}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50) * 1000, 1),
        "p90": round(percentile(values, 90) * 1000, 1),
        "p99": round(percentile(values, 99) * 1000, 1),
        "max": round(max(values) * 1000, 1),
        "mean": round(statistics.fmean(values) * 1000, 1),
    }


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    """Rows of (figure, value, target, verdict)."""
    header = ("figure", "value", "target", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = "  ".join(f"{{:{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row).rstrip())


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


@contextlib.contextmanager
def progress_printer() -> Iterator[Callable[[str], None]]:
    """A `say(text)` that prints to stderr with the seconds since it began."""
    start = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - start:6.1f}s] {text}", file=sys.stderr, flush=True)

    yield say


def run_benchmark(
    args: argparse.Namespace,
    run: Callable[[BenchCluster, argparse.Namespace], Awaitable[dict[str, Any]]],
    report: Callable[[dict[str, Any]], None],
) -> None:
    """Start the cluster `args` describe, run one benchmark in it, stop it,
    then print the report and the JSON line."""

    async def in_cluster() -> dict[str, Any]:
        async with bench_cluster(spec_from_args(args)) as cluster:
            return await run(cluster, args)

    result = asyncio.run(in_cluster())
    report(result)
    print(json.dumps(result))
