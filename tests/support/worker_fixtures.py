"""Fixtures for worker tests: the LMS sandbox in-process, deps over real Redis.

The sandbox app is reached through an ASGI transport that records every
request (so a test can assert "one PATCH with only these fields") and
turns the sandbox's deliberate connection drops into the transport error
a real socket would give.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import httpx
import pytest
import respx
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import Redis

from core.settings import Settings
from lms_client import RetryPolicy
from lms_sandbox import Sandbox, SandboxConfig, create_app
from lms_sandbox.gate import ConnectionDropped
from lms_sandbox.store import Learner as SandboxLearner
from shadow import SyncRecord, Tenant
from tests.support.api import SECRET_KEY, bridge_settings
from tests.support.lms_answers import learner_json
from worker import sync as sync_module
from worker.deps import WorkerDeps
from worker.metrics import WorkerMetrics
from worker.sync import sync_user

ORG = "acme"
KEY = "sk-test-acme-0123456789"
BASE = f"http://lms.test/org/{ORG}"
#: Where a tenant's LMS is a respx mock (`mocked`) rather than the sandbox.
MOCK_BASE = f"https://lms.mock/org/{ORG}"
LEARNERS = f"/org/{ORG}/api/v1/learners"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
FAST = RetryPolicy(
    max_attempts=3,
    initial_backoff=0.001,
    max_backoff=0.002,
    jitter=0.001,
    total_budget=2.0,
    max_retry_after_wait=0.5,
)

OnRequest = Callable[[httpx.Request], Awaitable[None]]


class Call(NamedTuple):
    method: str
    path: str
    body: dict[str, Any] | None
    query: dict[str, str] | None = None

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"


class _SandboxTransport(httpx.ASGITransport):
    def __init__(self, lms: SandboxLms) -> None:
        super().__init__(app=create_app(sandbox=lms.sandbox))  # type: ignore[arg-type]
        self._lms = lms

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        query = dict(request.url.params) or None
        self._lms.calls.append(Call(request.method, request.url.path, body, query))
        for hook in list(self._lms.on_request):
            await hook(request)
        try:
            return await super().handle_async_request(request)
        except Exception as exc:
            if not _caused_by_drop(exc):
                raise
            self._lms.sandbox.knobs.drop_after_write_rate = 0.0  # drop one write only
            raise httpx.RemoteProtocolError("peer closed connection", request=request) from exc


def _caused_by_drop(exc: BaseException | None) -> bool:
    """Litestar wraps an error raised after the response started; look inside."""
    while exc is not None:
        if isinstance(exc, ConnectionDropped):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class SandboxLms:
    """An in-process sandbox LMS with one organisation and a call log."""

    def __init__(self, **knobs: Any) -> None:
        self.sandbox = Sandbox(SandboxConfig(orgs={ORG: KEY}, **knobs))
        self.calls: list[Call] = []
        self.on_request: list[OnRequest] = []
        self.http = httpx.AsyncClient(transport=_SandboxTransport(self))

    def learners(self) -> list[SandboxLearner]:
        org = self.sandbox.store.get(ORG)
        assert org is not None
        return org.all()

    def learner(self, learner_id: int) -> SandboxLearner:
        org = self.sandbox.store.get(ORG)
        assert org is not None
        found = org.get(learner_id)
        assert found is not None
        return found

    def insert(self, status: str = "active", **fields: str | None) -> SandboxLearner:
        """A learner made by hand in the LMS, long before the bridge."""
        org = self.sandbox.store.get(ORG)
        assert org is not None
        return org.create(fields, status=status)  # type: ignore[arg-type]

    def set_status_by_hand(self, learner_id: int, status: str) -> None:
        """An LMS admin (de)activates a learner behind the bridge's back."""
        org = self.sandbox.store.get(ORG)
        assert org is not None
        assert org.update(learner_id, {}, status=status) is not None  # type: ignore[arg-type]

    def routes(self) -> list[str]:
        """Calls as "METHOD /api/v1/..." without the organisation prefix."""
        return [c.route.replace(f"/org/{ORG}", "") for c in self.calls]

    def drop_next_write(self) -> None:
        """The next successful POST/PATCH is applied, but its answer is lost."""
        self.sandbox.knobs.drop_after_write_rate = 1.0


def scim_user(
    email: str = "ada@example.com",
    given: str | None = "Ada",
    family: str | None = "Lovelace",
    *,
    active: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A canonical SCIM user document as the shadow stores it (no id, no meta)."""
    name = {k: v for k, v in (("givenName", given), ("familyName", family)) if v is not None}
    return {
        "schemas": [USER_SCHEMA],
        "userName": email,
        "name": name,
        "emails": [{"value": email, "type": "work", "primary": True}],
        "active": active,
        **extra,
    }


@pytest.fixture
def lms() -> SandboxLms:
    return SandboxLms()


@pytest.fixture
def worker_settings(redis_url: str) -> Settings:
    return bridge_settings(
        redis_url,
        job_timeout_s=30.0,
        sweep_grace_s=0.0,
        secret_keys=(SECRET_KEY,),
    )


@pytest.fixture
async def queue(redis: Redis, queue_url: str) -> AsyncIterator[ArqRedis]:
    """The arq queue: on the shadow's Redis, or beside a cluster on its own."""
    pool = await create_pool(RedisSettings.from_dsn(queue_url))
    try:
        yield pool
    finally:
        await pool.aclose()


@pytest.fixture
async def deps(
    worker_settings: Settings, queue: ArqRedis, lms: SandboxLms
) -> AsyncIterator[WorkerDeps]:
    built = WorkerDeps.open(worker_settings, queue, http=lms.http, retry=FAST)
    try:
        yield built
    finally:
        await built.aclose()
        await lms.http.aclose()


@pytest.fixture
async def tenant(deps: WorkerDeps) -> Tenant:
    return await deps.tenants.create(
        Tenant(slug=ORG, name="Acme", lms_url=BASE, lms_api_key=KEY, lms_rate=20, lms_burst=40)
    )


class MockedLms(NamedTuple):
    """Deps whose tenant's LMS is a respx mock, and the metrics they count."""

    deps: WorkerDeps
    metrics: WorkerMetrics
    router: respx.MockRouter


def mock_learner(learner_id: int = 7, **changes: Any) -> dict[str, Any]:
    """A learner as the mocked LMS answers it: the user `u-1`, ada@example.com."""
    return learner_json(
        learner_id, **{"email": "ada@example.com", "external_ref": "u-1", **changes}
    )


@pytest.fixture
async def mocked(worker_settings: Settings, queue: ArqRedis) -> AsyncIterator[MockedLms]:
    """Deps whose tenant's LMS is a respx mock (for answers the sandbox never gives)."""
    metrics = WorkerMetrics()
    http = httpx.AsyncClient()
    deps = WorkerDeps.open(worker_settings, queue, http=http, retry=FAST, metrics=metrics)
    await deps.tenants.create(
        Tenant(slug=ORG, name="Acme", lms_url=MOCK_BASE, lms_api_key=KEY, lms_rate=0)
    )
    try:
        with respx.mock(base_url=MOCK_BASE, assert_all_called=False) as router:
            yield MockedLms(deps, metrics, router)
    finally:
        await deps.aclose()
        await http.aclose()


async def put_user(
    deps: WorkerDeps, user_id: str, doc: dict[str, Any] | None, mode: str = "create"
) -> int:
    """Write the shadow as the API would (without enqueueing); the new version."""
    outcome = await deps.resources.write(ORG, "u", user_id, mode, doc, interval_ms=1)  # type: ignore[arg-type]
    return outcome.version


async def run_sync(deps: WorkerDeps, user_id: str, **ctx: Any) -> str:
    """The job body as arq would call it, without arq."""
    return await sync_user({"deps": deps, **ctx}, ORG, user_id)


async def record_of(deps: WorkerDeps, user_id: str) -> SyncRecord:
    """The user's sync status as ops see it (it must exist)."""
    record = await deps.sync.record(ORG, user_id)
    assert record is not None, f"no sync record for {user_id}"
    return record


def break_every_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sync pass ends in an unexpected error (a bug, not an LMS answer)."""

    async def broken(self: object) -> object:
        raise KeyError("a bug")

    monkeypatch.setattr(sync_module._Pass, "run", broken)
