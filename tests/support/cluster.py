"""The whole bridge as real processes on loopback: for end-to-end tests and benchmarks.

A `Cluster` starts what production runs, each as its own OS process (in
its own process group) on a free loopback port, with the environment
pointing them at each other:

- a `redis-server` of its own, AOF on with `appendfsync always`, so that a
  test can kill and restart it and expect every acknowledged change back;
- the sandbox LMS (`python -m cli sandbox`, `SANDBOX_AUTO_ORGS=1`);
- one or more API processes (`python -m cli api`);
- N workers (`python -m cli worker`) with short sweep settings
  (`WORKER_SWEEP_INTERVAL=1`, `WORKER_SWEEP_GRACE=2`, `WORKER_JOB_TIMEOUT=10`)
  so that recovery from a killed worker takes seconds, not minutes.

Each process writes stdout and stderr to `<workdir>/logs/<name>.log`; a
restarted process appends to its file after a `--- restarted ---` line.

Usage from a script (bench/)::

    async with Cluster(workdir, ClusterOptions(workers=4)) as cluster:
        acme = await cluster.add_tenant("acme", rate=20, burst=40)
        response = await acme.scim.post("/Users", entra_user("ada@example.com"))
        await cluster.wait_until(lambda: ..., timeout=30, message="...")
        learners = await cluster.sandbox_learners(acme.org)

Usage from pytest: `from tests.support.cluster import cluster_fixture,
make_cluster_fixture  # noqa: F401` (the functions are registered under the
names `cluster` and `make_cluster`, so test parameters do not shadow the
imports), then take `cluster` (default options) or `make_cluster` (a
factory: `await make_cluster(workers=0, knobs={"latency_ms": 5})`, keyword
arguments as `ClusterOptions`). Every cluster a test started is stopped
when it ends, and the logs of its processes are printed when it failed.

The API of `Cluster` (addresses: `redis_url`, `sandbox_url`, `api_urls`,
`org_url(org)`; `redis`, an async client of its Redis):

- set-up: `add_tenant(slug, *, org, rate, burst, lms_api_key, via_cli) -> TenantHandle`
  (a sandbox org through its control API, then the tenant and a token
  through the shadow store, or with `via_cli` through `tenant create --json`
  and `token issue --json`); `TenantHandle.scim` is a `ScimClient`.
- the sandbox: `sandbox_learners(org)`, `sandbox_stats()`, `set_knobs(**knobs)`,
  `insert_learner(org, **fields)`, `edit_learner(org, id, **fields)`,
  `reset_sandbox(data=, knobs=)`.
- the CLI: `cli(*args)` (parsed `--json` output), `status(slug)`,
  `replay(slug, user=None)`; the shadow store directly: `sync_counts(slug)`,
  `sync_record(slug, user_id)`.
- processes: `kill_worker(i, sig)`, `kill_api(i, sig)` and
  `restart_redis(sig, down_s)` return once the process has ended (and Redis
  answers again); `start_worker(i=None) -> index` returns at once, `await
  wait_worker(i)` until it polls; `await start_api(i)` until it is ready.
  `worker_log(i)`, `jobs_in_flight(i)` (from the worker's arq log),
  `describe()`, `dump_logs()`.
- waiting: `wait_until(predicate, timeout, message=..., require_alive=...)`
  polls a sync or async predicate until it returns a truthy value (which it
  returns); a predicate may also raise AssertionError to mean "not yet". On
  timeout it fails with the message, the last value or assertion, and which
  processes have died; it fails at once if one of `require_alive` exits.

Module helpers: `entra_user(...)` (an Entra-shaped create body),
`patch_ops(...)`, `learner_view(learner)` (the mapped fields of a sandbox
learner), `duplicate_learners(learners)`, `free_port()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import httpx
import pytest
import redis as redis_sync
from redis.asyncio import Redis

from shadow import StateCounts, SyncRecord, SyncStore, Tenant, TenantStore
from tests.support.api import METRICS_TOKEN, SECRET_KEY
from tests.support.redis_server import free_port, redis_executable

__all__ = [
    "ENTERPRISE",
    "LEARNER_FIELDS",
    "LMS_EXTENSION",
    "PATCH_OP",
    "SCIM_JSON",
    "USER_SCHEMA",
    "Cluster",
    "ClusterError",
    "ClusterFactory",
    "ClusterOptions",
    "ManagedProcess",
    "ScimClient",
    "TenantHandle",
    "cluster_fixture",
    "duplicate_learners",
    "entra_user",
    "free_port",
    "learner_view",
    "make_cluster_fixture",
    "patch_ops",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[2]
SCIM_JSON = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LMS_EXTENSION = "urn:ietf:params:scim:schemas:extension:lms:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
#: The learner fields the bridge maps, plus status (docs/architecture.md, "Default attribute
#: mapping").
LEARNER_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "job_role",
    "company",
    "business_unit",
    "team",
    "external_ref",
    "status",
)
#: Shorter than production, so that a killed worker's jobs and locks free up in seconds.
DEFAULT_WORKER_ENV = {
    "WORKER_SWEEP_INTERVAL": "1",
    "WORKER_SWEEP_GRACE": "2",
    "WORKER_JOB_TIMEOUT": "10",
    "WORKER_MAX_JOBS": "20",
}
START_TIMEOUT_S = 30.0
LOG_TAIL_CHARS = 12_000

T = TypeVar("T")


class ClusterError(RuntimeError):
    """A process would not start, or a CLI command failed."""


# -- processes -----------------------------------------------------------------


class ManagedProcess:
    """One OS process in a process group of its own, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        if self.alive:
            raise ClusterError(f"{self.name} is already running")
        self._close_log()
        self._log = self.log_path.open("ab")
        if self.starts:
            self._log.write(b"\n--- restarted ---\n")
            self._log.flush()
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg reaches its children
        )
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise ClusterError(f"{self.name} was never started")
        return self.popen.pid

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the process's group, if the process still runs."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 10.0) -> int | None:
        """Send `sig` to the process group and wait for the process to end
        (SIGKILL after `timeout`); its exit code, None if it never ran."""
        if self.popen is None:
            return None
        self.send_signal(sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            self.popen.wait()
        self._close_log()
        return self.popen.returncode

    def stop(self) -> None:
        """Graceful first (SIGTERM), SIGKILL after 5 s."""
        self.kill(signal.SIGTERM, timeout=5.0)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        text = self.log_text()
        return text if len(text) <= chars else "...\n" + text[-chars:]

    def describe(self) -> str:
        if self.popen is None:
            return f"{self.name}: never started"
        code = self.popen.poll()
        state = "running" if code is None else f"exited with {code}"
        return f"{self.name} (pid {self.popen.pid}): {state}"

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


# -- options and handles ---------------------------------------------------------


@dataclass
class ClusterOptions:
    """What to run. `knobs` are applied to the sandbox once it is up (any
    `PUT /_sandbox/knobs` field); `worker_env` overrides DEFAULT_WORKER_ENV."""

    workers: int = 2
    apis: int = 1
    knobs: dict[str, Any] = field(default_factory=dict)
    worker_env: dict[str, str] = field(default_factory=dict)
    api_env: dict[str, str] = field(default_factory=dict)
    sandbox_env: dict[str, str] = field(default_factory=dict)
    log_level: str = "INFO"


@dataclass
class TenantHandle:
    """A tenant (through the CLI or the shadow store), its sandbox org and a SCIM client."""

    slug: str
    org: str
    token: str
    token_id: str
    scim_url: str
    lms_api_key: str
    scim: ScimClient


class ScimClient:
    """One tenant's SCIM API over real HTTP, spread over the live API processes."""

    def __init__(self, http: httpx.AsyncClient, cluster: Cluster, tenant: str, token: str) -> None:
        self.http = http
        self.cluster = cluster
        self.tenant = tenant
        self.token = token
        self._turn = itertools.count()

    def url(self, path: str) -> str:
        bases = self.cluster.live_api_urls() or self.cluster.api_urls
        base = bases[next(self._turn) % len(bases)]
        return f"{base}/scim/{self.tenant}/v2{path}"

    async def request(
        self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": SCIM_JSON}
        content = None
        if body is not None:
            headers["Content-Type"] = SCIM_JSON
            content = json.dumps(body).encode()
        return await self.http.request(
            method, self.url(path), content=content, headers=headers, params=params
        )

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.request("POST", path, body)

    async def put(self, path: str, body: Any) -> httpx.Response:
        return await self.request("PUT", path, body)

    async def patch(self, path: str, body: Any) -> httpx.Response:
        return await self.request("PATCH", path, body)

    async def delete(self, path: str) -> httpx.Response:
        return await self.request("DELETE", path)

    async def send_until_answered(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109  (a retry deadline, not a cancellation)
    ) -> httpx.Response:
        """What Entra does: retry transport errors and 5xx answers (with a
        short pause) until an answer that is not a fault, or `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = await self.request(method, path, body)
                if response.status_code < 500:
                    return response
                problem = f"{response.status_code} {response.text[:200]}"
            except httpx.TransportError as exc:
                problem = repr(exc)
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path}: no answer within {timeout}s: {problem}")
            await asyncio.sleep(0.2)

    async def find_user_id(self, user_name: str) -> str | None:
        response = await self.get("/Users", params={"filter": f'userName eq "{user_name}"'})
        assert response.status_code == 200, response.text
        resources: list[dict[str, Any]] = response.json()["Resources"]
        return str(resources[0]["id"]) if resources else None


# -- the cluster -----------------------------------------------------------------


class Cluster:
    """Redis, the sandbox LMS, API processes and workers; see the module docstring."""

    def __init__(self, workdir: Path, options: ClusterOptions | None = None) -> None:
        self.workdir = workdir
        self.options = options or ClusterOptions()
        self.logs = workdir / "logs"
        self.redis_dir = workdir / "redis"
        self.redis_port = free_port()
        self.sandbox_port = free_port()
        self.api_ports = [free_port() for _ in range(self.options.apis)]
        self.redis_proc: ManagedProcess | None = None
        self.sandbox: ManagedProcess | None = None
        self.apis: list[ManagedProcess] = []
        self.workers: list[ManagedProcess] = []
        self._http: httpx.AsyncClient | None = None
        self._redis: Redis | None = None

    # Addresses ---------------------------------------------------------------

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.api_ports]

    @property
    def api_url(self) -> str:
        return self.api_urls[0]

    def live_api_urls(self) -> list[str]:
        return [url for url, proc in zip(self.api_urls, self.apis, strict=True) if proc.alive]

    def org_url(self, org: str) -> str:
        return f"{self.sandbox_url}/org/{org}"

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0))
        return self._http

    @property
    def redis(self) -> Redis:
        """A client of the cluster's Redis for direct reads of the shadow store."""
        if self._redis is None:
            self._redis = Redis.from_url(self.redis_url)
        return self._redis

    # Life cycle ----------------------------------------------------------------

    async def __aenter__(self) -> Cluster:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start everything and wait until each process answers."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        self.redis_proc = ManagedProcess(
            "redis", self._redis_argv(), os.environ, self.logs / "redis.log"
        )
        self.redis_proc.start()
        self._wait_redis()
        self.sandbox = ManagedProcess(
            "sandbox",
            self._cli_argv("sandbox"),
            self._env(
                SANDBOX_PORT=str(self.sandbox_port),
                SANDBOX_AUTO_ORGS="1",
                **self.options.sandbox_env,
            ),
            self.logs / "sandbox.log",
        )
        self.sandbox.start()
        for i, port in enumerate(self.api_ports):
            env = self._env(
                PORT=str(port),
                HOST="127.0.0.1",
                BRIDGE_PUBLIC_URL=f"http://127.0.0.1:{port}",
                **self.options.api_env,
            )
            self.apis.append(
                ManagedProcess(f"api-{i}", self._cli_argv("api"), env, self.logs / f"api-{i}.log")
            )
            self.apis[-1].start()
        for _ in range(self.options.workers):
            self._new_worker()
        await self._wait_http(self.sandbox, f"{self.sandbox_url}/_sandbox/stats")
        for proc, url in zip(self.apis, self.api_urls, strict=True):
            await self._wait_http(proc, f"{url}/readyz")
        for i in range(len(self.workers)):
            await self._wait_worker(i)
        if self.options.knobs:
            await self.set_knobs(**self.options.knobs)

    async def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 5 s; Redis last)
        and close the clients."""
        bridge = [p for p in [*self.workers, *self.apis, self.sandbox] if p is not None]
        for proc in bridge:
            proc.send_signal(signal.SIGTERM)
        for each in [*bridge, self.redis_proc]:
            if each is not None:
                each.stop()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None

    def processes(self) -> list[ManagedProcess]:
        return [p for p in [self.redis_proc, self.sandbox, *self.apis, *self.workers] if p]

    def describe(self) -> str:
        return "; ".join(p.describe() for p in self.processes())

    def dump_logs(self, out: IO[str] | None = None) -> None:
        """Print the tail of every process's log (the fixture does it on failure)."""
        out = out or sys.stdout
        for proc in self.processes():
            print(f"\n===== {proc.describe()} -- {proc.log_path} =====", file=out)
            print(proc.log_tail(), file=out)

    # Process control ---------------------------------------------------------------

    def kill_worker(self, i: int, sig: int = signal.SIGKILL) -> int | None:
        """Signal worker `i` and wait for it to end; its exit code."""
        return self.workers[i].kill(sig)

    def start_worker(self, i: int | None = None) -> int:
        """Restart worker `i`, or start a new one; its index. Returns at once:
        `await wait_worker(i)` waits until it polls the queue."""
        if i is None:
            return self._new_worker()
        self.workers[i].start()
        return i

    async def wait_worker(self, i: int) -> None:
        await self._wait_worker(i)

    def worker_log(self, i: int) -> str:
        return self.workers[i].log_text()

    def jobs_in_flight(self, i: int) -> set[str]:
        """Ids of the jobs worker `i` started and has not ended (by its arq
        log since its latest start): what a kill now would interrupt."""
        text = self.worker_log(i).rpartition("--- restarted ---")[2]
        running: Counter[str] = Counter()
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            job_id, msg = record.get("job_id"), str(record.get("msg", ""))
            if not isinstance(job_id, str):
                continue
            if " → " in msg:
                running[job_id] += 1
            elif any(mark in msg for mark in (" ← ", " ↻ ", " ! ", " ⊘ ")):
                running[job_id] -= 1
        return {job_id for job_id, count in running.items() if count > 0}

    def kill_api(self, i: int = 0, sig: int = signal.SIGKILL) -> int | None:
        return self.apis[i].kill(sig)

    async def start_api(self, i: int = 0) -> None:
        """(Re)start API process `i` on its port and wait until it is ready."""
        self.apis[i].start()
        await self._wait_http(self.apis[i], f"{self.api_urls[i]}/readyz")

    def restart_redis(self, sig: int = signal.SIGTERM, down_s: float = 0.0) -> None:
        """Stop Redis with `sig` (SIGKILL: a crash), stay down `down_s`
        seconds, start it again on the same port and files (AOF replayed),
        and wait until it answers."""
        assert self.redis_proc is not None
        self.redis_proc.kill(sig)
        if down_s:
            time.sleep(down_s)  # the outage itself: nothing to wait for
        self.redis_proc.start()
        self._wait_redis()

    # Tenants and SCIM ---------------------------------------------------------------

    async def add_tenant(
        self,
        slug: str,
        *,
        org: str | None = None,
        rate: float = 20.0,
        burst: int = 40,
        lms_api_key: str | None = None,
        via_cli: bool = False,
    ) -> TenantHandle:
        """A sandbox org (through its control API), then the tenant and a
        token: through the CLI (`tenant create --json`, `token issue --json`)
        with `via_cli`, else straight through the shadow store (a second
        faster). A `lms_api_key` other than the org's makes LMS calls 401."""
        org = org or slug
        org_key = f"sandbox-key-{org}"
        created = await self.http.post(
            f"{self.sandbox_url}/_sandbox/orgs", json={"org": org, "api_key": org_key}
        )
        assert created.status_code in (200, 201), created.text
        key = lms_api_key or org_key
        if via_cli:
            await self.cli(
                "tenant",
                "create",
                slug,
                "--name",
                slug.title(),
                "--lms-url",
                self.org_url(org),
                "--lms-api-key",
                key,
                "--lms-rate",
                str(rate),
                "--lms-burst",
                str(burst),
                "--json",
            )
            issued = await self.cli("token", "issue", slug, "--json")
            token, token_id = str(issued["token"]), str(issued["token_id"])
        else:
            store = TenantStore(self.redis)
            await store.create(
                Tenant(
                    slug=slug,
                    name=slug.title(),
                    lms_url=self.org_url(org),
                    lms_api_key=key,
                    lms_rate=rate,
                    lms_burst=burst,
                )
            )
            issued_token = await store.issue_token(slug, label="e2e")
            token, token_id = issued_token.token, issued_token.token_id
        return TenantHandle(
            slug=slug,
            org=org,
            token=token,
            token_id=token_id,
            scim_url=f"{self.api_url}/scim/{slug}/v2",
            lms_api_key=key,
            scim=ScimClient(self.http, self, slug, token),
        )

    async def cli(self, *args: str, check: bool = True) -> Any:
        """Run `scim-bridge <args>` against this cluster; its parsed JSON output."""
        proc = await asyncio.create_subprocess_exec(
            *self._cli_argv(*args),
            env=self._env(BRIDGE_PUBLIC_URL=self.api_url),
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ClusterError(f"scim-bridge {' '.join(args[:2])} took over 60 s") from None
        if check and proc.returncode != 0:
            raise ClusterError(
                f"scim-bridge {' '.join(args[:2])} exited "
                f"{proc.returncode}: {out.decode(errors='replace')} {err.decode(errors='replace')}"
            )
        return json.loads(out) if out.strip() else None

    async def status(self, slug: str) -> dict[str, Any]:
        """`scim-bridge status <slug> --json`."""
        data: dict[str, Any] = await self.cli("status", slug, "--json")
        return data

    async def replay(self, slug: str, user: str | None = None) -> dict[str, Any]:
        """`scim-bridge replay <slug> [--user U] --json`."""
        extra = ["--user", user] if user else []
        data: dict[str, Any] = await self.cli("replay", slug, *extra, "--json")
        return data

    async def sync_counts(self, slug: str) -> StateCounts:
        """Pending/synced/failed counts straight from the shadow store (cheap to poll)."""
        return await SyncStore(self.redis).counts(slug)

    async def sync_record(self, slug: str, user_id: str) -> SyncRecord | None:
        return await SyncStore(self.redis).record(slug, user_id)

    # The sandbox's control API -----------------------------------------------------

    async def sandbox_learners(self, org: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.sandbox_url}/_sandbox/orgs/{org}/learners")
        assert response.status_code == 200, response.text
        learners: list[dict[str, Any]] = response.json()["results"]
        return learners

    async def sandbox_stats(self) -> dict[str, Any]:
        response = await self.http.get(f"{self.sandbox_url}/_sandbox/stats")
        assert response.status_code == 200, response.text
        stats: dict[str, Any] = response.json()
        return stats

    async def set_knobs(self, **knobs: Any) -> dict[str, Any]:
        """`PUT /_sandbox/knobs`: latency_ms, rate, burst, fault_rate,
        drop_after_write_rate, outage_seconds, seed, ...; the knobs now."""
        response = await self.http.put(f"{self.sandbox_url}/_sandbox/knobs", json=knobs)
        assert response.status_code == 200, response.text
        now: dict[str, Any] = response.json()
        return now

    async def insert_learner(self, org: str, **fields: Any) -> dict[str, Any]:
        """A learner made by hand in the LMS before the bridge (may set `status`)."""
        response = await self.http.post(
            f"{self.sandbox_url}/_sandbox/orgs/{org}/learners", json=fields
        )
        assert response.status_code == 201, response.text
        learner: dict[str, Any] = response.json()
        return learner

    async def edit_learner(self, org: str, learner_id: int, **fields: Any) -> dict[str, Any]:
        response = await self.http.patch(
            f"{self.sandbox_url}/_sandbox/orgs/{org}/learners/{learner_id}", json=fields
        )
        assert response.status_code == 200, response.text
        learner: dict[str, Any] = response.json()
        return learner

    async def reset_sandbox(self, *, data: bool = False, knobs: bool = False) -> None:
        response = await self.http.post(
            f"{self.sandbox_url}/_sandbox/reset", json={"data": data, "knobs": knobs}
        )
        assert response.status_code == 200, response.text

    # Waiting ---------------------------------------------------------------------

    async def wait_until(
        self,
        predicate: Callable[[], T | Awaitable[T]],
        timeout: float = 30.0,  # noqa: ASYNC109  (a polling deadline)
        *,
        message: str = "",
        interval: float = 0.25,
        require_alive: Sequence[ManagedProcess] = (),
    ) -> T:
        """`wait_until` (module level), naming the dead processes on timeout;
        fails at once when one of `require_alive` has exited."""

        def check() -> T | Awaitable[T]:
            dead = [p for p in require_alive if not p.alive]
            if dead:
                raise ClusterError(
                    f"while waiting for {message or predicate!r}: "
                    + "; ".join(f"{p.describe()}\n{p.log_tail(3000)}" for p in dead)
                )
            return predicate()

        return await wait_until(
            check, timeout, message=message, interval=interval, context=self.describe
        )

    # Internals ---------------------------------------------------------------------

    def _env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("WORKER_", "SANDBOX_", "BRIDGE_"))
            and k not in ("REDIS_URL", "QUEUE_REDIS_URL", "PORT", "HOST")
        }
        env.update(
            REDIS_URL=self.redis_url,
            BRIDGE_SECRET_KEY=SECRET_KEY,
            BRIDGE_METRICS_TOKEN=METRICS_TOKEN,
            # These suites drive tenants as fast as the machine goes; the
            # per-tenant SCIM rate limit has tests of its own.
            BRIDGE_SCIM_RATE_LIMIT="off",
            LOG_LEVEL=self.options.log_level,
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
        )
        env.update(extra)
        return env

    @staticmethod
    def _cli_argv(*args: str) -> list[str]:
        return [sys.executable, "-m", "cli", *args]

    def _redis_argv(self) -> list[str]:
        return [
            redis_executable(),
            "--port",
            str(self.redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.redis_dir),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--protected-mode",
            "no",
            "--logfile",
            "",  # stdout, which goes to the log file
        ]

    def _new_worker(self) -> int:
        i = len(self.workers)
        env = self._env(**{**DEFAULT_WORKER_ENV, **self.options.worker_env})
        proc = ManagedProcess(
            f"worker-{i}", self._cli_argv("worker"), env, self.logs / f"worker-{i}.log"
        )
        self.workers.append(proc)
        proc.start()
        return i

    def _wait_redis(self) -> None:
        assert self.redis_proc is not None
        client = redis_sync.Redis(port=self.redis_port, socket_connect_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while True:
                try:
                    client.ping()  # answers LOADING (a ConnectionError) while replaying the AOF
                    return
                except redis_sync.ConnectionError:
                    if not self.redis_proc.alive or time.monotonic() > deadline:
                        raise ClusterError(
                            f"redis-server did not start: {self.redis_proc.describe()}\n"
                            + self.redis_proc.log_tail()
                        ) from None
                    time.sleep(0.02)
        finally:
            client.close()

    async def _wait_http(self, proc: ManagedProcess, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(url)).status_code == 200:
                        return
                if not proc.alive or time.monotonic() > deadline:
                    raise ClusterError(
                        f"{proc.name} did not answer {url}: {proc.describe()}\n" + proc.log_tail()
                    )
                await asyncio.sleep(0.05)

    async def _wait_worker(self, i: int) -> None:
        """Until the worker logs arq's start line after its latest (re)start."""
        proc = self.workers[i]

        def started() -> bool:
            text = proc.log_text().rpartition("--- restarted ---")[2]
            if not proc.alive:
                raise ClusterError(f"{proc.describe()}\n{proc.log_tail()}")
            return "Starting worker for" in text

        await wait_until(started, START_TIMEOUT_S, message=f"{proc.name} to start", interval=0.05)


# -- waiting -------------------------------------------------------------------------


async def wait_until(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 30.0,  # noqa: ASYNC109  (a polling deadline, see below)
    *,
    message: str = "",
    interval: float = 0.25,
    context: Callable[[], str] | None = None,
) -> T:
    """Poll `predicate` until it returns a truthy value, and return that value.

    The predicate may be sync or async; raising AssertionError (or a
    transport error of httpx or Redis, e.g. while a process restarts) counts
    as "not yet". On timeout, fails with `message`, the last value or error,
    and `context()` (e.g. which processes have died).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
            value: T = await result if inspect.isawaitable(result) else result
            last = repr(value)
            if value:
                return value
        except (AssertionError, httpx.TransportError, redis_sync.ConnectionError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            where = f"\nprocesses: {context()}" if context else ""
            raise AssertionError(
                f"timed out after {timeout}s waiting for {message or predicate!r}\n"
                f"last: {last[:4000]}{where}"
            )
        await asyncio.sleep(interval)


# -- SCIM shapes and learner checks -----------------------------------------------------


def entra_user(
    email: str,
    *,
    given: str = "Ada",
    family: str = "Lovelace",
    title: str | None = None,
    department: str | None = None,
    company: str | None = None,
    team: str | None = None,
    external_id: str | None = None,
    active: bool = True,
    user_name: str | None = None,
) -> dict[str, Any]:
    """A create body shaped like Entra's default attribute mapping."""
    enterprise = {k: v for k, v in (("department", department), ("organization", company)) if v}
    body: dict[str, Any] = {
        "schemas": [USER_SCHEMA, ENTERPRISE, LMS_EXTENSION],
        "externalId": external_id or email.split("@")[0],
        "userName": user_name or email,
        "active": active,
        "displayName": f"{given} {family}",
        "name": {"givenName": given, "familyName": family, "formatted": f"{given} {family}"},
        "emails": [{"primary": True, "type": "work", "value": email}],
        "meta": {"resourceType": "User"},
        "roles": [],
    }
    if title:
        body["title"] = title
    if enterprise:
        body[ENTERPRISE] = enterprise
    if team:
        body[LMS_EXTENSION] = {"team": team}
    return body


def patch_ops(*operations: tuple[str, str | None, Any]) -> dict[str, Any]:
    """A PatchOp body from (op, path, value) triples, Entra's capitalised ops
    welcome; a None path makes a path-less op, a Remove carries no value."""
    ops: list[dict[str, Any]] = []
    for op, path, value in operations:
        entry: dict[str, Any] = {"op": op}
        if path is not None:
            entry["path"] = path
        if op.lower() != "remove":
            entry["value"] = value
        ops.append(entry)
    return {"schemas": [PATCH_OP], "Operations": ops}


def learner_view(learner: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a sandbox learner the bridge is responsible for."""
    return {name: learner.get(name) for name in LEARNER_FIELDS}


def duplicate_learners(learners: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Emails (case-insensitive) and external_refs held by more than one learner."""
    seen: dict[str, list[int]] = {}
    for learner in learners:
        seen.setdefault(f"email:{str(learner['email']).lower()}", []).append(learner["id"])
        if learner.get("external_ref"):
            seen.setdefault(f"external_ref:{learner['external_ref']}", []).append(learner["id"])
    return {key: ids for key, ids in seen.items() if len(ids) > 1}


# -- pytest fixtures: `from tests.support.cluster import cluster_fixture, make_cluster_fixture` --

ClusterFactory = Callable[..., Awaitable[Cluster]]


@pytest.fixture(name="make_cluster")
async def make_cluster_fixture(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[ClusterFactory]:
    """`await make_cluster(**ClusterOptions fields)`: a started cluster, stopped
    at the end of the test; its logs are printed if the test failed."""
    started: list[Cluster] = []
    failed_before = request.session.testsfailed

    async def make(**options: Any) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster-{len(started)}", ClusterOptions(**options))
        started.append(cluster)
        await cluster.start()
        return cluster

    try:
        yield make
    finally:
        failed = request.session.testsfailed > failed_before
        for built in started:
            await built.stop()
            if failed:
                built.dump_logs()


@pytest.fixture(name="cluster")
async def cluster_fixture(make_cluster: ClusterFactory) -> Cluster:
    """A cluster with the default options: Redis, sandbox, one API, two workers."""
    return await make_cluster()
