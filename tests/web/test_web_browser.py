"""The admin page in a real headless Chromium against a real API process.

An API process (`python -m cli api`, uvicorn on a free port) on the
test Redis; users written through its SCIM endpoint; the worker's job body
(`worker.sync.sync_user`) run in the test against the in-process sandbox
LMS. In the browser: log in, see a failed user with its reason,
issue a token (shown once), retry the failed user (pending and queued
again), approve a tripped breaker (the held deactivation goes through),
read a user's timeline, preview a mapping, and see a tenant key walled off.
Screenshots of each page go to artifacts/screenshots/ (gitignored).

Skipped only when Debian's chromium (/usr/bin/chromium) or the playwright
package is missing; `.ci/run` installs both.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from shadow import Tenant
from shadow.admin_keys import AdminKeyStore
from shadow.breaker import BreakerConfig, breaker_state, set_config
from shadow.webhooks import WebhookStore
from tests.support.redis_server import free_port
from tests.support.worker_fixtures import BASE, KEY, ORG, SandboxLms, run_sync
from worker.activity import sample_queues
from worker.deps import WorkerDeps

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
playwright_api = pytest.importorskip(
    "playwright.async_api", reason="the playwright package is missing (pip install '.[dev]')"
)

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
OPERATOR = "operator-token-for-the-browser-test"
SESSION_SECRET = "browser-test-session-secret-0123456789"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def lms() -> SandboxLms:
    return SandboxLms(rate=0)


@pytest.fixture
async def tenant(deps: WorkerDeps) -> Tenant:
    created = await deps.tenants.create(
        Tenant(slug=ORG, name="Acme Ltd", lms_url=BASE, lms_api_key=KEY, lms_rate=1000)
    )
    await deps.tenants.create(
        Tenant(slug="globex", name="Globex", lms_url=BASE, lms_api_key=KEY, lms_rate=1000)
    )
    return created


@pytest.fixture
def api_url(redis_url: str, tenant: Tenant, tmp_path: Path) -> Iterator[str]:
    """A real API process on a free port, on the test Redis."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "BRIDGE_PUBLIC_URL": url,
        "BRIDGE_ADMIN_TOKEN": OPERATOR,
        "BRIDGE_SESSION_SECRET": SESSION_SECRET,
        "LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "api.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "api"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "api.log").read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API process did not get ready"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
async def scim(api_url: str, deps: WorkerDeps) -> AsyncIterator[httpx.AsyncClient]:
    token = (await deps.tenants.issue_token(ORG, label="test harness")).token
    async with httpx.AsyncClient(
        base_url=f"{api_url}/scim/{ORG}/v2",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
    ) as client:
        yield client


async def create_user(scim: httpx.AsyncClient, email: str, given: str, family: str) -> str:
    body = {
        "schemas": [USER_SCHEMA],
        "userName": f"{given.lower()}@entra.example",
        "active": True,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"value": email, "type": "work", "primary": True}],
    }
    response = await scim.post("/Users", json=body)
    assert response.status_code == 201, response.text
    user_id: str = response.json()["id"]
    return user_id


@pytest.fixture
async def world(deps: WorkerDeps, scim: httpx.AsyncClient, redis: Redis) -> dict[str, str]:
    """Two synced users, one failed (its email is no address: the
    mapping refuses it, as the LMS would), and a
    tripped breaker holding the deactivation of one of the synced ones."""
    await WebhookStore(redis).set(ORG, "https://hooks.example.com/scim", "s" * 32)
    ada = await create_user(scim, "ada@example.com", "Ada", "Lovelace")
    grace = await create_user(scim, "grace@example.com", "Grace", "Hopper")
    bad = await create_user(scim, "bad@@example.com", "Bad", "Address")
    assert await run_sync(deps, ada) == "synced"
    assert await run_sync(deps, grace) == "synced"
    assert await run_sync(deps, bad) == "failed"
    # Any deactivation of this small tenant trips the breaker.
    await set_config(redis, ORG, BreakerConfig(share=0.01, min_learners=0))
    off = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    assert (await scim.patch(f"/Users/{grace}", json=off)).status_code == 200
    assert await run_sync(deps, grace) == "held by breaker"
    assert (await breaker_state(redis, ORG)).tripped
    await sample_queues({"deps": deps})  # the worker's minutely job, for the chart
    return {"ada": ada, "grace": grace, "bad": bad}


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"web-{name}.png"), full_page=True)


async def test_the_admin_page_in_a_real_browser(
    api_url: str, world: dict[str, str], deps: WorkerDeps, redis: Redis, lms: SandboxLms
) -> None:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=api_url)
            page = await context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on(
                "console",
                lambda m: (
                    problems.append(m.text)
                    if m.type in ("error", "warning") and "Failed to load resource" not in m.text
                    else None
                ),
            )
            page.on(
                "response",
                lambda r: (
                    problems.append(f"{r.status} {r.request.method} {r.url}")
                    if r.status >= 400
                    else None
                ),
            )
            await walk_through(page, api_url, world, deps, redis, lms)
            # No script error, nothing the CSP blocked, no missing asset; the
            # one refusal is the bad key's login.
            assert problems == [f"401 POST {api_url}/admin/login"], problems
            await tenant_key_is_walled_off(browser, api_url, redis)
        finally:
            await browser.close()


async def walk_through(
    page: Any,
    api_url: str,
    world: dict[str, str],
    deps: WorkerDeps,
    redis: Redis,
    lms: SandboxLms,
) -> None:
    expect = playwright_api.expect

    # Pages need a login; a bad key is refused.
    await page.goto(f"{api_url}/admin/tenants/{ORG}")
    assert page.url == f"{api_url}/admin/login"
    await page.fill("#secret", "not-the-token")
    await page.click("button[type=submit]")
    await expect(page.locator(".flash.bad")).to_contain_text("not a valid operator token")
    await shot(page, "login-refused")
    await page.fill("#secret", OPERATOR)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Tenants")
    await expect(page.locator("tbody tr")).to_have_count(2)
    # The fleet's last 24 hours, and each tenant's as a row sparkline.
    acme_row = page.locator("tbody tr", has_text="Acme Ltd")
    await expect(acme_row.locator(".activity")).to_contain_text("2 synced, 1 failed")
    await expect(acme_row.locator("svg.spark title")).to_contain_text("hatched where syncs failed")
    await expect(page.locator("#fleet figure")).to_have_count(2)
    await expect(page.locator("#fleet-syncs .chart-summary")).to_contain_text(
        "2 synced and 1 failed"
    )
    await shot(page, "tenants")

    # The tenant page: counts, the failed user with its reason, the breaker.
    await page.click("text=Acme Ltd")
    await expect(page.locator("#scim-url")).to_have_value(f"{api_url}/scim/{ORG}/v2")
    failed_row = page.locator("#failed tbody tr", has_text=world["bad"])
    await expect(failed_row).to_contain_text("email: not an address")
    await expect(page.locator("#breaker .badge")).to_have_text("tripped")
    await shot(page, "tenant")

    # The last 24 hours, drawn as inline SVG with text a reader can use.
    charts = page.locator("#activity svg[role=img]")
    await expect(charts).to_have_count(3)
    await expect(page.locator("#chart-syncs svg > desc")).to_contain_text("2 synced and 1 failed")
    await expect(page.locator("#chart-queue .chart-summary")).to_contain_text("Deepest queue")
    await expect(page.locator("#chart-lag .chart-summary")).to_contain_text("within")
    box = await page.locator("#chart-syncs svg").bounding_box()
    assert box is not None
    assert (box["width"] > 600, box["height"] > 150) == (True, True)
    await page.locator("#activity").screenshot(path=str(SHOTS / "web-tenant-charts.png"))

    # Notifications: the webhook and its deliveries (never its secret).
    notifications = page.locator("#notifications")
    await expect(notifications).to_contain_text("https://hooks.example.com/scim")
    deliveries = notifications.locator("tbody tr")
    await expect(deliveries.first).to_contain_text("breaker.tripped")
    await expect(deliveries.nth(1)).to_contain_text("user.failed")
    assert "s" * 32 not in await page.content()

    # The copy button (the one piece of JS) copies the SCIM URL.
    await page.click("button[data-copy=scim-url]")
    await expect(page.locator("button[data-copy=scim-url]")).to_have_text("Copied")
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == f"{api_url}/scim/{ORG}/v2"

    # Issue a token: shown once, and it works.
    await page.fill("#label", "Entra production")
    await page.click("text=Issue token")
    token = await page.locator("#new-token").input_value()
    assert token.startswith("scimb_")
    assert await deps.tenants.authenticate(ORG, token) is not None
    await expect(page.locator("#tokens")).to_contain_text("Entra production")
    await shot(page, "token-issued")
    await page.goto(f"{api_url}/admin/tenants/{ORG}")
    assert token not in await page.content()
    assert KEY not in await page.content()  # never the LMS API key

    # Retry the failed user: pending and queued again.
    await page.locator("#failed tbody tr", has_text=world["bad"]).locator("text=Retry").click()
    await expect(page.locator(".flash.good")).to_contain_text("1 user(s) marked pending")
    record = await deps.sync.record(ORG, world["bad"])
    assert record is not None
    assert record.state == "pending"
    assert await deps.sync.queued_due(ORG, world["bad"]) is not None
    await expect(page.locator("#failed")).to_contain_text("No failed users")
    await shot(page, "retried")

    # Approve the tripped breaker: the held deactivation goes through.
    await expect(page.locator("#breaker")).to_contain_text(world["grace"])
    await page.click("text=Approve 1 deactivation")
    await expect(page.locator(".flash.good")).to_contain_text("Breaker approved: 1 held user")
    assert not (await breaker_state(redis, ORG)).tripped
    assert await run_sync(deps, world["grace"]) == "synced"
    (learner,) = [lr for lr in lms.learners() if lr.external_ref == world["grace"]]
    assert learner.status == "deactivated"
    await page.reload()
    await expect(page.locator("#breaker .badge").first).to_have_text("approved")
    await shot(page, "breaker-approved")

    # The timeline of the user the breaker held.
    await page.goto(f"{api_url}/admin/tenants/{ORG}/users/{world['grace']}")
    await expect(page.locator(".heading .badge").first).to_have_text("synced")
    timeline = page.locator(".timeline")
    for event in ("held", "breaker_released", "synced", "POST /learners/{id}/deactivate"):
        await expect(timeline).to_contain_text(event)
    await shot(page, "timeline")

    # The failed user's timeline says why, then that it was retried.
    await page.goto(f"{api_url}/admin/tenants/{ORG}/users/{world['bad']}")
    await expect(page.locator(".timeline")).to_contain_text("email: not an address")
    await shot(page, "timeline-failed")

    # Mapping preview: the example user, then one without a family name.
    await page.goto(f"{api_url}/admin/tenants/{ORG}/preview")
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator("#result")).to_contain_text("would sync")
    await expect(page.locator("#result")).to_contain_text("Lovelace")
    await page.fill(
        "#user",
        '{"schemas": ["' + USER_SCHEMA + '"], "userName": "x@example.com", '
        '"name": {"givenName": "<b>X</b>"}}',
    )
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator("#result")).to_contain_text("would fail")
    await expect(page.locator("#result")).to_contain_text("last_name")
    await expect(page.locator("#result")).to_contain_text("<b>X</b>")  # shown as text
    await shot(page, "preview")

    await page.click("text=Log out")
    assert page.url == f"{api_url}/admin/login"


async def tenant_key_is_walled_off(browser: Any, api_url: str, redis: Redis) -> None:
    key = (await AdminKeyStore(redis).issue(ORG, label="acme admin")).key
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    await page.goto(f"{api_url}/admin/login")
    await page.fill("#secret", key)
    await page.click("button[type=submit]")
    expect = playwright_api.expect
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator(".who")).to_contain_text(f"tenant admin · {ORG}")
    response = await page.goto(f"{api_url}/admin/tenants/globex")
    assert response is not None
    assert response.status == 403
    await expect(page.locator("h1")).to_have_text("Not allowed")
    await shot(page, "tenant-key-refused")
    cookies = await context.cookies()
    (session,) = [c for c in cookies if c["name"] == "scim_bridge_admin"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    await context.close()
