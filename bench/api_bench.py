"""API throughput and latency under a loopback load, against a same-run baseline.

Starts a throwaway redis-server, one API process (`scim-bridge api`) and the
baseline (a bare Litestar handler doing one Redis write), then drives each
with `wrk` (Debian's package) and prints requests a second and p50/p99 for
POST /Users, GET /Users?filter=userName eq "...", and PATCH /Users/{id}.

    python -m bench.api_bench [--seconds 5] [--connections 32] [--rounds 5]

The baseline runs before and after every workload run (B W1 B W2 B W3 B
... for each round), so each ratio compares a workload with the baseline
measured seconds either side of it: on a shared machine the rate of both
drifts by 10% and more within a minute. A workload's ratio in a round is
its rate over the mean of those two baselines; the figures printed are the
medians over the rounds, so a noisy moment moves one round, not the result.

Beside the rates it prints each server's CPU time per request (user +
system, read from /proc before and after each run): time stolen by other
guests on a shared host slows a run but is not charged to the process, so
this figure moves much less than the rates do. The "CPU ratio" is the
baseline's CPU per request over the workload's, round by round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from redis.asyncio import Redis

from shadow import Tenant, TenantStore
from tests.support.redis_server import free_port, start_redis

BASELINE = "baseline (bare handler, 1 Redis write)"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except Exception:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up") from None
            time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    script: str, url: str, seconds: int, connections: int, env: dict[str, str], pid: int
) -> dict[str, float]:
    """One wrk run against `url`; rates, latencies and the CPU per request
    of the server process `pid`."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name, url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        check=True,
    ).stdout
    cpu = cpu_seconds(pid) - cpu_before
    os.unlink(f.name)

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    served = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    cpu_us = cpu / served * 1e6 if served else float("nan")
    return {"rps": rps, "p50": ms("50"), "p99": ms("99"), "non2xx": errors, "cpu_us": cpu_us}


POST_USERS = r"""
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", tostring(threads) .. "-" .. tostring(os.time()))
end
request = function()
  counter = counter + 1
  local body = string.format('{"schemas":["%s"],"userName":"u%s-%d@bench.example","active":true,' ..
    '"name":{"givenName":"Bench","familyName":"User"},"emails":[{"type":"work","primary":true,' ..
    '"value":"u%s-%d@bench.example"}],"externalId":"x%s-%d"}',
    os.getenv("USER_SCHEMA"), tid, counter, tid, counter, tid, counter)
  return wrk.format("POST", os.getenv("BASE") .. "/Users", {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
    ["Content-Type"] = "application/scim+json"}, body)
end
"""

BASELINE_POST = r"""
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"schemas":["%s"],"userName":"u%d@bench.example","active":true,' ..
    '"name":{"givenName":"Bench","familyName":"User"}}', os.getenv("USER_SCHEMA"), counter)
  return wrk.format("POST", "/write", {["Content-Type"] = "application/json"}, body)
end
"""

GET_FILTER = r"""
local n = tonumber(os.getenv("SEEDED"))
request = function()
  local i = math.random(0, n - 1)
  local path = os.getenv("BASE") .. "/Users?filter=userName%20eq%20%22seed" .. i ..
    "%40bench.example%22"
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. os.getenv("TOKEN")})
end
"""

PATCH_USERS = r"""
local shown = false
response = function(status, headers, body)
  if status >= 300 and not shown then
    shown = true
    io.stderr:write("non-2xx sample: " .. status .. " " .. string.sub(body, 1, 300) .. "\n")
  end
end
local ids = {}
for id in string.gmatch(os.getenv("IDS"), "[^,]+") do table.insert(ids, id) end
local counter = 0
request = function()
  counter = counter + 1
  local id = ids[math.random(1, #ids)]
  local body = string.format('{"schemas":["%s"],"Operations":[{"op":"Replace","path":"title",' ..
    '"value":"Title %d"},{"op":"Replace","path":"name.givenName","value":"G%d"}]}',
    os.getenv("PATCH_OP"), counter, counter)
  return wrk.format("PATCH", os.getenv("BASE") .. "/Users/" .. id, {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
    ["Content-Type"] = "application/scim+json"}, body)
end
"""


async def seed(redis_url: str, api: str, token: str, count: int) -> list[str]:
    import httpx

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=api, headers=headers) as client:
        for i in range(count):
            r = await client.post(
                "/scim/bench/v2/Users",
                json={
                    "schemas": [USER_SCHEMA],
                    "userName": f"seed{i}@bench.example",
                    "active": True,
                    "name": {"givenName": "Seed", "familyName": str(i)},
                },
            )
            r.raise_for_status()
            ids.append(r.json()["id"])
    return ids


async def make_tenant(redis_url: str) -> str:
    redis = Redis.from_url(redis_url)
    try:
        store = TenantStore(redis)
        await store.create(
            Tenant(
                slug="bench",
                name="Bench",
                lms_url="http://127.0.0.1:9/org/b",
                lms_api_key="k",
                lms_rate=1000,
                lms_burst=1000,
                # One tenant at full speed: its request rate is checked on
                # every request (the cost is measured) but never reached.
                scim_rate=100_000,
                scim_burst=1_000_000,
            )
        )
        return (await store.issue_token("bench")).token
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp())
    server = start_redis(workdir)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        api_port, base_port = free_port(), free_port()
        env = {**os.environ, "REDIS_URL": server.url, "LOG_LEVEL": "WARNING"}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "cli", "api"], env={**env, "PORT": str(api_port)}
            )
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.baseline"], env={**env, "PORT": str(base_port)}
            )
        )
        api = f"http://127.0.0.1:{api_port}"
        baseline = f"http://127.0.0.1:{base_port}"
        wait_http(api + "/healthz")
        wait_http(baseline + "/write")
        token = asyncio.run(make_tenant(server.url))
        ids = asyncio.run(seed(server.url, api, token, 500))
        wrk_env = {
            "TOKEN": token,
            "BASE": "/scim/bench/v2",
            "USER_SCHEMA": USER_SCHEMA,
            "PATCH_OP": PATCH_OP,
            "SEEDED": "500",
            "IDS": ",".join(ids),
        }
        s, c = args.seconds, args.connections
        workloads = {
            "POST /Users": POST_USERS,
            "GET /Users?filter=userName eq": GET_FILTER,
            "PATCH /Users/{id}": PATCH_USERS,
        }
        api_pid, base_pid = procs[0].pid, procs[1].pid

        def bare() -> dict[str, float]:
            return run_wrk(BASELINE_POST, baseline, s, c, wrk_env, base_pid)

        run_wrk(BASELINE_POST, baseline, 2, c, wrk_env, base_pid)  # warm-up
        for lua in workloads.values():
            run_wrk(lua, api, 2, c, wrk_env, api_pid)
        baselines = [bare()]
        rounds: list[dict[str, dict[str, float]]] = []
        for _ in range(args.rounds):
            results: dict[str, dict[str, float]] = {}
            for name, lua in workloads.items():
                result = run_wrk(lua, api, s, c, wrk_env, api_pid)
                before = baselines[-1]
                baselines.append(bare())
                around = (before, baselines[-1])
                result["ratio"] = result["rps"] / statistics.mean(b["rps"] for b in around)
                base_cpu = statistics.mean(b["cpu_us"] for b in around)
                result["cpu_ratio"] = base_cpu / result["cpu_us"]
                results[name] = result
            rounds.append(results)
        header = ("workload (median of rounds)", "req/s", "p50 ms", "p99 ms", "non-2xx", "ratio")
        print(
            "\n{:42} {:>9} {:>8} {:>8} {:>8} {:>6}   ratio per round".format(*header)
            + "   | CPU µs/req, CPU ratio"
        )
        summary: dict[str, dict[str, float]] = {}
        for name in [BASELINE, *workloads]:
            runs = baselines if name == BASELINE else [r[name] for r in rounds]
            keys = ("rps", "p50", "p99", "cpu_us")
            med = {k: statistics.median(x[k] for x in runs) for k in keys}
            med["non2xx"] = sum(x["non2xx"] for x in runs)
            med["ratio"] = statistics.median(x.get("ratio", 1.0) for x in runs)
            med["cpu_ratio"] = statistics.median(x.get("cpu_ratio", 1.0) for x in runs)
            summary[name] = med
            per_round = " ".join(f"{x.get('ratio', x['rps']):.2f}" for x in runs)
            if name == BASELINE:
                per_round = "req/s: " + " ".join(f"{x['rps']:.0f}" for x in runs)
            print(
                f"{name:42} {med['rps']:9.0f} {med['p50']:8.2f} {med['p99']:8.2f} "
                f"{int(med['non2xx']):8d} {med['ratio']:6.2f}   {per_round}"
                f"   | {med['cpu_us']:.0f}, {med['cpu_ratio']:.2f}"
            )
        print(json.dumps({"summary": summary, "baselines": baselines, "rounds": rounds}))
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        server.stop()


if __name__ == "__main__":
    main()
