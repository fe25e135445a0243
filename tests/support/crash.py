"""Crash-point testing: fail or kill an operation at its N-th Redis command
or N-th LMS call, for every N, then recover as production would and check
that nothing acknowledged was lost (docs/architecture.md, "Crash safety").

The seams are the stable ones: redis-py's asyncio client (every command,
every pipeline or MULTI/EXEC, every Lua call is one command), the SCIM and
admin HTTP API through the real app, and the sandbox LMS's transport.

- `Faults` patches `Redis.execute_command`, `Pipeline.execute` and
  `Pipeline.immediate_execute_command`, and wraps the sandbox transport. It
  counts only calls made inside a `Run.process()` context (a context
  variable: tasks the operation starts inherit it), so the app's and the
  harness's own background traffic never shifts the count.
- A fault is one of three at the N-th call:
  `error` (it fails before reaching Redis or the LMS: connection refused),
  `lost` (it is applied, its answer is lost: a timeout),
  `kill` (it is applied, then its process dies: every later call of that
  process fails, so nothing after it reaches Redis or the LMS).
- `Lab.run_jobs` is the worker: it runs the queued arq jobs through the
  real job functions, keeping arq's semantics (a `Retry` keeps the job, an
  error ends it, a dead worker's job stays claimed until reclaimed) without
  arq's real-time waits.
- `Lab.recover` is what production does next: Entra retries a request that
  got no 2xx (on a new API process), a dead worker's locks lapse (the clock
  is moved past their lifetime by expiring them), the sweep re-enqueues
  what is pending, workers run until nothing is left.
"""

from __future__ import annotations

import contextvars
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import msgspec
from arq.connections import RedisSettings, create_pool
from arq.constants import job_key_prefix, retry_key_prefix
from arq.jobs import deserialize_job
from arq.worker import Retry
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError

from api.app import create_app
from core.settings import Settings
from shadow import SyncStore, keys
from tests.support.api import PATCH_OP, SECRET_KEY, ScimClient, api_settings
from tests.support.worker_fixtures import FAST, ORG, SandboxLms
from worker.deps import WorkerDeps
from worker.pacing import Pacer
from worker.queue import QUEUE_NAME
from worker.settings import worker_options
from worker.sweep import sweep_tenant

Target = Literal["redis", "lms"]
Mode = Literal["error", "lost", "kill"]
MODES: tuple[Mode, ...] = ("error", "lost", "kill")
ADMIN_TOKEN = "operator-token-for-crash-tests-0123456789"
#: The worker's job timeout here; a lock lives a few seconds longer.
JOB_TIMEOUT_S = 10.0
#: How far recovery moves the clock: past every lock's lifetime (a user's
#: is the job timeout and a margin, a reconcile's ten minutes).
LAPSE_MS = 11 * 60 * 1000


_LAPSE = """
local n = 0
for _, key in ipairs(redis.call('KEYS', '*')) do
  local ttl = redis.call('PTTL', key)
  if ttl > 0 and ttl <= tonumber(ARGV[1]) then redis.call('DEL', key); n = n + 1 end
end
return n
"""


class Injected(RedisConnectionError):
    """The fault this harness injected (a Redis connection error)."""


@dataclass
class Fault:
    target: Target
    mode: Mode
    at: int  # 1-based index among the target's calls

    def __str__(self) -> str:
        return f"{self.mode} at {self.target} call {self.at}"


@dataclass
class Run:
    """One execution of an operation: the calls it made, and its fault."""

    fault: Fault | None = None
    redis_calls: int = 0
    lms_calls: int = 0
    fired: bool = False
    #: Names of the processes the fault killed.
    killed: list[str] = field(default_factory=list)
    #: The worker jobs the run started, by function.
    jobs: set[str] = field(default_factory=set)

    @contextmanager
    def process(self, name: str) -> Iterator[_Process]:
        """Calls made inside count for this run, as process `name`."""
        proc = _Process(self, name)
        token = _CURRENT.set(proc)
        try:
            yield proc
        finally:
            _CURRENT.reset(token)

    def points(self, target: Target) -> int:
        return self.redis_calls if target == "redis" else self.lms_calls


@dataclass
class _Process:
    run: Run
    name: str
    dead: bool = False

    def before(self, target: Target) -> Mode | None:
        """Count one call; the fault to inject on it, if any."""
        if self.dead:
            raise Injected(f"process {self.name} is dead")
        run = self.run
        if target == "redis":
            run.redis_calls += 1
            n = run.redis_calls
        else:
            run.lms_calls += 1
            n = run.lms_calls
        fault = run.fault
        if fault is None or fault.target != target or fault.at != n:
            return None
        run.fired = True
        if fault.mode == "kill":
            run.killed.append(self.name)
        return fault.mode

    def after(self, mode: Mode) -> None:
        if mode == "kill":
            self.dead = True


_CURRENT: contextvars.ContextVar[_Process | None] = contextvars.ContextVar(
    "crash_process", default=None
)


async def _no_wait(seconds: float) -> None:
    return None


async def _guarded(call: Callable[[], Awaitable[Any]]) -> Any:
    proc = _CURRENT.get()
    if proc is None:
        return await call()
    mode = proc.before("redis")
    if mode is None:
        return await call()
    if mode == "error":
        raise Injected("injected: connection refused")
    await call()
    proc.after(mode)
    raise Injected(f"injected: answer lost ({mode})")


class Faults:
    """Installs the Redis hooks (undo with `remove`) and wraps LMS transports."""

    def __init__(self) -> None:
        self._saved: list[tuple[type, str, Any]] = []

    def install(self) -> None:
        # redis-py leaves these untyped.
        execute_command: Callable[..., Awaitable[Any]] = Redis.execute_command
        pipe_execute: Callable[..., Awaitable[Any]] = Pipeline.execute
        immediate: Callable[..., Awaitable[Any]] = Pipeline.immediate_execute_command

        @functools.wraps(execute_command)
        async def redis_execute(self: Redis, *args: Any, **options: Any) -> Any:
            return await _guarded(lambda: execute_command(self, *args, **options))

        @functools.wraps(pipe_execute)
        async def pipeline_execute(self: Pipeline, raise_on_error: bool = True) -> Any:
            if not self.command_stack and not self.watching:
                return await pipe_execute(self, raise_on_error)  # sends nothing
            return await _guarded(lambda: pipe_execute(self, raise_on_error))

        @functools.wraps(immediate)
        async def pipeline_immediate(self: Pipeline, *args: Any, **options: Any) -> Any:
            return await _guarded(lambda: immediate(self, *args, **options))

        for owner, name, new in (
            (Redis, "execute_command", redis_execute),
            (Pipeline, "execute", pipeline_execute),
            (Pipeline, "immediate_execute_command", pipeline_immediate),
        ):
            self._saved.append((owner, name, owner.__dict__[name]))
            setattr(owner, name, new)

    def remove(self) -> None:
        for owner, name, old in reversed(self._saved):
            setattr(owner, name, old)
        self._saved.clear()

    @staticmethod
    def wrap_lms(lms: SandboxLms) -> None:
        """Count and fault the calls that reach the sandbox LMS."""
        transport = lms.http._transport
        original = transport.handle_async_request

        async def handle(request: httpx.Request) -> httpx.Response:
            proc = _CURRENT.get()
            if proc is None:
                return await original(request)
            try:
                mode = proc.before("lms")
            except Injected:
                raise httpx.ConnectError("process is dead", request=request) from None
            if mode is None:
                return await original(request)
            if mode == "error":
                raise httpx.ConnectError("injected: connection refused", request=request)
            await original(request)
            proc.after(mode)
            raise httpx.ReadError(f"injected: answer lost ({mode})", request=request)

        transport.handle_async_request = handle  # type: ignore[method-assign]


# -- state -----------------------------------------------------------------


@dataclass
class Snapshot:
    redis: list[tuple[bytes, int, bytes]]
    learners: list[Any]
    by_email: dict[str, int]
    by_ref: dict[str, int]


@dataclass(frozen=True)
class Outcome:
    """What an operation left, in terms that do not depend on ids: learners
    (external_ref shown as the userName it names), users' sync states, and
    what SCIM shows (users, and groups with their members' userNames)."""

    learners: tuple[tuple[Any, ...], ...]
    users: tuple[tuple[str, str, str], ...]
    scim: tuple[tuple[Any, ...], ...] = ()


@dataclass
class Request:
    """A request as Entra (or an operator) sends it."""

    method: str
    path: str
    body: Any = None
    admin: bool = False
    #: What the sender sees as done, besides a 2xx (an operator reads the
    #: reconcile's progress, and asks again when it did not finish).
    done: Callable[[Lab], Awaitable[bool]] | None = None


class Lab:
    """One tenant (`acme`) on the test Redis and an in-process sandbox LMS."""

    def __init__(self, redis: Redis, redis_url: str, lms: SandboxLms) -> None:
        self.redis = redis
        self.redis_url = redis_url
        self.lms = lms
        self.token = ""
        self.names: dict[str, str] = {}  # user id -> userName, as ever seen
        self.worker_settings = Settings(
            redis_url=redis_url,
            job_timeout_s=JOB_TIMEOUT_S,
            sweep_grace_s=0.0,
            secret_keys=(SECRET_KEY,),
        )
        self._apis: list[AsyncTestClient[Any]] = []
        self._workers: list[WorkerDeps] = []
        self._functions = {f.name: f for f in worker_options(self.worker_settings)["functions"]}

    # -- processes -----------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Lab]:
        """Start the processes: an API and a worker that faults may kill, and
        the API and worker that take over after a restart. Apps take a third
        of a second to build, so they live for the whole lab; between runs
        only their caches survive, and the store they cache is restored."""
        async with AsyncExitStack() as stack:
            for _ in range(2):
                app = create_app(api_settings(self.redis_url, admin_token=ADMIN_TOKEN))
                http = await stack.enter_async_context(
                    AsyncTestClient(app=app, base_url="https://bridge.test")
                )
                self._apis.append(http)
                queue = await create_pool(RedisSettings.from_dsn(self.redis_url))
                stack.push_async_callback(queue.aclose)
                deps = WorkerDeps.open(self.worker_settings, queue, http=self.lms.http, retry=FAST)
                # Waits for the tenant's pace pass at once (the slot is still
                # reserved): the clock moves, as in `lapse_locks`.
                deps.pacer = Pacer(deps.redis, sleep=_no_wait)
                stack.push_async_callback(deps.aclose)
                self._workers.append(deps)
            yield self

    def api(self, restarted: bool = False) -> tuple[ScimClient, ScimClient]:
        """(SCIM client, operator client) of the first API or the restarted one."""
        http = self._apis[int(restarted)]
        admin = ScimClient(http, ORG, ADMIN_TOKEN)
        admin.base = ""
        return ScimClient(http, ORG, self.token), admin

    def worker(self, restarted: bool = False) -> WorkerDeps:
        return self._workers[int(restarted)]

    async def run_jobs(self, deps: WorkerDeps, run: Run, *, rounds: int = 12) -> bool:
        """Run queued jobs as one worker would until the queue is empty (or
        `rounds` passes over it); False when the worker died."""
        for _ in range(rounds):
            job_ids = [j.decode() for j in await self.redis.zrange(QUEUE_NAME, 0, -1)]
            if not job_ids:
                return True
            for job_id in job_ids:
                payload = await self.redis.get(job_key_prefix + job_id)
                if payload is None:  # expired or done: arq drops the entry too
                    await self.redis.zrem(QUEUE_NAME, job_id)
                    continue
                job = deserialize_job(payload)
                job_try = int(await self.redis.incr(retry_key_prefix + job_id))
                ctx = {"deps": deps, "redis": deps.queue, "job_id": job_id, "job_try": job_try}
                function = self._functions[job.function]
                run.jobs.add(job.function)
                finished = True
                with run.process("worker") as proc:
                    try:
                        if job_try <= (function.max_tries or 5):  # arq's limit
                            await function.coroutine(ctx, *job.args, **job.kwargs)
                    except Retry:
                        finished = False
                    except Exception:  # arq ends the job; the sweep finds its user
                        pass
                if proc.dead:  # claimed, never finished: reclaimed later
                    return False
                if finished:
                    async with self.redis.pipeline(transaction=True) as pipe:
                        pipe.delete(job_key_prefix + job_id, retry_key_prefix + job_id)
                        pipe.zrem(QUEUE_NAME, job_id)
                        await pipe.execute()
        return True

    async def settle(self) -> None:
        """Workers (and the sweep) until nothing is queued: setup's helper."""
        deps = self.worker()
        for _ in range(6):
            await sweep_tenant(deps, ORG)
            await self.run_jobs(deps, Run())
            if not await self._busy():
                return

    # -- requests ------------------------------------------------------------

    async def send(self, client: ScimClient, request: Request) -> httpx.Response:
        return await client.request(request.method, request.path, json=request.body)

    async def attempt(self, request: Request, run: Run) -> int | None:
        """Send once on a fresh API process inside `run`; the status, or None
        when the process died (no answer)."""
        scim, admin = self.api()
        with run.process("api") as proc:
            try:
                response = await self.send(admin if request.admin else scim, request)
            except Exception:
                return None
        if proc.dead:
            return None
        self._learn(request, response)
        return response.status_code

    async def retry_as_entra(self, request: Request) -> None:
        """Entra (or the operator) sends it again until it is answered 2xx."""
        for _ in range(3):
            scim, admin = self.api(restarted=True)
            response = await self.send(admin if request.admin else scim, request)
            status = response.status_code
            if status < 300:
                self._learn(request, response)
                return
            if request.method == "DELETE" and status == 404:
                return  # the first try deleted it
            if request.method == "POST" and status == 409 and not request.admin:
                await self._match_existing(scim, request)
                return
            if request.admin and status == 409 and "reconcile" in request.path:
                return  # the first try queued it
            if request.admin and status == 409 and "/breaker/" in request.path:
                return  # nothing held any more: the first try decided
        raise AssertionError(f"{request.method} {request.path} never answered 2xx")

    async def _match_existing(self, scim: ScimClient, request: Request) -> None:
        """After a 409 on create Entra looks the object up by its matching
        attribute (a user's userName, a group's externalId: its object id)
        and updates it to what it meant to create: for a group, its members
        (a crash after the group was stored may have left them out)."""
        attr = "userName" if request.path == "/Users" else "externalId"
        value = request.body[attr]
        found = await scim.get(request.path, params={"filter": f'{attr} eq "{value}"'})
        resources = found.json()["Resources"]
        assert len(resources) == 1, found.text
        rid = resources[0]["id"]
        if request.path == "/Users":
            self.names[rid] = value
        elif members := request.body.get("members"):
            add = {"op": "Add", "path": "members", "value": members}
            body = {"schemas": [PATCH_OP], "Operations": [add]}
            patched = await scim.patch(f"/Groups/{rid}", body)
            assert patched.status_code == 200, patched.text

    def _learn(self, request: Request, response: httpx.Response) -> None:
        if request.path == "/Users" and request.method == "POST" and response.status_code == 201:
            body = response.json()
            self.names[body["id"]] = body["userName"]

    # -- recovery and observation -------------------------------------------

    async def lapse_locks(self) -> None:
        """Move the clock past every lock's lifetime: keys that would have
        expired by then are expired (one round trip: a test store is small)."""
        await self.redis.eval(_LAPSE, 0, LAPSE_MS)

    async def recover(self, request: Request | None, answered: int | None) -> None:
        again = request is not None and (answered is None or answered >= 300)
        deps = self.worker(restarted=True)
        for _ in range(6):
            if again and request is not None:
                await self.retry_as_entra(request)
            await self.lapse_locks()
            await sweep_tenant(deps, ORG)
            await self.run_jobs(deps, Run())
            again = bool(request and request.done and not await request.done(self))
            if not again and not await self._busy():
                return

    async def _busy(self) -> bool:
        return bool(
            await self.redis.zcard(keys.state_set(ORG, "pending"))
            or await self.redis.zcard(QUEUE_NAME)
            or await self.redis.exists(keys.followup_users(ORG), keys.followup_groups(ORG))
        )

    async def outcome(self) -> Outcome:
        """The LMS and the users' states, with ids replaced by userNames."""
        org = self.lms.sandbox.store.get(ORG)
        assert org is not None
        learners = tuple(
            sorted(
                (
                    self.names.get(learner.external_ref or "", learner.external_ref),
                    learner.email,
                    learner.first_name,
                    learner.last_name,
                    learner.job_role,
                    learner.team,
                    learner.status,
                )
                for learner in org.all()
            )
        )
        sync = SyncStore(self.redis)
        users = []
        for state in ("pending", "synced", "failed"):
            for raw in await self.redis.zrange(keys.state_set(ORG, state), 0, -1):
                uid = raw.decode()
                record = await sync.record(ORG, uid)
                error = record.error if record is not None else ""
                users.append((self.names.get(uid, uid), state, error))
        return Outcome(learners, tuple(sorted(users)), await self._scim_view())

    async def _scim_view(self) -> tuple[tuple[Any, ...], ...]:
        scim, _ = self.api(restarted=True)
        rows: list[tuple[Any, ...]] = []
        listed = await scim.get("/Users", params={"count": "100"})
        assert listed.status_code == 200, listed.text
        for user in listed.json()["Resources"]:
            self.names.setdefault(user["id"], user["userName"])
            name = user.get("name", {})
            rows.append(("user", user["userName"], user.get("active"), name.get("givenName")))
        listed = await scim.get("/Groups", params={"count": "100"})
        assert listed.status_code == 200, listed.text
        for group in listed.json()["Resources"]:
            full = (await scim.get(f"/Groups/{group['id']}")).json()
            ids = [m["value"] for m in full.get("members", [])]
            members = sorted(self.names.get(i, i) for i in ids)
            rows.append(("group", full["displayName"], tuple(members), None))
        return tuple(sorted(rows, key=repr))

    async def check_invariants(self, what: str) -> None:
        """No duplicate learner, nothing pending or left over."""
        org = self.lms.sandbox.store.get(ORG)
        assert org is not None
        emails = [learner.email.lower() for learner in org.all()]
        assert len(emails) == len(set(emails)), f"{what}: duplicate learner {emails}"
        refs = [learner.external_ref for learner in org.all() if learner.external_ref]
        assert len(refs) == len(set(refs)), f"{what}: two learners for one user {refs}"
        pending = await self.redis.zrange(keys.state_set(ORG, "pending"), 0, -1)
        assert not pending, f"{what}: users stuck pending {pending}"
        sync = SyncStore(self.redis)
        for raw in await self.redis.zrange(keys.resource_ids(ORG, "u"), 0, -1):
            record = await sync.record(ORG, raw.decode())
            state = record.state if record is not None else None
            assert state in ("synced", "failed"), f"{what}: user {raw!r} is {state}"
        held = await self.redis.zrange(keys.breaker_held(ORG), 0, -1)
        assert not held, f"{what}: users still held by the breaker {held}"
        assert not await self.redis.zcard(QUEUE_NAME), f"{what}: jobs left in the queue"
        left = await self.redis.exists(keys.followup_users(ORG), keys.followup_groups(ORG))
        assert not left, f"{what}: group follow-ups left undone"

    # -- snapshots -----------------------------------------------------------

    async def snapshot(self) -> Snapshot:
        dumped = []
        for key in await self.redis.keys("*"):
            value = await self.redis.dump(key)
            if value is not None:
                dumped.append((key, max(0, await self.redis.pttl(key)), value))
        org = self.lms.sandbox.store.get(ORG)
        assert org is not None
        return Snapshot(dumped, org.all(), dict(org._by_email), dict(org._by_ref))

    async def restore(self, snap: Snapshot) -> None:
        await self.redis.flushall()
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, ttl, value in snap.redis:
                pipe.restore(key, ttl, value)
            await pipe.execute()
        org = self.lms.sandbox.store.get(ORG)
        assert org is not None
        org._learners = [msgspec.structs.replace(learner) for learner in snap.learners]
        org._by_email = dict(snap.by_email)
        org._by_ref = dict(snap.by_ref)


# -- the crash-point sweep ---------------------------------------------------


Operation = Callable[[Lab, Run], Awaitable[tuple[Request | None, int | None]]]


@dataclass
class Coverage:
    """Crash points of one path: calls of each kind, and runs made."""

    path: str
    redis_calls: int
    lms_calls: int
    jobs: tuple[str, ...] = ()
    runs: int = 0
    seconds: float = 0.0

    @property
    def points(self) -> int:
        return self.redis_calls + self.lms_calls


async def request_then_workers(lab: Lab, run: Run, request: Request) -> tuple[Request, int | None]:
    """The common operation: one request, then one worker until idle."""
    status = await lab.attempt(request, run)
    await lab.run_jobs(lab.worker(), run)
    return request, status


async def crash_points(
    lab: Lab,
    name: str,
    operation: Operation,
    *,
    modes: tuple[Mode, ...] = MODES,
) -> tuple[Outcome, Coverage]:
    """Run `operation` once to count its calls and take its outcome, then once
    per (target, mode, N), each from the same starting state, recovered and
    compared; the reference outcome and the coverage."""
    began = time.monotonic()
    start = await lab.snapshot()
    names = dict(lab.names)
    # A first run loads the Lua scripts into Redis (kept across restores), so
    # that every counted run issues the same commands.
    await operation(lab, Run())
    await lab.restore(start)
    lab.names = dict(names)
    reference_run = Run()
    request, status = await operation(lab, reference_run)
    assert status is not None, f"{name}: the fault-free run got no answer"
    assert status < 300, f"{name}: the fault-free run answered {status}"
    await lab.recover(request, status)
    await lab.check_invariants(f"{name} (no fault)")
    reference = await lab.outcome()
    coverage = Coverage(
        name,
        reference_run.redis_calls,
        reference_run.lms_calls,
        jobs=tuple(sorted(reference_run.jobs)),
        runs=1,
    )
    targets: tuple[Target, ...] = ("redis", "lms")
    for target in targets:
        for mode in modes:
            for n in range(1, reference_run.points(target) + 1):
                fault = Fault(target, mode, n)
                await lab.restore(start)
                lab.names = dict(names)
                run = Run(fault)
                request, status = await operation(lab, run)
                assert run.fired, f"{name}: {fault} was never reached ({run})"
                await lab.recover(request, status)
                what = f"{name}, {fault}"
                await lab.check_invariants(what)
                got = await lab.outcome()
                assert got == reference, f"{what}:\n got {got}\nwant {reference}"
                coverage.runs += 1
    await lab.restore(start)
    lab.names = names
    coverage.seconds = time.monotonic() - began
    return reference, coverage
