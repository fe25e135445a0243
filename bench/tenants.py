"""Ten thousand tenants on one deployment: what an idle tenant costs.

Starts redis, the LMS sandbox, one API process and one worker
(bench/harness.py), creates `--busy` tenants (200) with `--users` users
each through SCIM and lets them sync, then measures with an Entra-like
trickle of SCIM traffic running (PATCHes and userName lookups spread over
the busy tenants, `--rate` a second):

- the admin list's first page, `GET /admin/v1/tenants` (p50 of 30);
- a `/metrics` scrape's time (p50 of 10) and size;
- SCIM p50/p99 of the trickle;
- the sweep's duration (`sweep_round`, as its cron runs it);
- Redis memory.

Then it adds idle tenants (each with a SCIM token, created straight through
the shadow store) up to `--tenants` (10,000) and measures the same again.
The first column is the same-run baseline; beside them, what the same step
cost before the index of tenants with work, measured in this run on the
same data (every tenant's health read per request, as the list, the scrape
and the sweep used to). Prints a table, then one JSON line. Never asserts.

    .venv/bin/python -m bench.tenants                    # 10,000 tenants, 200 busy
    .venv/bin/python -m bench.tenants --tenants 2000     # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from arq.connections import RedisSettings, create_pool

from bench.harness import BenchCluster, CreateRun, create_users, percentile, wait_for
from core.settings import Settings
from ops.views import tenant_health
from shadow import Tenant, TenantStore, keys
from shadow.work import read_figures
from tests.support.api import METRICS_TOKEN, SECRET_KEY
from tests.support.cluster import ClusterOptions
from worker.deps import WorkerDeps
from worker.sweep import sweep_budget_s, sweep_round, sweep_tenants

OPERATOR = "bench-operator-token-0123456789abcdef"
OP = {"Authorization": f"Bearer {OPERATOR}"}
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}
GENEROUS = 100_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tenants", type=int, default=10_000)
    p.add_argument("--busy", type=int, default=200)
    p.add_argument("--users", type=int, default=20, help="users per busy tenant")
    p.add_argument("--rate", type=float, default=40.0, help="trickle SCIM requests a second")
    return p.parse_args(argv)


@contextlib.asynccontextmanager
async def cluster_up() -> AsyncIterator[BenchCluster]:
    workdir = Path(tempfile.mkdtemp(prefix="scim-bench-tenants-"))
    options = ClusterOptions(
        workers=1,
        knobs={"latency_ms": 20, "rate": GENEROUS, "burst": GENEROUS},
        api_env={"BRIDGE_SCIM_RATE_LIMIT": "off", "BRIDGE_ADMIN_TOKEN": OPERATOR},
        worker_env={"WORKER_SWEEP_INTERVAL": "30", "WORKER_SWEEP_GRACE": "60"},
    )
    cluster = BenchCluster(workdir, options)
    try:
        await cluster.start()
        await cluster.redis.config_set("appendfsync", "everysec")
        yield cluster
    finally:
        await cluster.stop()
        for proc in cluster.processes():
            if proc.alive:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


async def timed(call: Callable[[], Awaitable[Any]], times: int) -> list[float]:
    out = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        out.append(time.perf_counter() - started)
    return out


def ms(values: list[float], p: float = 50) -> float:
    return round(percentile(values, p) * 1000, 1)


class Trickle:
    """Entra-like background traffic: PATCH a title, look a user up by
    userName, spread over the busy tenants, `rate` a second."""

    def __init__(self, base: str, tenants: list[tuple[str, str, list[str]]], rate: float) -> None:
        self.base, self.tenants, self.rate = base, tenants, rate
        self.latencies: list[float] = []
        self.errors = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            senders: set[asyncio.Task[None]] = set()
            n = 0
            while not self._stop.is_set():
                n += 1
                task = asyncio.create_task(self._one(http, n))
                senders.add(task)
                task.add_done_callback(senders.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1 / self.rate)
            await asyncio.gather(*senders)

    async def _one(self, http: httpx.AsyncClient, n: int) -> None:
        slug, token, ids = random.choice(self.tenants)
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        base = f"{self.base}/scim/{slug}/v2"
        started = time.perf_counter()
        if n % 4:
            body = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Replace", "path": "title", "value": f"Role {n}"}],
            }
            r = await http.patch(f"{base}/Users/{random.choice(ids)}", json=body, headers=auth)
        else:
            r = await http.get(
                f"{base}/Users", params={"filter": 'userName eq "nobody@example.com"'}, headers=auth
            )
        self.latencies.append(time.perf_counter() - started)
        self.errors += r.status_code >= 400

    def stop(self) -> None:
        self._stop.set()


async def measure(
    cluster: BenchCluster, deps: WorkerDeps, trickle: Trickle, label: str
) -> dict[str, Any]:
    """The figures at the current number of tenants, with the trickle on."""
    background = asyncio.create_task(trickle.run())
    try:
        return await _measure(cluster, deps, trickle, label)
    finally:
        trickle.stop()
        await background


async def _measure(
    cluster: BenchCluster, deps: WorkerDeps, trickle: Trickle, label: str
) -> dict[str, Any]:
    redis = cluster.redis
    base = cluster.api_url
    async with httpx.AsyncClient(timeout=60) as http:

        async def first_page() -> None:
            r = await http.get(f"{base}/admin/v1/tenants", headers=OP)
            assert r.status_code == 200, r.text

        sizes: list[int] = []

        async def scrape() -> None:
            r = await http.get(f"{base}/metrics", headers=SCRAPE)
            assert r.status_code == 200, r.text
            sizes.append(len(r.content))

        page = await timed(first_page, 30)
        scrapes = await timed(scrape, 10)
    await asyncio.sleep(10)  # the trickle alone, so its figures are not the list's
    trickle_lat = list(trickle.latencies)
    sweep = await timed(lambda: sweep_round(deps, budget_s=sweep_budget_s(deps.settings)), 5)

    # What the same steps cost read the way they were before (every tenant).
    slugs = await deps.tenants.slugs()
    started = time.perf_counter()
    for slug in slugs:  # the list: each tenant's record and health, one by one
        await deps.tenants.get(slug)
        await tenant_health(redis, slug)
    old_list = time.perf_counter() - started
    old_scrape_read = await timed(lambda: read_figures(redis, slugs), 3)
    old_sweep = await timed(lambda: sweep_tenants(deps, slugs), 3)
    info = await redis.info("memory")
    return {
        "label": label,
        "tenants": len(slugs),
        "with_work": int(await redis.zcard(keys.TENANTS_WORK)),
        "admin_list_p50_ms": ms(page),
        "admin_list_p99_ms": ms(page, 99),
        "scrape_p50_ms": ms(scrapes),
        "scrape_bytes": max(sizes),
        "scim_p50_ms": ms(trickle_lat),
        "scim_p99_ms": ms(trickle_lat, 99),
        "scim_requests": len(trickle_lat),
        "scim_errors": trickle.errors,
        "sweep_p50_ms": ms(sweep),
        "old_list_every_tenant_ms": round(old_list * 1000, 1),
        "old_scrape_read_every_tenant_ms": ms(old_scrape_read),
        "old_sweep_every_tenant_ms": ms(old_sweep),
        "redis_used_memory": int(info["used_memory"]),
    }


async def idle_key_bytes(cluster: BenchCluster, idle: int) -> float:
    """MEMORY USAGE of an idle tenant's keys (a sample of 100) plus its
    share of the fleet's registry keys: what each idle tenant holds."""
    redis = cluster.redis
    own = []
    for i in range(0, idle, max(1, idle // 100)):
        slug = f"idle-{i:05d}"
        names = [keys.tenant_config(slug), keys.tokens(slug)]
        own.append(sum([int(await redis.memory_usage(n) or 0) for n in names]))
    fleet = [keys.TENANTS, keys.TENANT_NAMES]
    shared = sum([int(await redis.memory_usage(n) or 0) for n in fleet])
    count = int(await redis.scard(keys.TENANTS))  # type: ignore[misc]
    return round(statistics.mean(own) + shared / count, 1)


async def add_idle(store: TenantStore, first: int, count: int) -> None:
    async def one(i: int) -> None:
        slug = f"idle-{i:05d}"
        await store.create(
            Tenant(
                slug=slug,
                name=f"Idle Customer {i}",
                lms_url=f"https://lms.example.com/org/{slug}",
                lms_api_key=f"lms-key-{i:05d}-0123456789abcdef",
            )
        )
        await store.issue_token(slug, label="entra")

    for start in range(first, first + count, 200):
        await asyncio.gather(*(one(i) for i in range(start, min(first + count, start + 200))))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with cluster_up() as cluster:
        busy: list[tuple[str, str, list[str]]] = []
        for n in range(args.busy):
            slug = f"busy-{n:03d}"
            handle = await cluster.add_tenant(slug, rate=GENEROUS, burst=GENEROUS)
            done = await create_users(
                cluster, slug, handle.token, range(args.users), 4, CreateRun()
            )
            busy.append((slug, handle.token, list(done.ids.values())))
        print(f"{args.busy} busy tenants, {args.busy * args.users} users created", flush=True)

        async def synced() -> bool:
            figures = await read_figures(cluster.redis, [s for s, _, _ in busy])
            return all(f.pending == 0 for f in figures)

        await wait_for(synced, 600.0, 1.0)

        settings = Settings(
            redis_url=cluster.redis_url, secret_keys=(SECRET_KEY,), sweep_grace_s=60
        )
        queue = await create_pool(RedisSettings.from_dsn(cluster.redis_url))
        deps = WorkerDeps.open(settings, queue)
        try:
            trickle = Trickle(cluster.api_url, busy, args.rate)
            small = await measure(cluster, deps, trickle, f"{args.busy} tenants")
            print(json.dumps(small), flush=True)
            await wait_for(synced, 600.0, 1.0)  # quiet, so memory is the tenants'
            idle = args.tenants - args.busy
            await cluster.redis.execute_command("MEMORY", "PURGE")  # type: ignore[no-untyped-call]
            mem_before = await cluster.redis.info("memory")
            started = time.perf_counter()
            await add_idle(TenantStore(cluster.redis, sealer=settings.sealer()), 0, idle)
            create_s = time.perf_counter() - started
            await cluster.redis.execute_command("MEMORY", "PURGE")  # type: ignore[no-untyped-call]
            mem_after = await cluster.redis.info("memory")
            keys_each = await idle_key_bytes(cluster, idle)
            print(f"{idle} idle tenants created in {create_s:.1f} s", flush=True)
            trickle = Trickle(cluster.api_url, busy, args.rate)
            large = await measure(cluster, deps, trickle, f"{args.tenants} tenants")
            print(json.dumps(large), flush=True)
        finally:
            await deps.aclose()
            await queue.aclose()
    return {
        "bench": "tenants",
        "params": vars(args),
        "idle_tenants_created_per_s": round(idle / create_s, 1),
        "redis_bytes_per_idle_tenant": round(
            (mem_after["used_memory"] - mem_before["used_memory"]) / idle, 1
        ),
        "redis_dataset_bytes_per_idle_tenant": round(
            (mem_after["used_memory_dataset"] - mem_before["used_memory_dataset"]) / idle, 1
        ),
        "redis_key_bytes_per_idle_tenant": keys_each,
        "runs": [small, large],
    }


def report(result: dict[str, Any]) -> None:
    small, large = result["runs"]
    rows = [
        ("admin list first page p50 (ms)", "admin_list_p50_ms", "<= 100"),
        ("  before: every tenant read (ms)", "old_list_every_tenant_ms", ""),
        ("/metrics scrape p50 (ms)", "scrape_p50_ms", "<= 300"),
        ("/metrics size (bytes)", "scrape_bytes", "<= 1,000,000"),
        ("  before: every tenant's figures read (ms)", "old_scrape_read_every_tenant_ms", ""),
        ("SCIM trickle p50 (ms)", "scim_p50_ms", ""),
        ("SCIM trickle p99 (ms)", "scim_p99_ms", ""),
        ("sweep run p50 (ms)", "sweep_p50_ms", ""),
        ("  before: every tenant swept (ms)", "old_sweep_every_tenant_ms", ""),
        ("tenants with work", "with_work", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {small['label']:>14}  {large['label']:>16}  target")
    for name, key, target in rows:
        print(f"{name:<{width}}  {small[key]!s:>14}  {large[key]!s:>16}  {target}")
    print(
        f"Redis per idle tenant: {result['redis_bytes_per_idle_tenant']} bytes of used_memory "
        f"({result['redis_dataset_bytes_per_idle_tenant']} of it dataset), "
        f"{result['redis_key_bytes_per_idle_tenant']} bytes by MEMORY USAGE (target <= 2048); "
        f"idle tenants created at {result['idle_tenants_created_per_s']}/s"
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    report(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
