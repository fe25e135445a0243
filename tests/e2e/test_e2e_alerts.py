"""An alert from deploy/prometheus/ fires and resolves in a real Prometheus.

A Prometheus server (Debian's package, /usr/bin/prometheus) scrapes a running
bridge's /metrics with the operator token every second and evaluates the
rules every second. The sandbox LMS goes down: changes wait as pending,
`ScimBridgeOldestPendingHigh` fires for that tenant; the LMS comes back,
the changes reach it and the alert resolves. Only that alert's threshold
and `for` are shortened (15 minutes would not suit a test); its expression
is the shipped one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cluster import (
    ClusterFactory,
    entra_user,
    free_port,
    make_cluster_fixture,  # noqa: F401  (the `make_cluster` fixture)
    wait_until,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "scim-bridge.rules.yml"
PROMETHEUS = "/usr/bin/prometheus"
OPERATOR = "operator-token-for-the-alerts-test-0123456789"
ALERT = "ScimBridgeOldestPendingHigh"


def shortened_rules() -> str:
    """The shipped rules, with the one alert's threshold and `for` made short."""
    text = RULES.read_text()
    block = re.search(rf"- alert: {ALERT}\n.*?(?=\n      - alert: |\Z)", text, re.S)
    assert block is not None, f"{ALERT} not in {RULES}"
    short = block.group(0).replace("> 900", "> 3").replace("for: 5m", "for: 2s")
    assert short != block.group(0)
    return text.replace(block.group(0), short)


def launch(workdir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=out,
        )


@pytest.fixture
async def prometheus(tmp_path: Path) -> AsyncIterator[Any]:
    """A factory: `await start(target)` runs Prometheus scraping `target`."""
    if not os.access(PROMETHEUS, os.X_OK):
        if os.environ.get("REQUIRE_PROMETHEUS"):
            pytest.fail("prometheus is not installed (Debian package 'prometheus')")
        pytest.skip("prometheus is not installed (Debian package 'prometheus')")
    started: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "prometheus.log"

    async def start(target: str) -> str:
        (tmp_path / "rules.yml").write_text(shortened_rules())
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 1s}\n"
            "rule_files: [rules.yml]\n"
            "scrape_configs:\n"
            "  - job_name: scim-bridge\n"
            f"    authorization: {{credentials: {OPERATOR}}}\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n"
        )
        port = free_port()
        started.append(launch(tmp_path, port, log))
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=2) as http:

            async def ready() -> bool:
                assert started[-1].poll() is None, log.read_text()
                return (await http.get(f"{url}/-/ready")).status_code == 200

            await wait_until(ready, 30, message="prometheus ready", interval=0.2)
        return url

    try:
        yield start
    finally:
        for proc in started:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp_path / "data", ignore_errors=True)


async def alert_states(http: httpx.AsyncClient, url: str) -> dict[str, str]:
    """tenant -> state ("pending" or "firing") of the alert, from Prometheus's API."""
    body = (await http.get(f"{url}/api/v1/alerts")).json()
    return {
        a["labels"].get("tenant", ""): a["state"]
        for a in body["data"]["alerts"]
        if a["labels"]["alertname"] == ALERT
    }


async def test_an_lms_outage_fires_the_oldest_pending_alert_and_its_end_resolves_it(
    make_cluster: ClusterFactory, prometheus: Any
) -> None:
    started = time.monotonic()
    cluster = await make_cluster(workers=1, api_env={"BRIDGE_ADMIN_TOKEN": OPERATOR})
    acme = await cluster.add_tenant("acme")
    calm = await cluster.add_tenant("calm")
    url = await prometheus(cluster.api_url.removeprefix("http://"))
    http = cluster.http

    async def scraped() -> bool:
        body = (await http.get(f"{url}/api/v1/targets")).json()
        targets = body["data"]["activeTargets"]
        assert len(targets) == 1, body  # not discovered yet
        assert targets[0]["health"] == "up", targets  # the operator token opens /metrics
        return True

    await wait_until(scraped, 20, message="prometheus scrapes the bridge", interval=0.5)

    await cluster.set_knobs(outage_seconds=20)  # every LMS call a 503 for 20 s
    for i in range(3):
        created = await acme.scim.post("/Users", entra_user(f"user{i}@acme.example"))
        assert created.status_code == 201, created.text
    assert (await alert_states(http, url)) == {}

    async def firing() -> dict[str, str]:
        states = await alert_states(http, url)
        assert states.get("acme") == "firing", states
        return states

    states = await wait_until(firing, 20, message=f"{ALERT} firing", interval=0.5)
    assert calm.slug not in states  # a tenant with nothing pending stays quiet

    async def resolved() -> bool:
        with contextlib.suppress(KeyError):
            assert await alert_states(http, url) == {}
        return True

    await wait_until(resolved, 45, message=f"{ALERT} resolved", interval=0.5)
    counts = await cluster.sync_counts(acme.slug)
    assert (counts.pending, counts.synced) == (0, 3), counts
    assert time.monotonic() - started < 90
