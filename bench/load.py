"""Load: many tenants of Entra-like traffic for minutes, then faults during it.

Starts the bridge as real processes (tests/support/cluster.py: redis with
AOF and `appendfsync always`, the sandbox LMS, `--apis` API processes and
`--workers` workers; defaults 2 and 2 for this 2-core machine) and
`--tenants` tenants (default 50), each with its own LMS organisation limited
to `--lms-rate` requests a second (default 10, about what a tenant's changes
need once its users are many: the LMS runs at its limit; the tenant paces at
the same figure). Entra's initial cycle creates `--initial-users` users per
tenant first (default 100). Each tenant then sends
Entra-like provisioning traffic at `--rate` requests a second (default 25,
Microsoft's figure for gallery apps), open loop, at most `--inflight`
requests of it at once (Entra's own concurrency), one change at a time per
user (Entra serialises a user's changes):

- create: `GET /Users?filter=userName eq "..."` (query before create), then
  POST; a 409 after a retried POST is looked up by userName (Entra's way);
- update (query, then one PATCH of title/department/family name), rename
  (a new email and userName), disable and re-enable (`active`), delete.

Transport errors, 5xx and 429 answers are retried a second later, as Entra
retries later, until answered. The generator keeps the newest acknowledged
state of every user, and after each phase, once the bridge has nothing left
pending, compares every organisation's learners with it: one learner per
user with exactly the newest fields and status, no duplicate learner, no
learner of a user that never was, nothing failed.

Phases (each loads for a while, stops, waits for convergence, verifies):

1. `baseline` (`--duration`, default 180 s; `--quick` 20 s): the API's
   p50/p99, 5xx count (must be 0), Redis memory per user (INFO
   used_memory / users), worker and API RSS over time, convergence.
2. Faults one at a time, then `all` together: `workers` (a worker SIGKILLed
   and restarted every `--kill-every` seconds), `api` (an API process
   SIGKILLed, restarted a second later), `redis` (SIGKILLed, down
   `--redis-down` seconds, restarted from its AOF: the API must answer 503
   with a SCIM error meanwhile, never a 2xx), `lms` (every LMS request
   answered 503 for `--lms-down` seconds, default 60).

Prints a table per phase, the process counts, a CPU note, then one JSON
line. It never asserts: the verdicts are printed.

    .venv/bin/python -m bench.load              # 50 tenants x 25 req/s: 3 min, then faults
    .venv/bin/python -m bench.load --quick      # 20 s phases, shorter outages
    .venv/bin/python -m bench.load --phases baseline,redis --tenants 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec

from bench.harness import cpu_report, cpu_seconds, percentile, print_cpu, print_table, verdict
from shadow import ResourceStore, keys
from shadow.breaker import BreakerConfig, set_config
from tests.support.cluster import (
    ENTERPRISE,
    PATCH_OP,
    SCIM_JSON,
    USER_SCHEMA,
    Cluster,
    ClusterOptions,
    duplicate_learners,
    learner_view,
)
from worker.queue import QUEUE_NAME

FAULTS = ("workers", "api", "redis", "lms")
PHASES = ("baseline", *FAULTS, "all")
#: (operation, weight, requests it makes)
MIX = (
    ("create", 0.25, 2),
    ("update", 0.40, 2),
    ("rename", 0.05, 2),
    ("disable", 0.10, 2),
    ("enable", 0.05, 2),
    ("delete", 0.10, 1),
    ("query", 0.05, 1),
)
REQUESTS_PER_OP = sum(w * n for _, w, n in MIX) / sum(w for _, w, _ in MIX)
RETRY_AFTER_S = 1.0
REQUEST_TIMEOUT_S = 30.0
COMPANY = "Contoso"

_encode = msgspec.json.encode
_decode = msgspec.json.decode


# -- a lean HTTP/1.1 client ------------------------------------------------------------
#
# 1,250 requests a second from one Python process: httpx's pool bookkeeping
# tops out far below that here (bench/harness.py), so each tenant keeps a
# few raw keep-alive connections instead.


class HttpError(Exception):
    """The connection failed, closed or timed out: a transport error."""


#: uvicorn closes a keep-alive connection idle for 5 s; a client must not
#: reuse one that old (httpx and browsers retry such a request at once).
MAX_IDLE_S = 4.0


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.idle_since = 0.0

    async def request(
        self, method: str, target: str, headers: bytes, body: bytes | None
    ) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                assert self.reader is not None
                length = b"Content-Length: %d\r\n" % len(body) if body is not None else b""
                self.writer.write(
                    f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n".encode()
                    + headers
                    + length
                    + b"\r\n"
                    + (body or b"")
                )
                await self.writer.drain()
                head = await self.reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                fields = {}
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    fields[name.strip().lower()] = value.strip()
                if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
                    payload = await self._chunked()
                else:
                    payload = await self.reader.readexactly(int(fields.get(b"content-length", 0)))
                if fields.get(b"connection", b"").lower() == b"close":
                    self.close()
                return status, payload
        except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            self.close()
            raise HttpError(repr(exc)) from exc
        except asyncio.LimitOverrunError as exc:
            self.close()
            raise HttpError(repr(exc)) from exc

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        out = b""
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return out
            out += chunk[:-2]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# -- the model: what Entra last told the bridge ------------------------------------------


@dataclass
class Person:
    n: int
    email: str
    given: str
    family: str
    title: str
    department: str
    active: bool = True
    deleted: bool = False
    scim_id: str = ""
    busy: bool = False
    #: A change that was never answered (its outcome unknown): left out of the check.
    uncertain: bool = False

    def body(self) -> dict[str, Any]:
        return {
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "externalId": f"ext-{self.n}",
            "userName": self.email,
            "active": self.active,
            "displayName": f"{self.given} {self.family}",
            "name": {"givenName": self.given, "familyName": self.family},
            "emails": [{"primary": True, "type": "work", "value": self.email}],
            "title": self.title,
            ENTERPRISE: {"department": self.department, "organization": COMPANY},
        }

    def expected(self) -> dict[str, Any]:
        """This user's default mapping (docs/architecture.md; tests/support/cluster.py)."""
        return {
            "first_name": self.given,
            "last_name": self.family,
            "email": self.email,
            "job_role": self.title,
            "company": COMPANY,
            "business_unit": self.department,
            "team": None,
            "external_ref": self.scim_id,
            "status": "active" if self.active else "deactivated",
        }


@dataclass
class TenantLoad:
    slug: str
    token: str
    org: str
    people: list[Person] = field(default_factory=list)
    live: list[Person] = field(default_factory=list)
    idle: list[Connection] = field(default_factory=list)
    inflight: int = 0
    skipped: int = 0
    ops: Counter[str] = field(default_factory=Counter)


@dataclass
class Attempt:
    phase: str
    method: str
    start: float
    end: float
    status: int  # -1: transport error
    scim_error: bool = False


# -- the load generator ----------------------------------------------------------------


class Load:
    def __init__(self, cluster: Cluster, args: argparse.Namespace) -> None:
        self.cluster = cluster
        self.args = args
        self.tenants: list[TenantLoad] = []
        self.attempts: list[Attempt] = []
        self.phase = "setup"
        self.unexpected: Counter[str] = Counter()
        self.transport: Counter[str] = Counter()
        self._api_turn = itertools.count()
        self._rng = random.Random(args.seed)
        self._serial = itertools.count(1)

    def _connection(self, tenant: TenantLoad) -> Connection:
        now = time.monotonic()
        while tenant.idle:
            conn = tenant.idle.pop()
            if now - conn.idle_since < MAX_IDLE_S:
                return conn
            conn.close()
        urls = self.cluster.api_urls
        url = urlsplit(urls[next(self._api_turn) % len(urls)])
        return Connection(url.hostname or "127.0.0.1", url.port or 80)

    async def call(
        self, tenant: TenantLoad, method: str, path: str, body: Any = None, *, until: float
    ) -> tuple[int, Any]:
        """One SCIM request, retried like Entra (transport errors, 5xx and 429
        a second later) until answered or `until`; (status, JSON) or (-1, None)."""
        headers = f"Authorization: Bearer {tenant.token}\r\nAccept: {SCIM_JSON}\r\n".encode()
        payload = None
        if body is not None:
            headers += f"Content-Type: {SCIM_JSON}\r\n".encode()
            payload = _encode(body)
        target = f"/scim/{tenant.slug}/v2{path}"
        while True:
            conn = self._connection(tenant)
            start = time.time()
            try:
                status, raw = await conn.request(method, target, headers, payload)
            except HttpError as exc:
                self.attempts.append(Attempt(self.phase, method, start, time.time(), -1))
                self.transport[str(exc).partition("(")[0]] += 1
                status, raw = -1, b""
            else:
                conn.idle_since = time.monotonic()
                tenant.idle.append(conn)
                scim_error = status >= 400 and b"messages:2.0:Error" in raw
                self.attempts.append(
                    Attempt(self.phase, method, start, time.time(), status, scim_error)
                )
                if status < 500 and status != 429:
                    return status, (_decode(raw) if raw else None)
            if time.time() > until:
                return -1, None
            await asyncio.sleep(RETRY_AFTER_S * (0.5 + self._rng.random()))

    # The operations (Entra's) -------------------------------------------------------

    async def lookup(self, tenant: TenantLoad, person: Person, until: float) -> str | None:
        flt = quote(f'userName eq "{person.email}"')
        status, doc = await self.call(tenant, "GET", f"/Users?filter={flt}", until=until)
        if status != 200:
            self._unexpected("GET filter", status)
            return None
        resources = doc.get("Resources") or []
        return str(resources[0]["id"]) if resources else None

    async def create(self, tenant: TenantLoad, until: float) -> None:
        n = next(self._serial)
        person = Person(
            n=n,
            email=f"u{n}@{tenant.slug}.example",
            given=f"Given{n}",
            family=f"Family{n}",
            title="Engineer",
            department="Sales",
            busy=True,
        )
        tenant.people.append(person)
        found = await self.lookup(tenant, person, until)
        if found is None:
            status, doc = await self.call(tenant, "POST", "/Users", person.body(), until=until)
            if status == 201:
                found = str(doc["id"])
            elif status == 409:  # an earlier attempt landed and its answer was lost
                found = await self.lookup(tenant, person, until)
            else:
                self._unexpected("POST", status)
        if found is None:
            person.uncertain = True
        else:
            person.scim_id = found
            tenant.live.append(person)
        person.busy = False

    async def change(self, tenant: TenantLoad, person: Person, op: str, until: float) -> None:
        person.busy = True
        try:
            if op == "delete":
                status, _ = await self.call(
                    tenant, "DELETE", f"/Users/{person.scim_id}", until=until
                )
                if status in (204, 404):  # 404: an earlier attempt landed
                    person.deleted = True
                    tenant.live.remove(person)
                else:
                    self._unexpected("DELETE", status)
                    person.uncertain = True
                return
            await self.lookup(tenant, person, until)  # Entra queries before it updates
            if op == "query":
                return
            ops: list[dict[str, Any]]
            new = dict(title=person.title, department=person.department, family=person.family)
            new_email, new_active = person.email, person.active
            if op == "update":
                what = self._rng.choice(("title", "department", "family"))
                new[what] = f"{what.title()} {self._rng.randrange(10_000)}"
                path = {
                    "title": "title",
                    "department": f"{ENTERPRISE}:department",
                    "family": "name.familyName",
                }[what]
                ops = [{"op": "Replace", "path": path, "value": new[what]}]
            elif op == "rename":
                new_email = f"u{person.n}.r{self._rng.randrange(10**9)}@{tenant.slug}.example"
                ops = [
                    {"op": "Replace", "path": "userName", "value": new_email},
                    {"op": "Replace", "path": 'emails[type eq "work"].value', "value": new_email},
                ]
            else:  # disable / enable: Entra's string booleans
                new_active = op == "enable"
                ops = [{"op": "Replace", "path": "active", "value": str(new_active)}]
            body = {"schemas": [PATCH_OP], "Operations": ops}
            status, _ = await self.call(
                tenant, "PATCH", f"/Users/{person.scim_id}", body, until=until
            )
            if status == 200:
                person.title, person.department, person.family = (
                    new["title"],
                    new["department"],
                    new["family"],
                )
                person.email, person.active = new_email, new_active
            else:
                self._unexpected("PATCH", status)
                person.uncertain = True
        finally:
            person.busy = False

    def _unexpected(self, what: str, status: int) -> None:
        self.unexpected[f"{what} {status if status > 0 else 'unanswered'}"] += 1

    def _pick(self, tenant: TenantLoad) -> tuple[str, Person | None]:
        ops = [m[0] for m in MIX]
        weights = [m[1] for m in MIX]
        op = self._rng.choices(ops, weights)[0]
        if op == "create" or not tenant.live:
            return "create", None
        for _ in range(5):
            person = self._rng.choice(tenant.live)
            if person.busy:
                continue
            if (op == "disable" and not person.active) or (op == "enable" and person.active):
                op = "update"
            return op, person
        return "create", None

    async def run_tenant(self, tenant: TenantLoad, seconds: float, until: float) -> None:
        """Open-loop: one operation every REQUESTS_PER_OP / rate seconds."""
        interval = REQUESTS_PER_OP / self.args.rate
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic() + self._rng.random() * interval
        for k in itertools.count():
            at = start + k * interval
            if at - start > seconds:
                break
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            if tenant.inflight >= self.args.inflight:
                tenant.skipped += 1
                continue
            op, person = self._pick(tenant)
            tenant.ops[op] += 1
            tenant.inflight += 1
            coro = (
                self.create(tenant, until)
                if person is None
                else self.change(tenant, person, op, until)
            )
            task = asyncio.create_task(coro)
            tasks.add(task)
            task.add_done_callback(functools.partial(self._done, tenant, tasks))
        if tasks:
            await asyncio.gather(*tasks)

    def _done(self, tenant: TenantLoad, tasks: set[asyncio.Task[None]], task: Any) -> None:
        tenant.inflight -= 1
        tasks.discard(task)

    async def drive(self, phase: str, seconds: float) -> float:
        """Every tenant's traffic for `seconds`; returns when every change sent
        is answered (or given up on) -- the moment the load stopped."""
        self.phase = phase
        until = time.time() + seconds + self.args.retry_for
        await asyncio.gather(*(self.run_tenant(t, seconds, until) for t in self.tenants))
        return time.time()

    async def seed(self, per_tenant: int) -> float:
        """Entra's initial cycle: `per_tenant` users per tenant, created (query,
        then POST) as fast as `--inflight` requests per tenant allow."""
        self.phase = "seed"
        until = time.time() + 3600

        async def tenant_seed(tenant: TenantLoad) -> None:
            left = iter(range(per_tenant))

            async def caller() -> None:
                for _ in left:
                    await self.create(tenant, until)

            await asyncio.gather(*(caller() for _ in range(self.args.inflight)))

        start = time.time()
        await asyncio.gather(*(tenant_seed(t) for t in self.tenants))
        return time.time() - start

    def close(self) -> None:
        for tenant in self.tenants:
            for conn in tenant.idle:
                conn.close()
            tenant.idle.clear()


# -- faults ------------------------------------------------------------------------------


@dataclass
class FaultLog:
    events: list[dict[str, Any]] = field(default_factory=list)
    redis_outages: list[tuple[float, float]] = field(default_factory=list)

    def note(self, what: str, **extra: Any) -> None:
        self.events.append({"t": round(time.time(), 2), "what": what, **extra})


async def kill_workers(cluster: Cluster, log: FaultLog, every: float, stop: float) -> None:
    for i in itertools.cycle(range(len(cluster.workers))):
        await asyncio.sleep(every)
        if time.time() > stop:
            return
        await asyncio.to_thread(cluster.kill_worker, i, signal.SIGKILL)
        cluster.start_worker(i)
        log.note("worker SIGKILL, restarted", worker=i)


async def kill_apis(cluster: Cluster, log: FaultLog, every: float, stop: float) -> None:
    for i in itertools.cycle(range(len(cluster.apis))):
        await asyncio.sleep(every)
        if time.time() > stop:
            return
        await asyncio.to_thread(cluster.kill_api, i, signal.SIGKILL)
        log.note("api SIGKILL", api=i)
        await asyncio.sleep(1.0)
        await cluster.start_api(i)
        log.note("api restarted", api=i)


async def restart_redis(cluster: Cluster, log: FaultLog, after: float, down: float) -> None:
    await asyncio.sleep(after)
    begin = time.time()
    log.note("redis SIGKILL", down_s=down)
    await asyncio.to_thread(cluster.restart_redis, signal.SIGKILL, down)
    # The outage: from the kill (at once) until the restart began (`down` later).
    log.redis_outages.append((begin, begin + down))
    log.note("redis restarted from its AOF")


async def lms_outage(cluster: Cluster, log: FaultLog, after: float, down: float) -> None:
    await asyncio.sleep(after)
    await cluster.set_knobs(outage_seconds=down)
    log.note("LMS down (503 to everything)", seconds=down)


def fault_tasks(
    cluster: Cluster, faults: tuple[str, ...], args: argparse.Namespace, seconds: float
) -> tuple[list[Awaitable[None]], FaultLog]:
    log = FaultLog()
    stop = time.time() + seconds - 2
    tasks: list[Awaitable[None]] = []
    if "workers" in faults:
        tasks.append(kill_workers(cluster, log, args.kill_every, stop))
    if "api" in faults:
        tasks.append(kill_apis(cluster, log, args.kill_api_every, stop))
    if "redis" in faults:
        tasks.append(restart_redis(cluster, log, seconds / 3, args.redis_down))
    if "lms" in faults:
        tasks.append(lms_outage(cluster, log, min(5.0, seconds / 4), args.lms_down))
    return tasks, log


# -- measuring ----------------------------------------------------------------------------


def cpu_by_pid(cluster: Cluster) -> dict[str, tuple[float, float]]:
    """bench.harness.cpu_seconds keyed `name` for the first process of that
    name, `name (restart k)` for later ones, so a restart never subtracts a
    new process's counters from an old one's."""
    out = cpu_seconds(cluster)
    pids = {p.name: p.pid for p in cluster.processes() if p.alive}
    for name, pid in pids.items():
        first = _FIRST_PID.setdefault(name, pid)
        if pid != first and name in out:
            out[f"{name} (pid {pid})"] = out.pop(name)
    return out


_FIRST_PID: dict[str, int] = {}


def cpu_between(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]], wall: float
) -> dict[str, Any]:
    """cpu_report, counting a process started during the phase from zero (a
    process killed during it is missing: its share is not counted)."""
    before = {**{name: (0.0, 0.0) for name in after}, **before}
    return cpu_report(before, after, wall)


def rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


async def sample_rss(cluster: Cluster, load: Load, out: list[dict[str, Any]], every: float) -> None:
    while True:
        row: dict[str, Any] = {"t": round(time.time(), 1), "phase": load.phase}
        for proc in [*cluster.workers, *cluster.apis]:
            if proc.alive:
                row[proc.name] = rss_mb(proc.pid)
        out.append(row)
        await asyncio.sleep(every)


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t, MB) samples, in MB a minute."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return None
    return round(sum((t - mt) * (v - mv) for t, v in samples) / var * 60, 2)


def rss_summary(rows: list[dict[str, Any]], phase: str) -> dict[str, Any]:
    """Per process of the phase: first, max and last RSS (MB), and the slope
    after the first fifth of the phase (warm-up)."""
    mine = [r for r in rows if r["phase"] == phase]
    if not mine:
        return {}
    t0, t1 = mine[0]["t"], mine[-1]["t"]
    warm = t0 + (t1 - t0) / 5
    names = sorted({k for r in mine for k in r if k not in ("t", "phase")})
    out: dict[str, Any] = {}
    for name in names:
        series = [(r["t"], r[name]) for r in mine if r.get(name) is not None]
        if not series:
            continue
        out[name] = {
            "first": series[0][1],
            "max": max(v for _, v in series),
            "last": series[-1][1],
            "slope_mb_per_min": slope_mb_per_min([(t, v) for t, v in series if t >= warm]),
        }
    return out


def latency_summary(attempts: list[Attempt]) -> dict[str, Any]:
    answered = [a.end - a.start for a in attempts if a.status > 0]
    out: dict[str, Any] = {"n": len(answered)}
    if answered:
        for p in (50, 90, 99):
            out[f"p{p}_ms"] = round(percentile(answered, p) * 1000, 1)
        out["max_ms"] = round(max(answered) * 1000, 1)
    return out


async def pending_total(cluster: Cluster, slugs: list[str]) -> tuple[int, int, int]:
    """(pending, failed, queue depth) over every tenant, in one round trip."""
    async with cluster.redis.pipeline(transaction=False) as pipe:
        for slug in slugs:
            pipe.zcard(keys.state_set(slug, "pending"))
            pipe.zcard(keys.state_set(slug, "failed"))
        pipe.zcard(QUEUE_NAME)
        values = await pipe.execute()
    return sum(values[0:-1:2]), sum(values[1:-1:2]), int(values[-1])


async def converge(cluster: Cluster, load: Load, within: float) -> dict[str, Any]:
    slugs = [t.slug for t in load.tenants]
    start = time.time()
    backlog = None
    while True:
        with contextlib.suppress(Exception):
            pending, failed, depth = await pending_total(cluster, slugs)
            if backlog is None:
                backlog = {"pending": pending, "queue_depth": depth}
            if pending == 0:
                return {
                    "converged": True,
                    "seconds": round(time.time() - start, 1),
                    "backlog_at_stop": backlog,
                    "failed": failed,
                }
        if time.time() - start > within:
            return {
                "converged": False,
                "seconds": round(time.time() - start, 1),
                "backlog_at_stop": backlog,
            }
        await asyncio.sleep(0.5)


async def verify(cluster: Cluster, load: Load) -> dict[str, Any]:
    """Every organisation's learners against the newest acknowledged state."""
    problems: list[str] = []
    counts: Counter[str] = Counter()
    for tenant in load.tenants:
        learners = await cluster.sandbox_learners(tenant.org)
        counts["learners"] += len(learners)
        for key, ids in duplicate_learners(learners).items():
            counts["duplicate"] += 1
            problems.append(f"{tenant.slug}: duplicate {key}: learners {ids}")
        by_ref = {x["external_ref"]: x for x in learners if x.get("external_ref")}
        known = {p.scim_id for p in tenant.people if p.scim_id}
        for learner in learners:
            if learner.get("external_ref") not in known:
                counts["unknown"] += 1
                problems.append(f"{tenant.slug}: learner {learner['id']} of no user")
        for person in tenant.people:
            if person.uncertain or not person.scim_id:
                counts["uncertain"] += 1
                continue
            linked = by_ref.get(person.scim_id)
            if person.deleted:
                counts["deleted"] += 1
                if linked is not None and linked["status"] != "deactivated":
                    counts["stale"] += 1
                    problems.append(f"{tenant.slug}: {person.email} deleted, learner active")
                continue
            counts["checked"] += 1
            if linked is None and not person.active:
                # Disabled before its first sync ran: no learner is right
                # (docs/architecture.md, "Withdrawal of access").
                counts["inactive_without_learner"] += 1
                continue
            if linked is None:
                counts["missing"] += 1
                problems.append(f"{tenant.slug}: {person.email} ({person.scim_id}) no learner")
                continue
            got, want = learner_view(linked), person.expected()
            if got != want:
                counts["stale"] += 1
                diff = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
                problems.append(f"{tenant.slug}: {person.email}: (got, want) {diff}")
    _, failed, _ = await pending_total(cluster, [t.slug for t in load.tenants])
    counts["failed_users"] = failed
    ok = not problems and failed == 0
    return {"ok": ok, "counts": dict(counts), "problems": problems[:15]}


async def redis_memory(cluster: Cluster, load: Load) -> dict[str, Any]:
    info = await cluster.redis.info("memory")
    store = ResourceStore(cluster.redis)
    users = 0
    for tenant in load.tenants:
        users += await store.count(tenant.slug, "u")
    used = int(info["used_memory"])
    dataset = int(info.get("used_memory_dataset", used))
    # What one live user costs, by key (MEMORY USAGE of a sample of users).
    per_key: dict[str, list[int]] = {"document": [], "sync state": [], "event log": []}
    sample = [(t.slug, p.scim_id) for t in load.tenants for p in t.live[:4]]
    for slug, uid in sample:
        for name, key in (
            ("document", keys.resource(slug, "u", uid)),
            ("sync state", keys.sync_state(slug, uid)),
            ("event log", keys.events(slug, uid)),
        ):
            usage = await cluster.redis.memory_usage(key)
            if usage:
                per_key[name].append(int(usage))
    return {
        "sampled_key_bytes": {name: round(sum(v) / len(v)) for name, v in per_key.items() if v},
        "users": users,
        "used_memory": used,
        "used_memory_dataset": dataset,
        "bytes_per_user": round(used / users) if users else None,
        "dataset_bytes_per_user": round(dataset / users) if users else None,
        "keys": int(await cluster.redis.dbsize()),
    }


# -- phases -------------------------------------------------------------------------------


async def run_phase(
    cluster: Cluster, load: Load, phase: str, seconds: float, args: argparse.Namespace
) -> dict[str, Any]:
    faults = FAULTS if phase == "all" else tuple(f for f in FAULTS if f == phase)
    say(f"phase {phase}: {seconds:.0f} s of load, faults: {', '.join(faults) or 'none'}")
    lms_before = await cluster.sandbox_stats()
    cpu_before, t0 = cpu_by_pid(cluster), time.time()
    tasks, log = fault_tasks(cluster, faults, args, seconds)
    fault_runner = asyncio.gather(*tasks)
    stopped = await load.drive(phase, seconds)
    await fault_runner
    load_wall = stopped - t0
    cpu = cpu_between(cpu_before, cpu_by_pid(cluster), load_wall)
    for i, proc in enumerate(cluster.workers):  # a kill may have raced the phase's end
        if not proc.alive:
            cluster.start_worker(i)
    for i, proc in enumerate(cluster.apis):
        if not proc.alive:
            await cluster.start_api(i)
    say(f"phase {phase}: load stopped after {load_wall:.0f} s; waiting for convergence")
    cpu_drain_before, drain_start = cpu_by_pid(cluster), time.time()
    converged = await converge(cluster, load, args.converge_timeout)
    drain_cpu = cpu_between(cpu_drain_before, cpu_by_pid(cluster), time.time() - drain_start)
    converged["drain_cores"] = drain_cpu.get("per_process_cores", {})
    backlog = (converged.get("backlog_at_stop") or {}).get("pending") or 0
    worker_cores = sum(v for k, v in converged["drain_cores"].items() if k.startswith("worker"))
    if converged["seconds"] > 1 and backlog:
        converged["users_drained_per_s"] = round(backlog / converged["seconds"], 1)
        if worker_cores:
            converged["users_per_worker_core_s"] = round(
                backlog / converged["seconds"] / worker_cores, 1
            )
    say(f"phase {phase}: convergence {converged}")
    checked = await verify(cluster, load)
    say(f"phase {phase}: verification {'OK' if checked['ok'] else 'FAILED'} {checked['counts']}")
    mine = [a for a in load.attempts if a.phase == phase]
    statuses = Counter(a.status for a in mine)
    in_outage = [
        a
        for a in mine
        for begin, end in log.redis_outages
        if a.start >= begin + 0.2 and a.end <= end and a.status > 0
    ]
    lms_after = await cluster.sandbox_stats()
    lms_status = Counter(lms_after["by_status"]) - Counter(lms_before["by_status"])
    result: dict[str, Any] = {
        "phase": phase,
        "faults": list(faults),
        "load_s": round(load_wall, 1),
        "requests_answered": sum(n for s, n in statuses.items() if s > 0),
        "achieved_rps": round(sum(n for s, n in statuses.items() if s > 0) / load_wall, 1),
        "target_rps": args.tenants * args.rate,
        "skipped_ops": sum(t.skipped for t in load.tenants),
        "latency": latency_summary(mine),
        "latency_by_method": {
            m: latency_summary([a for a in mine if a.method == m])
            for m in ("GET", "POST", "PATCH", "DELETE")
        },
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "http_5xx": sum(n for s, n in statuses.items() if s >= 500),
        "http_503_scim_error": sum(1 for a in mine if a.status == 503 and a.scim_error),
        "transport_errors": statuses.get(-1, 0),
        "redis_outage_answers": dict(Counter(str(a.status) for a in in_outage)),
        "redis_outage_2xx": sum(1 for a in in_outage if 200 <= a.status < 300),
        "lms_by_status": dict(lms_status),
        "lms_calls_per_org_per_s": round(
            sum(lms_status.values())
            / max(load_wall + converged["seconds"], 1e-9)
            / len(load.tenants),
            2,
        ),
        "faults_log": log.events,
        "convergence": converged,
        "verify": checked,
        "cpu": cpu,
        "unexpected": dict(load.unexpected),
        "transport_error_kinds": dict(load.transport),
    }
    for tenant in load.tenants:
        tenant.skipped = 0
    load.unexpected.clear()
    load.transport.clear()
    return result


def phase_seconds(phase: str, args: argparse.Namespace) -> float:
    if phase == "baseline":
        return float(args.duration)
    if phase == "lms":
        return float(max(args.fault_duration, args.lms_down + 15))
    if phase == "all":
        return float(max(args.fault_duration, args.lms_down + 15)) * 1.3
    return float(args.fault_duration)


@contextlib.asynccontextmanager
async def load_cluster(args: argparse.Namespace) -> AsyncIterator[Cluster]:
    workdir = Path(tempfile.mkdtemp(prefix="scim-load-"))
    options = ClusterOptions(
        workers=args.workers,
        apis=args.apis,
        knobs={"latency_ms": args.latency_ms, "rate": args.lms_rate, "burst": args.lms_burst},
        worker_env={
            "WORKER_MAX_JOBS": str(args.max_jobs),
            "WORKER_JOB_TIMEOUT": str(args.job_timeout),
            "WORKER_SWEEP_INTERVAL": "10",
            "WORKER_SWEEP_GRACE": str(args.job_timeout),
        },
        log_level=args.log_level,
    )
    cluster = Cluster(workdir, options)
    previous = signal.signal(signal.SIGTERM, _raise_exit)
    try:
        await cluster.start()
        await cluster.redis.config_set("appendfsync", args.appendfsync)
        yield cluster
    except BaseException:
        cluster.dump_logs(sys.stderr)
        raise
    finally:
        await cluster.stop()
        for proc in cluster.processes():
            if proc.alive:
                proc.kill()
        signal.signal(signal.SIGTERM, previous)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}", file=sys.stderr)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


_T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {text}", file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with load_cluster(args) as cluster:
        load = Load(cluster, args)
        memory_empty = int((await cluster.redis.info("memory"))["used_memory"])
        say(f"creating {args.tenants} tenants")
        for i in range(args.tenants):
            slug = f"t{i:03d}"
            handle = await cluster.add_tenant(slug, rate=args.lms_rate, burst=args.lms_burst)
            # Synthetic churn deactivates far more than the mass-deactivation
            # breaker lets through unasked: it is off for the run.
            await set_config(cluster.redis, slug, BreakerConfig(enabled=False))
            load.tenants.append(TenantLoad(slug, handle.token, handle.org))
        seed: dict[str, Any] = {"users_per_tenant": args.initial_users}
        if args.initial_users:
            say(f"initial cycle: {args.initial_users} users per tenant")
            took = await load.seed(args.initial_users)
            answered = sum(1 for a in load.attempts if a.phase == "seed" and a.status > 0)
            seed.update(seconds=round(took, 1), requests_per_s=round(answered / took, 1))
            seed["convergence"] = await converge(cluster, load, args.converge_timeout)
            seed["verify_ok"] = (await verify(cluster, load))["ok"]
            say(f"initial cycle: {seed}")
        rss: list[dict[str, Any]] = []
        sampler = asyncio.create_task(sample_rss(cluster, load, rss, args.rss_every))
        results = []
        memory: dict[str, Any] = {}
        try:
            for phase in args.phases:
                results.append(
                    await run_phase(cluster, load, phase, phase_seconds(phase, args), args)
                )
                results[-1]["rss_mb"] = rss_summary(rss, phase)
                if phase == "baseline":
                    memory = await redis_memory(cluster, load)
                    memory["used_memory_empty"] = memory_empty
                    users = memory["users"]
                    memory["net_bytes_per_user"] = (
                        round((memory["used_memory"] - memory_empty) / users) if users else None
                    )
        finally:
            sampler.cancel()
            load.close()
        return {
            "params": {
                "tenants": args.tenants,
                "rate_per_tenant": args.rate,
                "inflight_per_tenant": args.inflight,
                "requests_per_op": round(REQUESTS_PER_OP, 2),
                "mix": {op: w for op, w, _ in MIX},
                "lms_rate": args.lms_rate,
                "lms_burst": args.lms_burst,
                "lms_latency_ms": args.latency_ms,
                "apis": args.apis,
                "workers": args.workers,
                "worker_max_jobs": args.max_jobs,
                "worker_job_timeout_s": args.job_timeout,
                "log_level": args.log_level,
                "redis": f"one redis-server (queue too), AOF on, appendfsync {args.appendfsync}",
                "cpus": os.cpu_count(),
                "quick": args.quick,
            },
            "memory": memory,
            "initial_cycle": seed,
            "phases": results,
            "users_created": sum(len(t.people) for t in load.tenants),
            "rss_samples": len(rss),
        }


# -- report -------------------------------------------------------------------------------


def report(r: dict[str, Any]) -> None:
    p = r["params"]
    print(
        f"\nLoad: {p['tenants']} tenants x {p['rate_per_tenant']:g} req/s "
        f"(= {p['tenants'] * p['rate_per_tenant']:g} req/s), at most {p['inflight_per_tenant']} "
        f"in flight per tenant, {p['requests_per_op']} requests per change; LMS "
        f"{p['lms_rate']:g}/s burst {p['lms_burst']} per org, {p['lms_latency_ms']:g} ms.\n"
        f"Processes on {p['cpus']} cores: {p['apis']} API, {p['workers']} workers x "
        f"WORKER_MAX_JOBS {p['worker_max_jobs']} (job timeout {p['worker_job_timeout_s']} s), "
        f"1 redis ({p['redis']}), 1 sandbox LMS, 1 load generator; LOG_LEVEL {p['log_level']}."
    )
    mem = r.get("memory") or {}
    seed = r.get("initial_cycle") or {}
    if seed.get("users_per_tenant"):
        print(
            f"Initial cycle: {seed['users_per_tenant']} users per tenant created in "
            f"{seed['seconds']} s ({seed['requests_per_s']} req/s), converged in "
            f"{seed['convergence']['seconds']} s, LMS verified: {seed['verify_ok']}."
        )
    for ph in r["phases"]:
        lat, conv, chk = ph["latency"], ph["convergence"], ph["verify"]
        print(f"\n== {ph['phase']} (faults: {', '.join(ph['faults']) or 'none'}) ==")
        rows = [
            (
                "requests answered",
                f"{ph['requests_answered']} in {ph['load_s']} s = {ph['achieved_rps']}/s",
                f"{ph['target_rps']:g}/s",
                "",
            ),
            ("ops skipped (tenant at its in-flight cap)", f"{ph['skipped_ops']}", "", ""),
            ("API latency p50 / p99", f"{lat.get('p50_ms')} / {lat.get('p99_ms')} ms", "", ""),
            ("statuses", json.dumps(ph["statuses"]), "", ""),
        ]
        if "redis" in ph["faults"]:
            rows.append(
                (
                    "answers while Redis was down",
                    json.dumps(ph["redis_outage_answers"]),
                    "503 only, no 2xx",
                    verdict(ph["redis_outage_2xx"] == 0),
                )
            )
            rows.append(
                (
                    "5xx (503 with a SCIM error body)",
                    f"{ph['http_5xx']} ({ph['http_503_scim_error']})",
                    "every one a SCIM 503",
                    verdict(ph["http_5xx"] == ph["http_503_scim_error"]),
                )
            )
        else:
            rows.append(("5xx", f"{ph['http_5xx']}", "0", verdict(ph["http_5xx"] == 0)))
        rows += [
            (
                "transport errors (retried)",
                f"{ph['transport_errors']} {json.dumps(ph['transport_error_kinds'])}",
                "",
                "",
            ),
            (
                "convergence after the load stopped",
                f"{conv['seconds']} s" if conv["converged"] else f"NOT within {conv['seconds']} s",
                "",
                verdict(conv["converged"]),
            ),
            ("backlog at stop", json.dumps(conv.get("backlog_at_stop")), "", ""),
            (
                "drain after the stop",
                f"{conv.get('users_drained_per_s')} users/s, "
                f"{conv.get('users_per_worker_core_s')} per worker core",
                "",
                "",
            ),
            (
                "LMS = newest acknowledged state",
                json.dumps(chk["counts"]),
                "no missing, stale, duplicate, unknown or failed",
                verdict(chk["ok"]),
            ),
        ]
        print_table(rows)
        if chk["problems"]:
            print("problems:", *chk["problems"], sep="\n  ")
        if ph["unexpected"]:
            print(f"unexpected answers: {ph['unexpected']}")
        print(
            f"LMS answers during the phase and its convergence: {ph['lms_by_status']} "
            f"({ph['lms_calls_per_org_per_s']}/s per org; limit {p['lms_rate']:g}/s)"
        )
        for name, s in ph.get("rss_mb", {}).items():
            print(
                f"RSS {name}: {s['first']} -> {s['last']} MB (max {s['max']}), "
                f"slope after warm-up {s['slope_mb_per_min']} MB/min"
            )
        if ph["faults_log"]:
            print(f"faults: {len(ph['faults_log'])} events, e.g. {ph['faults_log'][:3]}")
        print_cpu(ph["cpu"])
        if ph["phase"] == "baseline" and mem:
            print(
                f"Redis memory: used_memory {mem['used_memory'] / 1e6:.1f} MB for "
                f"{mem['users']} live users = {mem['bytes_per_user']} B/user "
                f"({mem['net_bytes_per_user']} B/user net of the empty Redis's "
                f"{mem['used_memory_empty'] / 1e6:.1f} MB; dataset "
                f"{mem['dataset_bytes_per_user']} B/user; {mem['keys']} keys); per live user, "
                f"sampled: {mem['sampled_key_bytes']} bytes"
            )
    all_ok = all(ph["verify"]["ok"] and ph["convergence"]["converged"] for ph in r["phases"])
    print(f"\nVERDICT: {'every acknowledged change reached the LMS' if all_ok else 'FAILED'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tenants", type=int, default=50)
    p.add_argument("--rate", type=float, default=25.0, help="SCIM requests a second per tenant")
    p.add_argument("--inflight", type=int, default=8, help="requests in flight per tenant")
    p.add_argument(
        "--initial-users", type=int, default=100, help="users per tenant before the load"
    )
    p.add_argument("--duration", type=float, default=180.0, help="baseline load seconds")
    p.add_argument("--fault-duration", type=float, default=75.0, help="load seconds per fault")
    p.add_argument("--phases", default=",".join(PHASES), help=f"of {','.join(PHASES)}")
    p.add_argument("--quick", action="store_true", help="20 s phases and short outages")
    p.add_argument("--apis", type=int, default=2, help="API processes")
    p.add_argument("--workers", type=int, default=2, help="worker processes")
    p.add_argument("--max-jobs", type=int, default=100, help="WORKER_MAX_JOBS")
    p.add_argument("--job-timeout", type=float, default=30.0, help="WORKER_JOB_TIMEOUT")
    p.add_argument(
        "--lms-rate",
        type=float,
        default=10.0,
        help="LMS limit per org, both sides (10: about what the changes need by the end)",
    )
    p.add_argument("--lms-burst", type=int, default=20)
    p.add_argument("--latency-ms", type=float, default=20.0, help="sandbox latency")
    p.add_argument("--kill-every", type=float, default=10.0, help="worker SIGKILL interval")
    p.add_argument("--kill-api-every", type=float, default=20.0, help="API SIGKILL interval")
    p.add_argument("--redis-down", type=float, default=5.0, help="seconds Redis stays down")
    p.add_argument("--lms-down", type=float, default=60.0, help="seconds the LMS is down")
    p.add_argument("--retry-for", type=float, default=300.0, help="retry an unanswered change")
    p.add_argument("--converge-timeout", type=float, default=1800.0)
    p.add_argument("--rss-every", type=float, default=5.0)
    p.add_argument(
        "--log-level",
        default="INFO",
        help="LOG_LEVEL of the bridge (INFO, the default; the harness waits for arq's INFO line)",
    )
    p.add_argument(
        "--appendfsync",
        choices=("always", "everysec"),
        default="always",
        help="Redis AOF fsync policy (default always, as tests/support/cluster.py)",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", action="store_true", help="keep the processes' logs")
    args = p.parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 20.0)
        args.initial_users = min(args.initial_users, 20)
        args.fault_duration = min(args.fault_duration, 20.0)
        args.lms_down = min(args.lms_down, 10.0)
        args.redis_down = min(args.redis_down, 3.0)
        args.kill_every = min(args.kill_every, 5.0)
        args.kill_api_every = min(args.kill_api_every, 8.0)
    args.phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        p.error(f"unknown phases: {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    report(result)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
