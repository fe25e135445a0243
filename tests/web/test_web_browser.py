"""The admin page in a real headless Chromium against a real API process.

An API process (`python -m cli api`, uvicorn on a free port) on the
test Redis; users written through its SCIM endpoint; the worker's job body
(`worker.sync.sync_user`) run in the test against the in-process sandbox
LMS. In the browser, the operator does every task on the page (log in back
to the page asked for; the list with the breaker's true state and a long
name; failed users by name with reasons in words; a token issued once and
revoked after a confirmation; a retry; held deactivations approved after a
confirmation; thresholds; a search; a user's story; the mapping edited
beside its preview; an admin key; a reconcile; the LMS key; disable and
enable; a new tenant; a 404; a session that ends under an open form;
logout), then a customer's admin logs in with the key the operator issued
and sees its own tenant only. Every page is run through axe-core
(axe-playwright-python) with zero serious or critical findings allowed,
and screenshotted to artifacts/screenshots/ (gitignored).

Skipped only when Debian's chromium (/usr/bin/chromium) or the playwright
or axe-playwright-python package is missing; `.ci/run` installs them.
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
from arq import Retry
from redis.asyncio import Redis

from shadow import Tenant
from shadow.breaker import BreakerConfig, breaker_state, set_config
from shadow.webhooks import WebhookStore
from tests.support.redis_server import free_port
from tests.support.worker_fixtures import (
    BASE,
    KEY,
    ORG,
    SandboxLms,
    break_every_pass,
    run_sync,
)
from worker import sync as sync_module
from worker.activity import sample_queues
from worker.deps import WorkerDeps

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
playwright_api = pytest.importorskip(
    "playwright.async_api", reason="the playwright package is missing (pip install '.[dev]')"
)
Axe = pytest.importorskip(
    "axe_playwright_python.async_playwright",
    reason="axe-playwright-python is missing (pip install '.[dev]')",
).Axe

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

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


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
async def world(
    deps: WorkerDeps, scim: httpx.AsyncClient, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Two synced users; one failed on data only Entra can fix (its email is
    no address: the mapping refuses it, as the LMS would); one failed on a
    fault a retry may get past; a tripped breaker holding the deactivation of
    one of the synced ones; and a tenant whose name has no spaces for 150
    characters."""
    await WebhookStore(redis).set(ORG, "https://hooks.example.com/scim", "s" * 32)
    ada = await create_user(scim, "ada@example.com", "Ada", "Lovelace")
    grace = await create_user(scim, "grace@example.com", "Grace", "Hopper")
    bad = await create_user(scim, "bad@@example.com", "Bad", "Address")
    carol = await create_user(scim, "carol@example.com", "Carol", "Shaw")
    assert await run_sync(deps, ada) == "synced"
    assert await run_sync(deps, grace) == "synced"
    assert await run_sync(deps, bad) == "failed"
    break_every_pass(monkeypatch)
    for _ in range(sync_module.MAX_FAULTS - 1):
        with pytest.raises(Retry):
            await run_sync(deps, carol)
    assert (await run_sync(deps, carol)).startswith("failed: unexpected error")
    monkeypatch.undo()
    # Any deactivation of this small tenant trips the breaker.
    await set_config(redis, ORG, BreakerConfig(share=0.01, min_learners=0))
    off = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    assert (await scim.patch(f"/Users/{grace}", json=off)).status_code == 200
    assert await run_sync(deps, grace) == "held by breaker"
    assert (await breaker_state(redis, ORG)).tripped
    await deps.tenants.create(
        Tenant(slug="longname", name="L" * 150, lms_url=BASE, lms_api_key=KEY, lms_rate=1000)
    )
    await sample_queues({"deps": deps})  # the worker's minutely job, for the chart
    return {"ada": ada, "grace": grace, "bad": bad, "carol": carol}


class Browser:
    """One browser context: every page it opens is checked for script errors,
    blocked resources and unexpected refusals, screenshotted, and run
    through axe-core (zero serious or critical findings)."""

    def __init__(self, page: Any, api_url: str) -> None:
        self.page = page
        self.api_url = api_url
        self.problems: list[str] = []
        self.allowed: set[str] = set()
        self.checked: list[str] = []
        page.on("pageerror", lambda e: self.problems.append(str(e)))
        page.on(
            "console",
            lambda m: (
                self.problems.append(m.text)
                if m.type in ("error", "warning") and "Failed to load resource" not in m.text
                else None
            ),
        )
        page.on("response", self._response)

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            path = response.url.removeprefix(self.api_url)
            seen = f"{response.status} {response.request.method} {path}"
            if seen not in self.allowed:
                self.problems.append(seen)

    async def check(self, name: str) -> None:
        """Screenshot the page and run axe-core on it."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SHOTS / f"web-{name}.png"), full_page=True)
        results = await Axe().run(self.page)
        serious = [
            f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:5]}"
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert serious == [], f"{name}: {serious}"
        self.checked.append(name)


async def open_browser(pw: Any) -> Any:
    return await pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)


async def new_tab(browser: Any, api_url: str) -> Browser:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=api_url)
    return Browser(await context.new_page(), api_url)


async def unique_names(page: Any, selector: str) -> list[str]:
    """The accessible names (aria-label, else text) of the matching controls."""
    names: list[str] = await page.eval_on_selector_all(
        selector, "els => els.map(e => e.getAttribute('aria-label') || e.textContent.trim())"
    )
    assert len(names) == len(set(names)), names
    return names


def contrast(rgb: str, against: tuple[int, int, int] = (255, 255, 255)) -> float:
    """WCAG contrast ratio of a computed `rgb(r, g, b)` colour against white."""

    def luminance(channels: tuple[int, ...]) -> float:
        def linear(c: float) -> float:
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

        r, g, b = (linear(c / 255) for c in channels[:3])
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    values = tuple(int(float(v)) for v in rgb[rgb.index("(") + 1 : -1].split(",")[:3])
    light, dark = sorted((luminance(values), luminance(against)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


async def tabs_to(page: Any, name: str, limit: int = 80) -> int:
    """Tab presses from the top of the page until `name` has the focus."""
    await page.evaluate("window.scrollTo(0, 0); document.activeElement.blur()")
    for count in range(1, limit + 1):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(
            "(document.activeElement.getAttribute('aria-label') || "
            "document.activeElement.textContent || '').trim()"
        )
        if focused == name:
            return count
    raise AssertionError(f"{name!r} not reached in {limit} Tab presses")


async def test_the_operator_does_every_task_on_the_page(
    api_url: str, world: dict[str, str], deps: WorkerDeps, redis: Redis, lms: SandboxLms
) -> None:
    async with playwright_api.async_playwright() as pw:
        browser = await open_browser(pw)
        try:
            tab = await new_tab(browser, api_url)
            tab.allowed = {"401 POST /admin/login", "404 GET /admin/nope"}
            key = await operator_walk(tab, api_url, world, deps, redis, lms)
            assert tab.problems == [], tab.problems
            customer = await new_tab(browser, api_url)
            customer.allowed = {"403 GET /admin/tenants/globex", "403 GET /admin/new-tenant"}
            await customer_walk(customer, api_url, key)
            assert customer.problems == [], customer.problems
            print("axe-checked pages:", tab.checked + customer.checked)
        finally:
            await browser.close()


async def operator_walk(
    tab: Browser,
    api_url: str,
    world: dict[str, str],
    deps: WorkerDeps,
    redis: Redis,
    lms: SandboxLms,
) -> str:
    """Every operator task, in the order an operator would do them; the
    customer's admin key it issued on the way."""
    page, expect = tab.page, playwright_api.expect
    acme = f"{api_url}/admin/tenants/{ORG}"

    # A page asked for without a session: the login form, then back to it.
    await page.goto(acme)
    assert page.url == f"{api_url}/admin/login?next=%2Fadmin%2Ftenants%2F{ORG}"
    assert "BRIDGE_ADMIN_TOKEN" not in await page.content()
    await tab.check("login")
    await page.fill("#secret", "not-the-key")
    await page.click("button[type=submit]")
    await expect(page.locator(".flash.bad")).to_contain_text("That is not a valid key")
    await tab.check("login-refused")
    await page.fill("#secret", OPERATOR)
    await page.click("button[type=submit]")
    assert page.url == acme
    await expect(page.locator("h1")).to_have_text("Acme Ltd")

    # The list: every tenant, the breaker's true state, long names wrapped.
    await page.goto(f"{api_url}/admin")
    await expect(page.locator("tbody tr")).to_have_count(3)
    acme_row = page.locator("tbody tr", has_text="Acme Ltd")
    await expect(acme_row.locator("td").nth(7)).to_have_text("tripped: 1 held")
    await expect(page.locator("tbody tr", has_text="Globex").locator("td").nth(7)).to_have_text(
        "on"
    )
    await expect(acme_row.locator(".activity")).to_contain_text("2 synced, 2 failed")
    table = await page.locator("table.tenants").bounding_box()
    wrap = await page.locator(".table-wrap").bounding_box()
    assert table is not None
    assert wrap is not None
    assert table["width"] <= wrap["width"] + 1, (table, wrap)  # no column pushed off
    await tab.check("tenants")

    # The tenant page: failed users by name, reasons in words, Retry only where it helps.
    await page.click("text=Acme Ltd")
    failed = page.locator("#failed tbody tr")
    bad_row = failed.filter(has_text="Bad Address")
    await expect(bad_row).to_contain_text("bad@entra.example")
    await expect(bad_row).to_contain_text("The email address in Entra is not a valid email")
    await expect(bad_row).to_contain_text("Fix this user in Entra")
    await expect(bad_row.locator("button")).to_have_count(0)
    carol_row = failed.filter(has_text="Carol Shaw")
    await expect(carol_row).to_contain_text("unexpected error")
    await expect(carol_row.get_by_role("button", name="Retry carol@entra.example")).to_be_visible()
    assert world["bad"] not in await page.locator("#failed").inner_text()  # no bare ids
    await expect(page.locator("#breaker .card-head .badge")).to_have_text("tripped: 1 held")
    await expect(page.locator("#breaker")).to_contain_text("Grace Hopper")
    await unique_names(page, "#tenant-main button, main button, main a.button-link")
    # A skip link first; every section a few Tab presses away through "On this page".
    await page.keyboard.press("Tab")
    await expect(page.locator("a.skip")).to_be_focused()
    direct = await tabs_to(page, "Issue token")
    via_nav = await tabs_to(page, "SCIM tokens")
    await page.keyboard.press("Enter")
    after_jump = 0
    while await page.evaluate("document.activeElement.textContent.trim()") != "Issue token":
        assert after_jump < 12, "Issue token not reached after the jump"
        await page.keyboard.press("Tab")
        after_jump += 1
    # Field borders and the focus ring against white (WCAG 2.2 1.4.11 asks 3:1).
    await page.focus("#label")
    border, ring = await page.eval_on_selector(
        "#label",
        "e => [getComputedStyle(e).borderTopColor, getComputedStyle(e).outlineColor]",
    )
    assert contrast(border) >= 3, border
    assert contrast(ring) >= 3, ring
    print(f"Tab presses to Issue token: {direct} directly, {via_nav}+1+{after_jump} via the nav")
    await tab.check("tenant")

    # Issue a SCIM token that expires: shown once, next to its form.
    await page.fill("#label", "Entra production")
    await page.fill("#expires_in_days", "90")
    await page.click("text=Issue token")
    assert page.url == f"{acme}#tokens"
    message = page.locator("#tokens .flash.good")
    await expect(message).to_contain_text("New SCIM token “Entra production” issued")
    await expect(message).to_be_in_viewport()
    token = await page.locator("#new-secret-tokens").input_value()
    assert token.startswith("scimb_")
    assert await deps.tenants.authenticate(ORG, token) is not None
    await tab.check("token-issued")
    await page.locator("#tokens").screenshot(path=str(SHOTS / "web-tokens-section.png"))
    await page.reload()
    assert token not in await page.content()
    await page.go_back()
    assert token not in await page.content()
    await page.goto(acme)
    tokens = await deps.tenants.list_tokens(ORG)
    assert sorted(t.label for t in tokens) == ["Entra production", "test harness"]
    (issued,) = [t for t in tokens if t.label == "Entra production"]
    assert issued.expires_at
    assert KEY not in await page.content()  # never the LMS API key

    # Revoke it, after a confirmation naming it.
    await page.get_by_role("link", name=f"Revoke token Entra production {issued.token_id}").click()
    await expect(page.locator("h1")).to_have_text(
        f"Revoke token “Entra production” ({issued.token_id})?"
    )
    await tab.check("confirm-revoke-token")
    assert await deps.tenants.authenticate(ORG, token) is not None  # not yet
    await page.get_by_role(
        "button", name=f"Revoke token “Entra production” ({issued.token_id})"
    ).click()
    await expect(page.locator("#tokens .flash.good")).to_contain_text("was revoked")
    assert await deps.tenants.authenticate(ORG, token) is None

    # Retry the user whose failure a retry can cure.
    await page.get_by_role("button", name="Retry carol@entra.example").click()
    await expect(page.locator("#failed .flash.good")).to_contain_text(
        "carol@entra.example is queued for another sync"
    )
    await expect(page.locator("#failed .flash.good")).to_be_in_viewport()
    await page.locator("#failed").screenshot(path=str(SHOTS / "web-failed-section.png"))
    record = await deps.sync.record(ORG, world["carol"])
    assert record is not None
    assert record.state == "pending"
    assert await run_sync(deps, world["carol"]) == "synced"

    # Approve the held deactivation after a confirmation that names the learner.
    await page.click("text=Approve 1 deactivation")
    await expect(page.locator("h1")).to_have_text("Approve 1 deactivation?")
    await expect(page.locator(".confirm")).to_contain_text("The LMS deactivates 1 learner")
    await expect(page.locator(".confirm .people")).to_contain_text("Grace Hopper")
    await tab.check("confirm-approve")
    assert (await breaker_state(redis, ORG)).tripped  # nothing yet
    await page.get_by_role("button", name="Approve 1 deactivation").click()
    await expect(page.locator("#breaker .flash.good")).to_contain_text(
        "Approved: 1 learner released"
    )
    assert not (await breaker_state(redis, ORG)).tripped
    assert await run_sync(deps, world["grace"]) == "synced"
    (learner,) = [lr for lr in lms.learners() if lr.external_ref == world["grace"]]
    assert learner.status == "deactivated"
    await page.reload()
    await expect(page.locator("#breaker .card-head .badge")).to_contain_text("approved until")

    # Thresholds.
    await page.click("text=Change the thresholds")
    await page.fill("#share_percent", "15")
    await page.fill("#window_minutes", "120")
    await page.fill("#min_learners", "3")
    await page.click("text=Save thresholds")
    await expect(page.locator("#breaker .flash.good")).to_contain_text(
        "Breaker saved: on, 15% per 120 min"
    )
    await tab.check("breaker-saved")

    # Find a user by part of the email, open the story in plain words.
    await page.fill("#q", "grace@")
    await page.click("text=Search")
    await page.locator("#users .results a", has_text="Grace Hopper").click()
    await expect(page.locator("h1")).to_have_text("Grace Hopper")
    timeline = page.locator(".timeline")
    for said in (
        "Deactivation held by the breaker",
        "Deactivation approved",
        "Learner deactivated in the LMS",
        "Sync started",
    ):
        await expect(timeline).to_contain_text(said)
    assert "job_started" not in await timeline.inner_text()
    await expect(page.locator("main")).not_to_contain_text("Shadow record")
    await expect(page.locator("main")).not_to_contain_text("Applied version")
    await tab.check("user")
    await page.goto(f"{acme}/users/{world['bad']}")
    await expect(page.locator(".flash.bad")).to_contain_text("Fix this user in Entra")
    await expect(page.get_by_role("button", name="Retry bad@entra.example")).to_have_count(0)
    await tab.check("user-failed")

    # The mapping: preview beside the editor; a 100-character value keeps the layout.
    await page.goto(f"{acme}/mapping")
    long_title = "T" * 100
    await page.fill(
        "#user",
        '{"schemas": ["'
        + USER_SCHEMA
        + '"], "userName": "x@example.com", "title": "'
        + long_title
        + '", "name": {"givenName": "<b>X</b>", "familyName": "Y"}, '
        '"emails": [{"value": "x@example.com", "primary": true}]}',
    )
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator("#result")).to_contain_text("would sync")
    await expect(page.locator("#result")).to_contain_text("<b>X</b>")  # shown as text
    await expect(page.locator("#result")).to_contain_text(long_title)
    card = await page.locator("#preview").bounding_box()
    result = await page.locator(".preview-table").bounding_box()
    editor = await page.locator("#mapping").bounding_box()
    assert card is not None
    assert result is not None
    assert editor is not None
    assert result["x"] + result["width"] <= card["x"] + card["width"]
    assert editor["x"] < card["x"]  # side by side
    await tab.check("mapping-preview")
    await page.fill("#overrides", '{"fields": {"job_role": {"drop": true}}}')
    await page.click("text=Save mapping")
    await expect(page.locator("#mapping .flash.good")).to_contain_text("Mapping saved")
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator("#result")).to_contain_text("never sent")
    await tab.check("mapping-saved")

    # Admin keys for the customer's admin: shown once.
    await page.goto(acme)
    await page.fill("#key-label", "Jane at Acme IT")
    await page.click("text=Issue admin key")
    await expect(page.locator("#admin-keys .flash.good")).to_be_in_viewport()
    key = await page.locator("#new-secret-admin-keys").input_value()
    assert key.startswith("scimba_")
    await tab.check("admin-key-issued")

    # Reconcile: queued, with its progress on the page.
    await page.goto(acme)
    await page.click("text=Report differences")
    await expect(page.locator("#reconcile .flash.good")).to_contain_text("Reconcile report queued")
    await expect(page.locator("#reconcile .flash.info")).to_contain_text("Reconcile queued")

    # Settings: the LMS key, write-only.
    await page.fill("#lms-key", KEY)  # the same key: the tenant keeps syncing
    await page.click("text=Save settings")
    await expect(page.locator("#settings .flash.good")).to_contain_text("LMS key changed")
    assert KEY not in await page.content()

    # Disable after a confirmation, then enable.
    await page.click("text=Disable tenant")
    await expect(page.locator("h1")).to_have_text("Disable Acme Ltd?")
    await tab.check("confirm-disable")
    await page.get_by_role("button", name="Disable Acme Ltd").click()
    await expect(page.locator("#settings .flash.good")).to_contain_text("Acme Ltd is disabled")
    tenant = await deps.tenants.get(ORG)
    assert tenant is not None
    assert not tenant.enabled
    await page.click("text=Enable tenant")
    await expect(page.locator("#settings .flash.good")).to_contain_text("Acme Ltd is enabled")

    # Create a tenant; a refusal keeps what was typed.
    await page.goto(f"{api_url}/admin")
    await page.click("text=Create a tenant")
    await tab.check("tenant-new")
    await page.fill("#slug", "initech")
    await page.fill("#name", "Initech")
    await page.fill("#lms_url", f"{BASE}/")
    await page.fill("#lms_api_key", "initech-lms-key")
    await page.click("text=Create tenant")
    await expect(page.locator("h1")).to_have_text("Initech")
    await expect(page.locator("#tokens .flash.good")).to_contain_text("Tenant Initech created")

    # An unknown address is a page of the admin site.
    response = await page.goto(f"{api_url}/admin/nope")
    assert response is not None
    assert response.status == 404
    await expect(page.locator("h1")).to_have_text("Not found")
    await tab.check("not-found")

    # The session ends while a form is open: the user is told and comes back.
    await page.goto(acme)
    await page.fill("#label", "after the end")
    await redis.delete(*[k async for k in redis.scan_iter("scim-bridge:web:session:*")])
    await page.click("text=Issue token")
    await expect(page.locator(".flash.info")).to_contain_text("Your session ended")
    await tab.check("session-ended")
    await page.fill("#secret", OPERATOR)
    await page.click("button[type=submit]")
    assert page.url == acme
    assert "after the end" not in [t.label for t in await deps.tenants.list_tokens(ORG)]

    # Log out; the cookie it had is dead.
    cookies = await page.context.cookies()
    await page.click("text=Log out")
    await expect(page.locator(".flash.info")).to_contain_text("You are logged out")
    await page.context.add_cookies(cookies)
    await page.goto(acme)
    assert page.url.startswith(f"{api_url}/admin/login")
    return key


async def customer_walk(tab: Browser, api_url: str, key: str) -> None:
    """A customer's admin: lands on its tenant, sees nothing of the operator's."""
    page, expect = tab.page, playwright_api.expect
    await page.goto(f"{api_url}/admin")
    await page.fill("#secret", key)
    await page.click("button[type=submit]")
    assert page.url == f"{api_url}/admin/tenants/{ORG}"
    await expect(page.locator(".who")).to_contain_text(f"admin · {ORG}")
    main = page.locator("body")
    for hidden in ("Admin keys", "Disable tenant", "LMS API key", "operator", "Tenants"):
        await expect(main).not_to_contain_text(hidden)
    await expect(page.locator("#breaker")).not_to_contain_text("Breaker on")
    await tab.check("customer-tenant")
    # Its own work: a SCIM token for Entra (shown once), tighter thresholds.
    await page.fill("#label", "Entra")
    await page.click("text=Issue token")
    await expect(page.locator("#tokens .flash.good")).to_contain_text("New SCIM token “Entra”")
    assert (await page.locator("#new-secret-tokens").input_value()).startswith("scimb_")
    await page.click("text=Change the thresholds")
    await page.fill("#share_percent", "5")
    await page.click("text=Save thresholds")
    await expect(page.locator("#breaker .flash.good")).to_contain_text("Breaker saved: on, 5%")
    await tab.check("customer-work")
    response = await page.goto(f"{api_url}/admin/tenants/globex")
    assert response is not None
    assert response.status == 403
    await expect(page.locator("h1")).to_have_text("Not allowed")
    await expect(page.locator("main")).to_contain_text("Back to your tenant")
    await tab.check("customer-refused")
    response = await page.goto(f"{api_url}/admin/new-tenant")
    assert response is not None
    assert response.status == 403
    cookies = await page.context.cookies()
    (session,) = [c for c in cookies if c["name"] == "scim_bridge_admin"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
