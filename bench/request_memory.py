"""Bounded memory per request: the API's peak RSS for the worst requests,
against cheap requests measured in the same run.

Starts a throwaway redis-server and one API process (`scim-bridge api`, as
in production), and writes straight into Redis one tenant of `--users`
users (default 50,000, the most a filter may scan) and `--groups` groups
(default 50) of `--members` members each (default 10,000). Then, for each
request below, on a fresh API process (Python keeps memory it once used, so
one case would hide the next) warmed with the baseline requests, it resets
the peak RSS (`/proc/<pid>/clear_refs`), sends the request `--repeat` times
and reads the peak (VmHWM), and reports its growth over the RSS before:

- baseline: `GET /Users?filter=userName eq "..."` and `GET /Users?count=1`;
- the worst filter: `GET /Users?filter=title co "e"&count=200`, which no
  index answers and every user matches (the whole tenant is scanned);
- `GET /Groups?count=<groups>` (members not asked for), and Entra's
  `GET /Groups?excludedAttributes=members&filter=displayName eq "..."`;
- for scale, `GET /Groups/<id>` of one group with its members (streamed).

Prints each case's peak growth beside the baseline's, then one JSON line. The scan
budget is lifted for the run (`BRIDGE_SCAN_RATE`): this measures memory.

    .venv/bin/python -m bench.request_memory
    .venv/bin/python -m bench.request_memory --users 10000 --members 2000   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from redis.asyncio import Redis

from bench.api_bench import wait_http
from shadow import ResourceStore, Tenant, TenantStore
from tests.support.redis_server import free_port, start_redis

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
TENANT = "big"


def status_kb(pid: int, field: str) -> int:
    found = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert found, f"no {field}"
    return int(found[1])


def reset_peak(pid: int) -> None:
    """Set the process's peak RSS (VmHWM) to its RSS now (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def user_doc(n: int) -> dict[str, Any]:
    email = f"user{n}@big.example"
    return {
        "schemas": [USER_SCHEMA],
        "userName": email,
        "active": True,
        "displayName": f"User Number {n}",
        "title": "Engineer",
        "name": {"givenName": "User", "familyName": f"Number {n}"},
        "emails": [{"value": email, "type": "work", "primary": True}],
    }


async def seed(redis_url: str, users: int, groups: int, members: int) -> tuple[str, list[str]]:
    """The tenant, its users and groups, written as the API writes them;
    (token, group ids)."""
    redis = Redis.from_url(redis_url)
    try:
        tenants = TenantStore(redis)
        await tenants.create(
            Tenant(
                slug=TENANT,
                name="Big",
                lms_url="http://127.0.0.1:9/org/big",
                lms_api_key="k",
                scim_rate=100_000,
                scim_burst=1_000_000,
            )
        )
        token = (await tenants.issue_token(TENANT)).token
        store = ResourceStore(redis, recent_size=1)
        user_ids = [str(uuid.uuid4()) for _ in range(users)]
        for start in range(0, users, 500):
            await asyncio.gather(
                *(
                    store.write(TENANT, "u", uid, "create", user_doc(start + i), interval_ms=1)
                    for i, uid in enumerate(user_ids[start : start + 500])
                )
            )
        group_ids = [str(uuid.uuid4()) for _ in range(groups)]
        for n, gid in enumerate(group_ids):
            doc = {"schemas": [GROUP_SCHEMA], "displayName": f"Group {n}"}
            await store.write(TENANT, "g", gid, "create", doc)
            for start in range(0, members, 1000):
                await store.change_members(
                    TENANT, gid, add=user_ids[start : min(start + 1000, members)]
                )
        return token, group_ids
    finally:
        await redis.aclose()


async def measure(
    pid: int, base: str, token: str, warm: list[str], paths: list[str], repeat: int
) -> dict[str, float]:
    """Peak RSS (MB) while `paths` are fetched `repeat` times, and the time."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=600) as http:
        for path in warm:  # code paths loaded, caches filled, by cheap requests
            (await http.get(path)).raise_for_status()
        reset_peak(pid)
        rss_kb = status_kb(pid, "VmRSS")
        started = time.monotonic()
        size = 0
        for _ in range(repeat):
            for path in paths:
                answer = await http.get(path)
                answer.raise_for_status()
                size = max(size, len(answer.content))
        seconds = (time.monotonic() - started) / repeat
    peak_kb = status_kb(pid, "VmHWM")
    return {
        "rss_mb": round(rss_kb / 1024, 1),
        "peak_mb": round(peak_kb / 1024, 1),
        "growth_mb": round((peak_kb - rss_kb) / 1024, 1),
        "seconds": round(seconds, 3),
        "largest_answer_kb": round(size / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="scim-memory-"))
    server = start_redis(workdir)
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "LOG_LEVEL": "ERROR",
        "BRIDGE_SCAN_RATE": "100000000",
        "BRIDGE_SCAN_BURST": "100000000",
    }
    env.setdefault("BRIDGE_SECRET_KEY", secrets.token_urlsafe(32))  # a throwaway one
    results: dict[str, dict[str, float]] = {}
    try:
        started = time.monotonic()
        token, group_ids = asyncio.run(seed(server.url, args.users, args.groups, args.members))
        seeded_s = time.monotonic() - started
        scim = f"/scim/{TENANT}/v2"
        lookup = quote('userName eq "user7@big.example"')
        worst = quote('title co "e"')
        group = quote('displayName eq "Group 3"')
        warm = [f"{scim}/Users?filter={lookup}", f"{scim}/Users?count=1", f"{scim}/Groups?count=1"]
        cases = {
            "baseline": warm,
            "worst filter": [f"{scim}/Users?filter={worst}&count=200"],
            "GET /Groups page": [f"{scim}/Groups?count={args.groups}"],
            "Entra group lookup": [f"{scim}/Groups?excludedAttributes=members&filter={group}"],
            "one group with members": [f"{scim}/Groups/{group_ids[0]}"],
        }
        for name, paths in cases.items():
            port = free_port()
            api = subprocess.Popen(
                [sys.executable, "-m", "cli", "api"], env={**env, "PORT": str(port)}
            )
            try:
                base = f"http://127.0.0.1:{port}"
                wait_http(base + "/healthz")
                results[name] = asyncio.run(measure(api.pid, base, token, warm, paths, args.repeat))
            finally:
                api.terminate()
                api.wait(10)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    baseline = results["baseline"]["growth_mb"]
    print(
        f"{args.users:,} users, {args.groups} groups of {args.members:,} members "
        f"(seeded in {seeded_s:.0f} s); API RSS growth while serving each, fresh process:"
    )
    for name, r in results.items():
        print(
            f"  {name:<24} {r['rss_mb']:6.1f} MB -> peak {r['peak_mb']:6.1f} MB "
            f"({r['growth_mb']:+6.1f} MB; baseline {baseline:+.1f})  "
            f"{r['seconds']:6.3f} s/request  answer {r['largest_answer_kb']:,.1f} KB"
        )
    print(
        json.dumps(
            {
                "bench": "request_memory",
                "users": args.users,
                "groups": args.groups,
                "members": args.members,
                "results": results,
                "growth_mb": {k: r["growth_mb"] for k, r in results.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
