"""Noisy neighbour: other tenants' latency while one tenant floods the API.

Starts a throwaway redis-server and one API process (`scim-bridge api`, as in
production, default limits) and writes straight into Redis `--quiet` tenants
(default 5) and one noisy tenant, `--users` users each (default 1,000). Each
quiet tenant sends Entra's lookups (`GET /Users?filter=userName eq "..."`)
at `--rate` requests a second (default 20), open loop. Phases of
`--seconds` each (default 15): quiet tenants alone, then `--rounds` times
(default 3) with the noisy tenant flooding and alone again, so that each
flood's baseline is measured either side of it on this shared machine.
The flood, from a process of its own, is `--scans` loops (default 8) of
full-scan filters (`GET /Users?filter=title co "e"`, which no index
answers) and `--gets` loops (default 8) of `GET /Users/<id>`, each sending
its next request as soon as it has an answer; a 429 is waited out for its
Retry-After, as Entra and Okta do (`--ignore-retry-after`: a client that
does not, sending again at once).

Prints the quiet tenants' p50/p99 in each phase, their p99 under each flood
over the mean of the two phases alone beside it and the median of those
ratios (target at most 2x), their failures (target none), the noisy
tenant's answers by status (429s expected), 5xx (target none), then one
JSON line. It never asserts.

    .venv/bin/python -m bench.noisy_neighbour
    .venv/bin/python -m bench.noisy_neighbour --seconds 10 --ignore-retry-after
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import multiprocessing.queues
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from redis.asyncio import Redis

from bench.api_bench import wait_http
from bench.harness import _machine_busy_s, _proc_times, percentile
from shadow import ResourceStore, Tenant, TenantStore
from tests.support.redis_server import free_port, start_redis

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
NOISY = "noisy"
TARGET_RATIO = 2.0
SCAN_FILTER = 'title co "e"'


def user_doc(tenant: str, n: int) -> dict[str, Any]:
    email = f"user{n}@{tenant}.example"
    return {
        "schemas": [USER_SCHEMA],
        "userName": email,
        "active": True,
        "title": "Engineer",
        "name": {"givenName": "User", "familyName": f"Number {n}"},
        "emails": [{"value": email, "type": "work", "primary": True}],
    }


async def seed(redis_url: str, tenants: list[str], users: int) -> dict[str, tuple[str, list[str]]]:
    """Each tenant (default limits) with its users, written as the API
    writes them; tenant -> (token, user ids)."""
    redis = Redis.from_url(redis_url)
    seeded: dict[str, tuple[str, list[str]]] = {}
    try:
        store = TenantStore(redis)
        resources = ResourceStore(redis, recent_size=1)
        for slug in tenants:
            await store.create(
                Tenant(
                    slug=slug, name=slug, lms_url=f"http://127.0.0.1:9/org/{slug}", lms_api_key="k"
                )
            )
            ids = [str(uuid.uuid4()) for _ in range(users)]
            for start in range(0, users, 500):
                await asyncio.gather(
                    *(
                        resources.write(slug, "u", rid, "create", user_doc(slug, start + i))
                        for i, rid in enumerate(ids[start : start + 500])
                    )
                )
            seeded[slug] = ((await store.issue_token(slug)).token, ids)
        return seeded
    finally:
        await redis.aclose()


class Phase:
    """What one phase measured."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.quiet_ms: list[float] = []
        self.quiet_status: Counter[int] = Counter()
        self.noisy_status: Counter[int] = Counter()
        #: The API process's CPU share, its share waiting for a CPU, and the
        #: machine's busy cores, over the phase.
        self.api_cpu = self.api_waited = self.machine_cores = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "quiet_requests": len(self.quiet_ms),
            "quiet_p50_ms": round(percentile(self.quiet_ms, 50), 2) if self.quiet_ms else None,
            "quiet_p99_ms": round(percentile(self.quiet_ms, 99), 2) if self.quiet_ms else None,
            "quiet_statuses": {str(k): v for k, v in sorted(self.quiet_status.items())},
            "noisy_statuses": {str(k): v for k, v in sorted(self.noisy_status.items())},
            "api_cpu": round(self.api_cpu, 2),
            "api_waited_for_cpu": round(self.api_waited, 2),
            "machine_busy_cores": round(self.machine_cores, 2),
        }


async def quiet_load(
    http: httpx.AsyncClient, slug: str, token: str, rate: float, until: float, phase: Phase
) -> None:
    """Entra's lookups at `rate` a second, open loop (a slow answer does not
    delay the next request)."""
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(slug)
    pending: set[asyncio.Task[None]] = set()

    async def one() -> None:
        flt = quote(f'userName eq "user{rng.randrange(1000)}@{slug}.example"')
        started = time.perf_counter()
        try:
            answer = await http.get(f"/scim/{slug}/v2/Users?filter={flt}", headers=headers)
            status = answer.status_code
        except httpx.HTTPError:
            status = -1
        phase.quiet_ms.append((time.perf_counter() - started) * 1000)
        phase.quiet_status[status] += 1

    next_at = time.monotonic() + rng.random() / rate
    while next_at < until:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        task = asyncio.create_task(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
        next_at += 1 / rate
    await asyncio.gather(*pending)


async def flood_loop(
    http: httpx.AsyncClient,
    token: str,
    paths: list[str],
    until: float,
    phase: Phase,
    honour_retry_after: bool,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random()
    while time.monotonic() < until:
        try:
            answer = await http.get(rng.choice(paths), headers=headers)
            status = answer.status_code
        except httpx.HTTPError:
            status, answer = -1, None
        phase.noisy_status[status] += 1
        if status == 429 and honour_retry_after and answer is not None:
            wait = float(answer.headers.get("Retry-After", "1"))
            await asyncio.sleep(min(wait, max(0.0, until - time.monotonic())))


async def flood(
    base: str, token: str, ids: list[str], seconds: float, args: argparse.Namespace
) -> Counter[int]:
    """The noisy tenant's loops; its answers by status."""
    phase = Phase("flood")
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        until = time.monotonic() + seconds
        scan = [f"/scim/{NOISY}/v2/Users?filter={quote(SCAN_FILTER)}&count=100"]
        gets = [f"/scim/{NOISY}/v2/Users/{rid}" for rid in ids]
        honour = not args.ignore_retry_after
        await asyncio.gather(
            *(flood_loop(http, token, scan, until, phase, honour) for _ in range(args.scans)),
            *(flood_loop(http, token, gets, until, phase, honour) for _ in range(args.gets)),
        )
    return phase.noisy_status


def flood_process(
    base: str,
    token: str,
    ids: list[str],
    seconds: float,
    args: argparse.Namespace,
    out: multiprocessing.queues.Queue[dict[int, int]],
) -> None:
    """The flood in a process of its own, at a lower CPU priority: the noisy
    tenant's IdP runs elsewhere, so its client work must not delay the quiet
    tenants' client or the API for the CPUs of this machine."""
    os.nice(10)
    out.put(dict(asyncio.run(flood(base, token, ids, seconds, args))))


async def run_phase(
    name: str,
    base: str,
    seeded: dict[str, tuple[str, list[str]]],
    args: argparse.Namespace,
    *,
    with_flood: bool,
) -> Phase:
    phase = Phase(name)
    spawn = multiprocessing.get_context("spawn")
    flooder = None
    if with_flood:
        out: multiprocessing.queues.Queue[dict[int, int]] = spawn.Queue()
        token, ids = seeded[NOISY]
        flooder = spawn.Process(
            target=flood_process, args=(base, token, ids, args.seconds, args, out)
        )
        flooder.start()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        until = time.monotonic() + args.seconds
        await asyncio.gather(
            *(
                quiet_load(http, slug, token, args.rate, until, phase)
                for slug, (token, _) in seeded.items()
                if slug != NOISY
            )
        )
    if flooder is not None:
        phase.noisy_status.update(await asyncio.to_thread(out.get))
        flooder.join()
    return phase


def measured(
    pid: int,
    name: str,
    base: str,
    seeded: dict[str, tuple[str, list[str]]],
    args: argparse.Namespace,
    with_flood: bool,
) -> Phase:
    """A phase, with the API's CPU use and wait for a CPU over it: where the
    wait is large, the latencies measure this machine's other work."""
    cpu, waited = _proc_times(pid)
    busy, started = _machine_busy_s(), time.monotonic()
    phase = asyncio.run(run_phase(name, base, seeded, args, with_flood=with_flood))
    wall = time.monotonic() - started
    cpu_after, waited_after = _proc_times(pid)
    phase.api_cpu = (cpu_after - cpu) / wall
    phase.api_waited = (waited_after - waited) / wall
    phase.machine_cores = (_machine_busy_s() - busy) / wall
    return phase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", type=int, default=5, help="quiet tenants")
    parser.add_argument("--users", type=int, default=1_000, help="users per tenant")
    parser.add_argument(
        "--rate", type=float, default=20.0, help="lookups a second per quiet tenant"
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase")
    parser.add_argument("--scans", type=int, default=8, help="noisy full-scan loops")
    parser.add_argument("--gets", type=int, default=8, help="noisy GET loops")
    parser.add_argument("--rounds", type=int, default=3, help="floods, each between two alones")
    parser.add_argument("--ignore-retry-after", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="scim-noisy-"))
    server = start_redis(workdir)
    port = free_port()
    env = {**os.environ, "REDIS_URL": server.url, "LOG_LEVEL": "ERROR", "PORT": str(port)}
    env.setdefault("BRIDGE_SECRET_KEY", secrets.token_urlsafe(32))  # a throwaway one
    env.pop("BRIDGE_SCIM_RATE_LIMIT", None)  # the limits are what is measured
    api = subprocess.Popen([sys.executable, "-m", "cli", "api"], env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/healthz")
        tenants = [f"quiet{n}" for n in range(args.quiet)] + [NOISY]
        seeded = asyncio.run(seed(server.url, tenants, args.users))
        warm = argparse.Namespace(**{**vars(args), "seconds": 3.0})
        asyncio.run(run_phase("warm-up", base, seeded, warm, with_flood=False))
        phases = [measured(api.pid, "alone 1", base, seeded, args, False)]
        for n in range(1, args.rounds + 1):
            phases.append(measured(api.pid, f"flood {n}", base, seeded, args, True))
            phases.append(measured(api.pid, f"alone {n + 1}", base, seeded, args, False))
    finally:
        api.terminate()
        api.wait(10)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report(phases, args)


def report(phases: list[Phase], args: argparse.Namespace) -> None:
    """Each round's ratio: the flood's p99 over the mean of the two phases
    alone either side of it (this machine's load drifts); the median ratio."""
    summaries = {p.name: p.summary() for p in phases}
    ratios = []
    for n in range(1, args.rounds + 1):
        before, during, after = phases[2 * n - 2], phases[2 * n - 1], phases[2 * n]
        alone = (summaries[before.name]["quiet_p99_ms"] + summaries[after.name]["quiet_p99_ms"]) / 2
        ratios.append(summaries[during.name]["quiet_p99_ms"] / alone)
    ratio = statistics.median(ratios)
    quiet_failed = sum(n for p in phases for status, n in p.quiet_status.items() if status != 200)
    noisy: Counter[int] = Counter()
    for p in phases:
        noisy.update(p.noisy_status)
    fivexx = sum(
        n for p in phases for s, n in (p.quiet_status + p.noisy_status).items() if s >= 500
    )
    for p in phases:
        s = summaries[p.name]
        print(
            f"{p.name:<9} quiet tenants: {s['quiet_requests']:6,} lookups, "
            f"p50 {s['quiet_p50_ms']:7.2f} ms, p99 {s['quiet_p99_ms']:7.2f} ms, "
            f"statuses {s['quiet_statuses']}"
            + (f"; noisy {s['noisy_statuses']}" if p.noisy_status else "")
        )
        print(
            f"{'':9} API on a CPU {p.api_cpu:.0%} of the phase, waiting for one "
            f"{p.api_waited:.0%}; machine busy {p.machine_cores:.2f} cores of {os.cpu_count()}"
        )
    print(
        f"quiet p99 under the flood over alone, per round: "
        f"{', '.join(f'x{r:.2f}' for r in ratios)}; median x{ratio:.2f} "
        f"(target at most x{TARGET_RATIO:g}) {'met' if ratio <= TARGET_RATIO else 'MISSED'}"
    )
    print(
        f"quiet requests failed: {quiet_failed} (target 0); noisy tenant's answers "
        f"{dict(sorted(noisy.items()))} ({noisy.get(429, 0):,} 429s); 5xx: {fivexx} (target 0)"
    )
    print(
        json.dumps(
            {
                "bench": "noisy_neighbour",
                "honour_retry_after": not args.ignore_retry_after,
                "phases": summaries,
                "quiet_p99_ratios": [round(r, 2) for r in ratios],
                "quiet_p99_ratio": round(ratio, 2),
                "quiet_failed": quiet_failed,
                "noisy_429": noisy.get(429, 0),
                "http_5xx": fivexx,
            }
        )
    )


if __name__ == "__main__":
    main()
