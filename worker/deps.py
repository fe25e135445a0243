"""The worker's dependencies, built once on start-up and passed to every job.

One typed object instead of an untyped `ctx` grab-bag (docs/architecture.md, "Conventions"):
jobs take it from `ctx["deps"]`, tests build it directly. It owns the
shadow Redis client (unless it shares the queue's), one httpx pool shared by
every tenant's `LmsClient`, and small caches keyed by what they depend on,
so a tenant whose LMS settings or mapping overrides change gets fresh ones
at its next job without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from arq.connections import ArqRedis
from redis.asyncio import Redis

from core.connect import check_queue_placement, connect
from core.sealing import Sealer, SealError, is_sealed
from core.settings import Settings
from lms_client import DEFAULT_TIMEOUT, LmsClient, RetryPolicy
from mappings import RuleSet, build_rules, decode_overrides
from shadow import ResourceStore, SyncStore, Tenant, TenantStore, keys
from shadow.charts import ChartStore
from worker.fairness import NoAnswerStreak, TenantSlots
from worker.pacing import Pacer, TenantLimiter

__all__ = ["NO_METRICS", "NoMetrics", "SyncMetrics", "TenantLms", "WorkerDeps", "retry_policy_for"]


class SyncMetrics(Protocol):
    """What the worker reports; the API's Prometheus module can implement it."""

    def sync_lag(self, tenant: str, seconds: float) -> None:
        """Seconds from a user becoming pending to its change being applied."""

    def lms_call(self, tenant: str, endpoint: str, outcome: str, seconds: float) -> None:
        """One HTTP attempt to the LMS (`lms_client.OnCall`, with the tenant)."""

    def lms_retry(self, tenant: str) -> None:
        """The LMS client is about to repeat the attempt it just made."""


class NoMetrics:
    """The default: report nothing."""

    def sync_lag(self, tenant: str, seconds: float) -> None:
        return None

    def lms_call(self, tenant: str, endpoint: str, outcome: str, seconds: float) -> None:
        return None

    def lms_retry(self, tenant: str) -> None:
        return None


NO_METRICS = NoMetrics()


def retry_policy_for(settings: Settings) -> RetryPolicy:
    """The inner retry tier's budget, kept well below the job timeout.

    A pass can make a few LMS calls (POST, GET after a 409, PATCH, a status
    action), each under its own budget, so each gets a sixth of the job's
    time at most (docs/architecture.md, "Conventions"); anything longer becomes a deferral.
    """
    budget = max(1.0, min(30.0, settings.job_timeout_s / 6))
    return RetryPolicy(total_budget=budget, max_retry_after_wait=min(10.0, budget / 2))


@dataclass(frozen=True)
class TenantLms:
    """A tenant's LMS client and the limiter it paces through."""

    client: LmsClient
    limiter: TenantLimiter


@dataclass
class WorkerDeps:
    """Everything a job needs; `open` builds it, `aclose` releases it."""

    settings: Settings
    redis: Redis
    queue: ArqRedis
    http: httpx.AsyncClient
    retry: RetryPolicy
    pacer: Pacer
    metrics: SyncMetrics = NO_METRICS
    tenants: TenantStore = field(init=False)
    resources: ResourceStore = field(init=False)
    sync: SyncStore = field(init=False)
    charts: ChartStore = field(init=False)
    sealer: Sealer | None = field(init=False, repr=False)
    #: One tenant's jobs running in this worker, capped (worker/fairness.py).
    slots: TenantSlots = field(init=False, repr=False)
    #: Each tenant's LMS calls in a row that got no answer.
    no_answers: NoAnswerStreak = field(init=False, repr=False)
    _lms: dict[str, tuple[tuple[str, str, float, int], TenantLms]] = field(
        default_factory=dict, init=False, repr=False
    )
    _rules: dict[str, tuple[bytes | None, RuleSet]] = field(
        default_factory=dict, init=False, repr=False
    )
    _owns_redis: bool = field(default=False, repr=False)
    _owns_http: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.sealer = self.settings.sealer()
        self.tenants = TenantStore(self.redis, sealer=self.sealer)
        self.resources = ResourceStore(self.redis)
        self.sync = SyncStore(self.redis, retention=self.settings.retention)
        self.charts = ChartStore(self.redis)
        self.slots = TenantSlots(self.settings.tenant_job_cap)
        self.no_answers = NoAnswerStreak()

    @classmethod
    def open(
        cls,
        settings: Settings,
        queue: ArqRedis,
        *,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        metrics: SyncMetrics | None = None,
    ) -> WorkerDeps:
        """Build from settings. Pass `http` (e.g. over an ASGI transport) to
        reach the LMS some other way; a given client is not closed here."""
        check_queue_placement(settings.redis_url, settings.queue_redis_url)
        owns_redis = settings.redis_url != settings.queue_url
        redis: Redis = connect(settings.redis_url) if owns_redis else queue
        owns_http = http is None
        if http is None:
            pool = max(10, settings.max_jobs * 2)
            http = httpx.AsyncClient(
                timeout=DEFAULT_TIMEOUT,
                limits=httpx.Limits(
                    max_connections=pool, max_keepalive_connections=pool, keepalive_expiry=30.0
                ),
            )
        return cls(
            settings=settings,
            redis=redis,
            queue=queue,
            http=http,
            retry=retry or retry_policy_for(settings),
            pacer=pacer or Pacer(redis),
            metrics=metrics or NO_METRICS,
            _owns_redis=owns_redis,
            _owns_http=owns_http,
        )

    @staticmethod
    def of(ctx: Mapping[str, Any]) -> WorkerDeps:
        """The deps in an arq job context (put there by the worker's on_startup)."""
        deps = ctx.get("deps")
        if not isinstance(deps, WorkerDeps):
            raise TypeError("ctx['deps'] must be a WorkerDeps built by the worker's on_startup")
        return deps

    async def aclose(self) -> None:
        """Close what `open` created; the queue pool belongs to arq."""
        self._lms.clear()
        if self._owns_http:
            await self.http.aclose()
        if self._owns_redis:
            await self.redis.aclose()

    def lms_key(self, tenant: Tenant) -> str:
        """The tenant's LMS API key, unsealed (core/sealing.py); raises
        `SealError` when no configured BRIDGE_SECRET_KEY opens it."""
        if self.sealer is None:
            if is_sealed(tenant.lms_api_key):
                raise SealError("BRIDGE_SECRET_KEY is not set, and the tenant's key is sealed")
            return tenant.lms_api_key
        return self.sealer.unseal(tenant.lms_api_key)

    def lms_for(self, tenant: Tenant) -> TenantLms:
        """The tenant's client, rebuilt when its URL, key, rate or burst change."""
        fingerprint = (tenant.lms_url, tenant.lms_api_key, tenant.lms_rate, tenant.lms_burst)
        cached = self._lms.get(tenant.slug)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        limiter = self.pacer.limiter(tenant.slug, tenant.lms_rate, tenant.lms_burst)
        metrics, slug = self.metrics, tenant.slug

        def on_call(endpoint: str, outcome: str, seconds: float) -> None:
            metrics.lms_call(slug, endpoint, outcome, seconds)

        async def sleep(seconds: float) -> None:
            # The retry policy sleeps only between attempts: each sleep is a retry.
            with contextlib.suppress(Exception):  # metrics never break a sync
                metrics.lms_retry(slug)
            await asyncio.sleep(seconds)

        client = LmsClient(
            tenant.lms_url,
            self.lms_key(tenant),
            http=self.http,
            retry=self.retry,
            limiter=limiter,
            on_call=on_call,
            sleep=sleep,
        )
        entry = TenantLms(client=client, limiter=limiter)
        self._lms[tenant.slug] = (fingerprint, entry)
        return entry

    async def rules_for(self, tenant: str) -> RuleSet:
        """The tenant's mapping rules; raises `MappingConfigError` when its
        stored overrides no longer build (the user then fails visibly)."""
        raw = await self.redis.get(keys.mapping(tenant))
        cached = self._rules.get(tenant)
        if cached is not None and cached[0] == raw:
            return cached[1]
        rules = build_rules(decode_overrides(raw) if raw else None)
        self._rules[tenant] = (raw, rules)
        return rules
