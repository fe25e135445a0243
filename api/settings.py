"""Settings, read once from the environment into a frozen Struct and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

from scim.filter import MAX_FILTER_LENGTH
from scim.patch import MAX_PATCH_OPERATIONS

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    redis_url: str = DEFAULT_REDIS_URL
    # The arq queue may live on its own Redis; empty means the shadow's Redis.
    queue_redis_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    admin_token: str = ""
    # Declared in /ServiceProviderConfig and enforced.
    max_body_bytes: int = 1_048_576
    max_page_size: int = 200
    default_page_size: int = 100
    # The filter parser refuses more than MAX_FILTER_LENGTH characters
    # whatever this says; a smaller value here is a tighter API limit.
    max_filter_length: int = MAX_FILTER_LENGTH
    # A filter that is not answered from an index scans at most this many resources.
    max_scan: int = 50_000
    # Worker tuning.
    job_timeout_s: float = 120.0
    sweep_interval_s: int = 30
    sweep_grace_s: float = 60.0
    # Failed authentications one client address may make a minute before
    # its further failures are answered 429 (valid tokens always pass).
    auth_failures_per_minute: int = 60
    max_jobs: int = 50
    poll_delay_s: float = 0.05
    # Drift reconciliation on a schedule: every tenant at most this often
    # (0: only when asked for), and at most this many at a time.
    reconcile_every_h: float = 0.0
    reconcile_concurrency: int = 2
    log_level: str = "INFO"

    @property
    def max_patch_operations(self) -> int:
        """Operations per PATCH request: the PATCH engine's own limit (not configurable)."""
        return MAX_PATCH_OPERATIONS

    @property
    def filter_length_limit(self) -> int:
        """The filter length actually enforced: this setting, capped by the parser's."""
        return min(self.max_filter_length, MAX_FILTER_LENGTH)

    @property
    def scim_base(self) -> str:
        return self.public_url.rstrip("/") + "/scim"

    @property
    def queue_url(self) -> str:
        return self.queue_redis_url or self.redis_url

    def scim_url(self, tenant: str) -> str:
        return f"{self.scim_base}/{tenant}/v2"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `REDIS_URL`, `PORT`, `BRIDGE_PUBLIC_URL`, `BRIDGE_ADMIN_TOKEN`, ..."""
    env = os.environ if env is None else env
    port = int(env.get("PORT", "8000"))
    host = env.get("HOST", "127.0.0.1")
    values: dict[str, object] = {
        "redis_url": env.get("REDIS_URL", DEFAULT_REDIS_URL),
        "queue_redis_url": env.get("QUEUE_REDIS_URL", ""),
        "host": host,
        "port": port,
        "public_url": env.get("BRIDGE_PUBLIC_URL", f"http://127.0.0.1:{port}"),
        "admin_token": env.get("BRIDGE_ADMIN_TOKEN", ""),
        "log_level": env.get("LOG_LEVEL", "INFO"),
    }
    for field, var, cast in (
        ("max_jobs", "WORKER_MAX_JOBS", int),
        ("job_timeout_s", "WORKER_JOB_TIMEOUT", float),
        ("sweep_interval_s", "WORKER_SWEEP_INTERVAL", int),
        ("sweep_grace_s", "WORKER_SWEEP_GRACE", float),
        ("poll_delay_s", "WORKER_POLL_DELAY", float),
        ("reconcile_every_h", "WORKER_RECONCILE_EVERY_H", float),
        ("reconcile_concurrency", "WORKER_RECONCILE_CONCURRENCY", int),
    ):
        if var in env:
            values[field] = cast(env[var])
    return msgspec.convert(values, Settings)
