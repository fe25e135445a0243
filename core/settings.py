"""Settings, read once from the environment into a frozen Struct and passed down."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import msgspec

from core.sealing import MIN_KEY_LENGTH, Sealer
from scim.filter import MAX_FILTER_LENGTH
from scim.patch import MAX_PATCH_OPERATIONS

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class Retention(msgspec.Struct, frozen=True, kw_only=True):
    """Caps of the per-user provisioning logs (`BRIDGE_EVENTS_KEPT`,
    `BRIDGE_EVENTS_MAX_AGE_DAYS`)."""

    events_kept: int = 200
    events_max_age_s: float = 30 * 86_400.0

    @property
    def events_max_age_ms(self) -> int:
        return int(self.events_max_age_s * 1000)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    redis_url: str = DEFAULT_REDIS_URL
    # The arq queue may live on its own Redis; empty means the shadow's Redis.
    queue_redis_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    # False when BRIDGE_PUBLIC_URL was not given and public_url is a guess.
    public_url_set: bool = True
    # Proxies whose X-Forwarded-Proto/Host name the public URL when
    # BRIDGE_PUBLIC_URL is unset (api/forwarded.py): addresses or networks.
    trusted_proxies: str = ""
    admin_token: str = ""
    # BRIDGE_SECRET_KEY: the keys that seal LMS API keys at rest, newest
    # first (core/sealing.py); empty: nothing can be sealed or unsealed.
    secret_keys: tuple[str, ...] = ()
    # Opens /metrics (besides the operator token), for a Prometheus that
    # should not hold the operator token.
    metrics_token: str = ""
    # On SIGTERM the API answers /readyz 503 and keeps serving this long
    # before it closes its listener, so a load balancer stops sending first.
    drain_s: float = 0.0
    # The API listener (api/http_limits.py): connections and requests at once
    # (past it a 503), seconds to send the request line and headers, their
    # size, and seconds an idle keep-alive connection is kept.
    api_max_connections: int = 1000
    api_header_timeout_s: float = 10.0
    api_max_header_bytes: int = 65_536
    api_keep_alive_s: int = 5
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
    # Each tenant's SCIM request rate (Tenant.scim_rate, shadow/limits.py);
    # BRIDGE_SCIM_RATE_LIMIT=off turns it off (benchmarks of the pipeline).
    scim_rate_limit: bool = True
    # One tenant's SCIM requests in flight in one API process (api/inflight.py).
    scim_inflight_per_tenant: int = 32
    # SCIM requests one API process works on at once, one tenant at most
    # half of them; past it turns go fairly between tenants (api/fair_turns.py).
    # Half of it is the in-flight cap, so a lone tenant is never held below
    # what it may send (docs/operations.md, "Per-tenant request rate").
    api_turns: int = 64
    # Each tenant's budget of resources read by filters no index answers, a
    # second and in a burst (shadow/limits.py ScanBudget); lifted with the rate.
    scan_rate: float = 1_000.0
    scan_burst: int = 2_000
    max_jobs: int = 50
    # One tenant's jobs at once in one worker (worker/fairness.py); 0: half of max_jobs.
    tenant_max_jobs: int = 0
    poll_delay_s: float = 0.05
    # /metrics: per-tenant series for at most this many tenants with work
    # (most failed, then most pending, first); 0 for fleet totals only
    # (api/metrics.py, docs/operations.md "Sizing").
    metrics_tenant_top_k: int = 500
    # Drift reconciliation on a schedule: every tenant at most this often
    # (0: only when asked for), and at most this many at a time.
    reconcile_every_h: float = 0.0
    reconcile_concurrency: int = 2
    log_level: str = "INFO"
    # Provisioning logs: entries kept per user, and for how long (days).
    events_kept: int = 200
    events_max_age_days: float = 30.0

    def __repr__(self) -> str:
        """Never the tokens or keys: settings end up in logs and tracebacks."""
        from core.connect import describe

        where = describe(self.redis_url)
        return f"Settings(redis_url={where!r}, port={self.port}, <secrets redacted>)"

    def sealer(self) -> Sealer | None:
        """What seals LMS API keys at rest; None when BRIDGE_SECRET_KEY is unset."""
        return Sealer(self.secret_keys) if self.secret_keys else None

    def require_sealer(self) -> Sealer:
        """The sealer, for a process that stores or uses LMS API keys."""
        sealer = self.sealer()
        if sealer is None:
            raise ConfigError(
                "BRIDGE_SECRET_KEY: expected a key of at least "
                f"{MIN_KEY_LENGTH} random characters to seal LMS API keys at rest; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return sealer

    @property
    def retention(self) -> Retention:
        return Retention(
            events_kept=self.events_kept, events_max_age_s=self.events_max_age_days * 86_400
        )

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
        """The SCIM base: the request's, when a trusted proxy named it."""
        return (request_public_url.get() or self.public_url).rstrip("/") + "/scim"

    @property
    def tenant_job_cap(self) -> int:
        """One tenant's jobs at once in one worker: one slow LMS never holds every slot."""
        return self.tenant_max_jobs or max(1, self.max_jobs // 2)

    @property
    def queue_url(self) -> str:
        return self.queue_redis_url or self.redis_url

    def scim_url(self, tenant: str) -> str:
        return f"{self.scim_base}/{tenant}/v2"


#: The public base URL a trusted proxy gave for the request being served
#: (api/forwarded.py); None outside requests and without one.
request_public_url: ContextVar[str | None] = ContextVar("request_public_url", default=None)


def parse_proxies(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`BRIDGE_TRUSTED_PROXIES`: comma-separated addresses or networks."""
    found = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            found.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"BRIDGE_TRUSTED_PROXIES: {_shown(item)} is not an IP address or network "
                "(expected e.g. 10.0.0.5, 10.0.0.0/8, ::1)"
            ) from None
    return tuple(found)


class ConfigError(ValueError):
    """An environment value the bridge refuses; the message names the
    variable and what it expects, in one line (secrets are never echoed)."""


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_REDIS_SCHEMES = ("redis", "rediss", "unix")
#: Long enough that guessing is hopeless; `secrets.token_urlsafe(32)` gives 43.
MIN_TOKEN_LENGTH = 32
TOKEN_HINT = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _number(env: Mapping[str, str], var: str, cast: type[int] | type[float], low: float) -> Any:
    text = env[var].strip()
    kind = "a whole number" if cast is int else "a number"
    try:
        value = cast(text)
    except ValueError:
        raise ConfigError(f"{var}={_shown(text)}: expected {kind} >= {low:g}") from None
    if not value >= low or value in (float("inf"),):
        raise ConfigError(f"{var}={_shown(text)}: expected {kind} >= {low:g}")
    return value


def _port(env: Mapping[str, str], var: str, default: int) -> int:
    text = env.get(var, str(default)).strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ConfigError(f"{var}={_shown(text)}: expected a TCP port, 1 to 65535")
    return int(text)


def check_redis_url(var: str, url: str) -> None:
    """A URL redis-py (or core.connect) can use: a known scheme, a valid port."""
    from core.connect import CLUSTER_SCHEMES, SENTINEL_SCHEMES, RedisUrlError, describe, parse

    expects = (
        "expected redis://[:password@]host[:port][/db] "
        "(or rediss://, unix://, redis+sentinel://, redis+cluster://)"
    )
    shown = _shown(describe(url))
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in CLUSTER_SCHEMES + SENTINEL_SCHEMES:
        try:
            parse(url)
        except (RedisUrlError, ValueError) as exc:
            raise ConfigError(f"{var}={shown}: {exc}") from None
        return
    if scheme not in _REDIS_SCHEMES:
        raise ConfigError(f"{var}={shown}: {expects}")
    if scheme == "unix":
        return
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"{var}={shown}: the port must be 1 to 65535")
    if not parts.hostname:
        raise ConfigError(f"{var}={shown}: {expects}")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ConfigError(f"{var}={shown}: the database must be a number (/0)")


def _public_url(env: Mapping[str, str], port: int) -> str:
    url = env.get("BRIDGE_PUBLIC_URL", "").strip() or f"http://127.0.0.1:{port}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ConfigError(
            f"BRIDGE_PUBLIC_URL={_shown(url)}: expected an absolute http(s) URL "
            "such as https://bridge.example.com"
        )
    return url


def _secret(env: Mapping[str, str], var: str, least: int) -> str:
    value = env.get(var, "")
    if value and len(value) < least:
        # Never the value itself: it is a secret, even a bad one.
        raise ConfigError(
            f"{var}: expected at least {least} characters (got {len(value)}); {TOKEN_HINT}"
        )
    return value


def _secret_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    """BRIDGE_SECRET_KEY: one key, or several separated by commas, newest first."""
    raw = env.get("BRIDGE_SECRET_KEY", "")
    found = tuple(part.strip() for part in raw.split(",") if part.strip())
    for n, key in enumerate(found, 1):
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"BRIDGE_SECRET_KEY: key {n} has {len(key)} characters, expected at least "
                f"{MIN_KEY_LENGTH}; {TOKEN_HINT}"
            )
    return found


def _switch(env: Mapping[str, str], var: str) -> bool:
    """An on/off variable, on when unset."""
    text = env.get(var, "on").strip().lower()
    if text not in ("on", "off", "yes", "no", "true", "false", "1", "0"):
        raise ConfigError(f"{var}={_shown(text)}: expected on or off")
    return text in ("on", "yes", "true", "1")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `REDIS_URL`, `PORT`, `BRIDGE_PUBLIC_URL`, `BRIDGE_ADMIN_TOKEN`, ...

    Every value is checked here, so that a process refuses a bad one at start
    with `ConfigError` (one line naming the variable) instead of running
    wrongly or failing later with a traceback.
    """
    env = os.environ if env is None else env
    port = _port(env, "PORT", 8000)
    host = env.get("HOST", "127.0.0.1").strip()
    if not host:
        raise ConfigError("HOST='': expected an address to listen on, e.g. 127.0.0.1 or 0.0.0.0")
    redis_url = env.get("REDIS_URL", DEFAULT_REDIS_URL).strip()
    check_redis_url("REDIS_URL", redis_url)
    queue_url = env.get("QUEUE_REDIS_URL", "").strip()
    if queue_url:
        check_redis_url("QUEUE_REDIS_URL", queue_url)
    level = env.get("LOG_LEVEL", "INFO").strip().upper()
    if level not in _LOG_LEVELS:
        raise ConfigError(
            f"LOG_LEVEL={_shown(env['LOG_LEVEL'])}: expected one of {', '.join(_LOG_LEVELS)}"
        )
    _secret(env, "BRIDGE_SESSION_SECRET", 16)
    parse_proxies(env.get("BRIDGE_TRUSTED_PROXIES", ""))
    values: dict[str, object] = {
        "redis_url": redis_url,
        "queue_redis_url": queue_url,
        "host": host,
        "port": port,
        "public_url": _public_url(env, port),
        "public_url_set": bool(env.get("BRIDGE_PUBLIC_URL", "").strip()),
        "admin_token": _secret(env, "BRIDGE_ADMIN_TOKEN", MIN_TOKEN_LENGTH),
        "secret_keys": _secret_keys(env),
        "metrics_token": _secret(env, "BRIDGE_METRICS_TOKEN", MIN_TOKEN_LENGTH),
        "log_level": level,
        "trusted_proxies": env.get("BRIDGE_TRUSTED_PROXIES", "").strip(),
        "scim_rate_limit": _switch(env, "BRIDGE_SCIM_RATE_LIMIT"),
    }
    for field, var, cast, low in (
        ("max_jobs", "WORKER_MAX_JOBS", int, 1),
        ("tenant_max_jobs", "WORKER_TENANT_MAX_JOBS", int, 1),
        ("job_timeout_s", "WORKER_JOB_TIMEOUT", float, 1),
        ("sweep_interval_s", "WORKER_SWEEP_INTERVAL", int, 1),
        ("sweep_grace_s", "WORKER_SWEEP_GRACE", float, 0),
        ("poll_delay_s", "WORKER_POLL_DELAY", float, 0.001),
        ("reconcile_every_h", "WORKER_RECONCILE_EVERY_H", float, 0),
        ("reconcile_concurrency", "WORKER_RECONCILE_CONCURRENCY", int, 1),
        ("drain_s", "API_DRAIN_SECONDS", float, 0),
        ("api_max_connections", "API_MAX_CONNECTIONS", int, 1),
        ("api_turns", "API_ACTIVE_REQUESTS", int, 2),
        ("api_header_timeout_s", "API_HEADER_TIMEOUT_SECONDS", float, 0.1),
        ("api_max_header_bytes", "API_MAX_HEADER_BYTES", int, 1024),
        ("api_keep_alive_s", "API_KEEP_ALIVE_SECONDS", int, 1),
        ("scan_rate", "BRIDGE_SCAN_RATE", float, 1),
        ("scan_burst", "BRIDGE_SCAN_BURST", int, 1),
        ("events_kept", "BRIDGE_EVENTS_KEPT", int, 1),
        ("events_max_age_days", "BRIDGE_EVENTS_MAX_AGE_DAYS", float, 0.001),
        ("metrics_tenant_top_k", "METRICS_TENANT_TOP_K", int, 0),
        ("auth_failures_per_minute", "BRIDGE_AUTH_FAILURES_PER_MINUTE", int, 1),
    ):
        if var in env:
            values[field] = _number(env, var, cast, low)
    kept = values.get("events_kept", 0)
    if isinstance(kept, int) and kept > 200:  # the API's own write keeps 200 at most
        raise ConfigError(
            f"BRIDGE_EVENTS_KEPT={_shown(env['BRIDGE_EVENTS_KEPT'])}: expected 1 to 200"
        )
    return msgspec.convert(values, Settings)
