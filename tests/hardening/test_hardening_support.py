"""Shared by the hardening suites (no tests here): a real API process on
loopback, a tenant world seeded with fixed ids, keyspace snapshots and the
process's resident memory.

The suites that fuzz the API talk to a real `python -m cli api`
process, not an in-process app: what is measured (memory, time to answer,
what uvicorn does with a broken request) is the process's. Everything
here is synchronous so the fuzzing tests (schemathesis, hypothesis) need no
event loop; the few Redis steps run under `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis
from redis.asyncio import Redis

from shadow import ResourceStore, Tenant, TenantStore
from shadow.admin_keys import AdminKeyStore
from tests.support.api import GROUP_SCHEMA, USER_SCHEMA
from tests.support.redis_server import free_port

__all__ = [
    "ADMIN_TOKEN",
    "ERROR_SCHEMA",
    "FOREIGN_USER",
    "GROUP_ID",
    "SPARE_USER",
    "USER_ID",
    "ApiProcess",
    "World",
    "api_process",
    "hardening_url",
    "seed_world",
    "snapshot",
]

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
ADMIN_TOKEN = "hardening-operator-token-0123456789abcdef"
# Fixed ids (the store takes any id; the API issues lower-case UUIDs), so
# that an OpenAPI document built at import time can aim at real resources.
USER_ID = "11111111-1111-4111-8111-111111111111"
SPARE_USER = "22222222-2222-4222-8222-222222222222"
GROUP_ID = "33333333-3333-4333-8333-333333333333"
FOREIGN_USER = "44444444-4444-4444-8444-444444444444"
# The Redis database the hardening processes use: apart from the tests that
# take the `redis` fixture (they flush everything before they start anyway).
HARDENING_DB = 7

# Written on every successful authentication (at most once a minute per
# token and process, every time for an admin key): bookkeeping, not data a
# refused request may change.
# Last-used times, and the tenant's SCIM rate limiter (shadow/limits.py): a
# refused request still spends its place in the bucket.
_BOOKKEEPING = (b":tokens:used", b":admin_keys:used", b":scim:tat")
# Failed authentications counted per client address (api/auth.py).
_OPERATIONAL = (b"scim-bridge:authfail:",)


class World:
    """What `seed_world` made: tenants, their SCIM tokens and admin keys."""

    def __init__(self, tokens: dict[str, str], admin_keys: dict[str, str]) -> None:
        self.tokens = tokens
        self.admin_keys = admin_keys


def _user(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA],
        "userName": name,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"value": name, "type": "work", "primary": True}],
        "active": True,
        **extra,
    }


async def _seed(url: str, tenants: tuple[str, ...]) -> World:
    redis = Redis.from_url(url)
    try:
        await redis.flushdb()
        store, resources = TenantStore(redis), ResourceStore(redis)
        tokens, admin_keys = {}, {}
        for slug in tenants:
            await store.create(
                Tenant(
                    slug=slug,
                    name=slug.title(),
                    lms_url=f"http://127.0.0.1:9/org/{slug}",
                    lms_api_key=f"lms-key-{slug}-0123456789",
                )
            )
            tokens[slug] = (await store.issue_token(slug)).token
            admin_keys[slug] = (await AdminKeyStore(redis).issue(slug)).key
        first, other = tenants[0], tenants[-1]
        await resources.write(first, "u", USER_ID, "create", _user("ann@example.com"))
        await resources.write(first, "u", SPARE_USER, "create", _user("bob@example.com"))
        await resources.write(first, "g", GROUP_ID, "create", {
            "schemas": [GROUP_SCHEMA], "displayName": "Team",
        })  # fmt: skip
        await resources.change_members(first, GROUP_ID, add=[USER_ID])
        if other != first:
            await resources.write(other, "u", FOREIGN_USER, "create", _user("zed@example.com"))
        return World(tokens, admin_keys)
    finally:
        await redis.aclose()


def seed_world(url: str, *tenants: str) -> World:
    """Flush the database at `url` and seed `tenants` (the first gets the fixed
    user, spare user and group; the last, when another, the foreign user)."""
    return asyncio.run(_seed(url, tenants))


# One round trip for the whole keyspace (the fuzzers take a snapshot after
# every request): each key with its type and value, read by type as
# `tests.support.api.keyspace` does, put in a canonical order in Python.
_SNAPSHOT = """
local out = {}
for _, key in ipairs(redis.call('KEYS', '*')) do
  local kind = redis.call('TYPE', key)['ok']
  local value
  if kind == 'string' then value = redis.call('GET', key)
  elseif kind == 'hash' then value = redis.call('HGETALL', key)
  elseif kind == 'set' then value = redis.call('SMEMBERS', key)
  elseif kind == 'zset' then value = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  elseif kind == 'list' then value = redis.call('LRANGE', key, 0, -1)
  elseif kind == 'stream' then value = redis.call('XRANGE', key, '-', '+')
  else value = kind end
  out[#out + 1] = {key, kind, value}
end
return out
"""


def _canonical(kind: bytes, value: Any) -> object:
    if kind == b"hash":
        return sorted(zip(value[::2], value[1::2], strict=True))
    if kind == b"set":
        return sorted(value)
    return value


def snapshot(url: str) -> dict[bytes, object]:
    """Every key of the database with its type and value: equal snapshots
    mean nothing was written. Like `tests.support.api.keyspace`, less the
    operational counters and login bookkeeping a refused request may touch."""
    client = redis.Redis.from_url(url)
    try:
        rows: list[tuple[bytes, bytes, Any]] = client.eval(_SNAPSHOT, 0)  # type: ignore[assignment]
    finally:
        client.close()
    return {
        key: (kind, _canonical(kind, value))
        for key, kind, value in rows
        if not key.startswith(_OPERATIONAL) and not key.endswith(_BOOKKEEPING)
    }


class ApiProcess:
    """`python -m cli api` on a free loopback port."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def memory_kib(self, field: str = "VmRSS") -> int:
        """A figure of /proc/<pid>/status in KiB: VmRSS (resident now), VmHWM (peak)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise RuntimeError(f"no {field} line")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def api_process(
    redis_url: str, workdir: Path, *, log_level: str = "INFO", **env: str
) -> Iterator[ApiProcess]:
    """A real API process against `redis_url`, stopped on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "REDIS_URL": redis_url,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "BRIDGE_PUBLIC_URL": url,
        "BRIDGE_ADMIN_TOKEN": ADMIN_TOKEN,
        "LOG_LEVEL": log_level,
        # The barrages here are one client's thousands of requests a second:
        # they test each refusal, not the tenant's rate limit (its own tests).
        "BRIDGE_SCIM_RATE_LIMIT": "off",
        **env,
    }
    log = workdir / f"api-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "api"],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )
    api = ApiProcess(process, url, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if not api.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API process did not start:\n{api.log_text()[-3000:]}")
            time.sleep(0.05)
        yield api
    finally:
        api.stop()


def hardening_url(redis_server_url: str) -> str:
    """The session Redis, database HARDENING_DB."""
    return redis_server_url.rsplit("/", 1)[0] + f"/{HARDENING_DB}"
