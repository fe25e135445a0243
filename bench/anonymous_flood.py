"""Anonymous traffic costs nothing that lasts: the API's RSS under a flood of
requests with random tenant slugs and junk bearer tokens.

Starts a throwaway redis-server and one API process (`scim-bridge api`,
uvicorn as in production), makes one real tenant, then drives `wrk` (Debian's
package) with a Lua script that sends GETs of `/Users` and `/Users/<id>`
under a random slug, a third each with a token of the right shape that no
tenant issued (looked up, a cached miss), a token of the wrong shape, and a
slug no tenant can have (both refused before any lookup). The failed-auth
throttle is left at its default, so most answers are 429s, as a real
attacker's would be.

It reads the API's RSS (`/proc/<pid>/status`) at start, after a warm-up
(`--warmup` requests, which fills every capped cache) and after the flood
(`--requests`), and prints the growth over the flood against the target
(at most 5 MB), then one JSON line. It never asserts.

    .venv/bin/python -m bench.anonymous_flood                   # 1,000,000 requests
    .venv/bin/python -m bench.anonymous_flood --requests 200000 # quicker
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
from pathlib import Path

from bench.api_bench import make_tenant, wait_http
from tests.support.redis_server import free_port, start_redis

TARGET_MB = 5.0

FLOOD = r"""
local hex = "0123456789abcdef"
local alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
local threads = {}
statuses = {}  -- a global: done() reads each thread's copy

local function rand(chars, n)
  local t = {}
  for i = 1, n do
    local k = math.random(1, #chars)
    t[i] = chars:sub(k, k)
  end
  return table.concat(t)
end

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  math.randomseed(os.time() * 100 + id)
end

request = function()
  local slug = rand(alnum, math.random(3, 24))
  local token = "scimb_" .. rand(hex, 16) .. "_" .. rand(alnum, 43)
  local kind = math.random(1, 3)
  if kind == 2 then
    token = rand(alnum, math.random(8, 60))
  elseif kind == 3 then
    slug = "No_" .. slug
  end
  local path = "/scim/" .. slug .. "/v2/Users"
  if math.random(1, 2) == 1 then
    path = path .. "/" .. rand(hex, 32)
  end
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end

response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      totals[status] = (totals[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(totals) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  io.write("STATUSES {" .. table.concat(parts, ", ") .. "}\n")
end
"""


def rss_mb(pid: int) -> float:
    """The process's resident set (VmRSS), in MB."""
    found = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert found, "no VmRSS"
    return int(found[1]) / 1024


def wrk_round(script: str, url: str, seconds: int, connections: int, threads: int) -> str:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", script, url],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    return out


def flood(url: str, requests: int, connections: int, threads: int, cap_s: int) -> dict[str, object]:
    """At least `requests` anonymous requests, in wrk runs of at most two
    minutes (wrk runs for a time, not a count), `cap_s` seconds at most."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(FLOOD)
    started = time.monotonic()
    sent, rate = 0, 0.0
    statuses: dict[str, int] = {}
    errors: list[str] = []
    try:
        while sent < requests and (left := cap_s - (time.monotonic() - started)) >= 2:
            wanted = 10.0 if not rate else (requests - sent) / rate + 1
            out = wrk_round(f.name, url, int(max(2, min(wanted, 120, left))), connections, threads)
            found = re.search(r"(\d+) requests in", out)
            rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
            sent += int(found[1]) if found else 0
            rate = float(rps[1]) if rps else rate
            answers = re.search(r"^STATUSES (\{.*\})$", out, re.M)
            for status, n in (json.loads(answers[1]) if answers else {}).items():
                statuses[status] = statuses.get(status, 0) + n
            socket_errors = re.search(r"Socket errors: (.*)$", out, re.M)
            if socket_errors:
                errors.append(socket_errors[1])
    finally:
        os.unlink(f.name)
    return {
        "requests": sent,
        "seconds": round(time.monotonic() - started, 1),
        "statuses": statuses,
        "socket_errors": "; ".join(errors) or "none",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--warmup", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-seconds", type=int, default=900, help="wrk's cap on the flood")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="scim-flood-"))
    server = start_redis(workdir)
    port = free_port()
    env = {**os.environ, "REDIS_URL": server.url, "LOG_LEVEL": "WARNING", "PORT": str(port)}
    env.setdefault("BRIDGE_SECRET_KEY", secrets.token_urlsafe(32))  # a throwaway one
    api = subprocess.Popen([sys.executable, "-m", "cli", "api"], env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz")
        asyncio.run(make_tenant(server.url))
        start_mb = rss_mb(api.pid)
        warm = flood(url, args.warmup, args.connections, args.threads, args.max_seconds)
        before_mb = rss_mb(api.pid)
        run = flood(url, args.requests, args.connections, args.threads, args.max_seconds)
        after_mb = rss_mb(api.pid)
    finally:
        api.terminate()
        api.wait(10)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    growth = after_mb - before_mb
    figures = {
        "rss_start_mb": round(start_mb, 1),
        "rss_after_warmup_mb": round(before_mb, 1),
        "rss_after_flood_mb": round(after_mb, 1),
        "growth_mb": round(growth, 2),
        "target_mb": TARGET_MB,
        "warmup": warm,
        "flood": run,
        "rate_per_s": round(int(str(run["requests"])) / max(float(str(run["seconds"])), 0.001)),
    }
    print(
        f"API RSS: {start_mb:.1f} MB at start, {before_mb:.1f} MB after "
        f"{warm['requests']:,} warm-up requests, {after_mb:.1f} MB after {run['requests']:,} "
        f"more in {run['seconds']} s ({figures['rate_per_s']:,}/s)"
    )
    print(
        f"growth over the flood: {growth:+.2f} MB (target: at most {TARGET_MB:.0f} MB) "
        f"{'met' if growth <= TARGET_MB else 'MISSED'}; answers {run['statuses']}, "
        f"socket errors: {run['socket_errors']}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
