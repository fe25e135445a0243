"""The Prometheus rules in deploy/prometheus/ hold: promtool accepts them and
their unit tests pass, every series they read is one the bridge exports,
and every alert links to its runbook entry in docs/operations.md."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from api.app import create_app
from shadow import Tenant, TenantStore
from tests.support.api import api_settings
from worker.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[3]
RULES_DIR = ROOT / "deploy" / "prometheus"
RULES = RULES_DIR / "scim-bridge.rules.yml"
RUNBOOK = ROOT / "docs" / "operations.md"
OPERATOR = "operator-token-0123456789abcdef-0123456789"
METRICS_TOKEN = "metrics-token-0123456789abcdef-0123456789"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("REQUIRE_PROMETHEUS"):
            pytest.fail("promtool is not installed (Debian package 'prometheus')")
        pytest.skip("promtool is not installed (Debian package 'prometheus')")
    return found


@pytest.mark.parametrize(
    "args",
    [("check", "rules", RULES.name), ("test", "rules", "scim-bridge.rules.test.yml")],
    ids=["check", "test"],
)
@pytest.mark.processes
def test_promtool_accepts_the_rules_and_their_unit_tests_pass(args: tuple[str, ...]) -> None:
    done = subprocess.run(
        [promtool(), *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def alerts() -> dict[str, str]:
    """Alert name -> its runbook_url, read from the rules file."""
    text = RULES.read_text()
    names = re.findall(r"^\s+- alert: (\w+)$", text, re.M)
    urls = re.findall(r"^\s+runbook_url: (\S+)$", text, re.M)
    assert len(names) == len(urls) >= 10
    return dict(zip(names, urls, strict=True))


def test_every_alert_links_to_a_runbook_entry_that_says_what_to_do() -> None:
    runbook = RUNBOOK.read_text()
    sections = dict(re.findall(r"^### (\w+)\n(.*?)(?=^#{2,3} |\Z)", runbook, re.M | re.S))
    for name, url in alerts().items():
        assert url == f"docs/operations.md#{name.lower()}", (name, url)
        assert name in sections, f"no runbook entry for {name}"
        assert "**Means**" in sections[name], name
        assert "**Do**" in sections[name], name


async def test_the_rules_read_only_series_the_bridge_exports(redis: Redis, redis_url: str) -> None:
    store = TenantStore(redis)
    await store.create(
        Tenant(slug="acme", name="Acme", lms_url="http://lms.test/org/acme", lms_api_key="k")
    )
    token = (await store.issue_token("acme")).token
    worker = WorkerMetrics()  # what a worker flushes after one sync
    worker.lms_call("acme", "POST /learners", "201", 0.02)
    worker.sync_lag("acme", 0.3)
    await worker.flush(redis)
    app = create_app(api_settings(redis_url, admin_token=OPERATOR))
    async with AsyncTestClient(app=app, base_url="https://bridge.test") as http:
        scim = await http.get("/scim/acme/v2/Users", headers={"Authorization": f"Bearer {token}"})
        assert scim.status_code == 200
        scrape = await http.get("/metrics", headers={"Authorization": f"Bearer {OPERATOR}"})
        assert scrape.status_code == 200
    exported = {
        sample.name
        for family in text_string_to_metric_families(scrape.text)
        for sample in family.samples
    }
    # Series names, not the recording rules' own (`tenant:scim_bridge_...:max`).
    used = set(re.findall(r"(?<![:\w])(scim_bridge_\w+)", RULES.read_text()))
    assert used, "the rules read no scim_bridge_ series"
    assert used <= exported, f"not exported: {sorted(used - exported)}"


@pytest.mark.parametrize(
    ("settings", "bearer", "status"),
    [
        ({"admin_token": OPERATOR}, None, 401),
        ({"admin_token": OPERATOR}, "wrong-token", 401),
        ({"admin_token": OPERATOR}, OPERATOR, 200),
        ({"admin_token": OPERATOR, "metrics_token": METRICS_TOKEN}, METRICS_TOKEN, 200),
        ({"metrics_token": METRICS_TOKEN}, OPERATOR, 401),
        ({}, None, 401),  # no token set: nobody may read every tenant's figures
    ],
    ids=["anonymous", "wrong", "operator", "metrics-token", "not-the-metrics-token", "closed"],
)
async def test_metrics_answer_the_operator_or_metrics_token_only(
    redis: Redis, redis_url: str, settings: dict[str, str], bearer: str | None, status: int
) -> None:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    app = create_app(api_settings(redis_url, **settings))
    async with AsyncTestClient(app=app, base_url="https://bridge.test") as http:
        response = await http.get("/metrics", headers=headers)
    assert response.status_code == status, response.text
    assert ("scim_bridge_redis_up" in response.text) == (status == 200)
