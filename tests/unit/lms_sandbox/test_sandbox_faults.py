"""Rate limit, injected faults, outages and latency: the gate in front of the LMS API."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from lms_sandbox import SandboxConfig, create_app
from lms_sandbox.config import Knobs
from lms_sandbox.faults import Chaos, RateLimiter
from tests.unit.lms_sandbox.sandbox_testkit import (
    ACME,
    AUTH,
    GLOBEX,
    GLOBEX_AUTH,
    config,
    learner,
    sandbox_client,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the token bucket on its own ---------------------------------------------------------------


def test_bucket_allows_a_burst_then_asks_to_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    assert [limiter.take("k", rate=2, burst=3) for _ in range(3)] == [None, None, None]
    assert limiter.take("k", rate=2, burst=3) == 1  # half a second, rounded up to whole seconds
    clock.now += 0.5
    assert limiter.take("k", rate=2, burst=3) is None
    assert limiter.take("k", rate=2, burst=3) == 1


def test_bucket_retry_after_is_whole_seconds_of_the_refill() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    assert limiter.take("k", rate=0.25, burst=1) is None
    assert limiter.take("k", rate=0.25, burst=1) == 4
    clock.now += 1.5
    assert limiter.take("k", rate=0.25, burst=1) == 3  # 2.5 s left, rounded up


def test_bucket_refills_only_up_to_the_burst_and_per_key() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limiter.take("k", rate=1, burst=2)
    clock.now += 3600
    assert [limiter.take("k", rate=1, burst=2) for _ in range(3)] == [None, None, 1]
    assert limiter.take("other", rate=1, burst=2) is None
    limiter.reset()
    assert limiter.take("k", rate=1, burst=2) is None


def test_rate_zero_means_no_limit() -> None:
    limiter = RateLimiter(FakeClock())
    assert all(limiter.take("k", rate=0, burst=1) is None for _ in range(1000))


def test_chaos_is_reproducible_from_its_seed() -> None:
    knobs = Knobs(fault_rate=0.5, drop_after_write_rate=0.5, latency_jitter_ms=10)

    def draw(chaos: Chaos) -> list[object]:
        return [(chaos.fault(knobs), chaos.drop(knobs), chaos.latency(knobs)) for _ in range(50)]

    assert draw(Chaos(7)) == draw(Chaos(7))
    assert draw(Chaos(7)) != draw(Chaos(8))


def test_latency_is_fixed_plus_jitter() -> None:
    chaos = Chaos(1)
    delays = [chaos.latency(Knobs(latency_ms=20, latency_jitter_ms=5)) for _ in range(200)]
    assert all(0.020 <= d <= 0.025 for d in delays)
    assert chaos.latency(Knobs(latency_ms=20)) == 0.020


# --- through the app ---------------------------------------------------------------------------


async def test_over_the_limit_is_429_with_retry_after() -> None:
    async with sandbox_client(config(rate=1, burst=2)) as (client, sandbox):
        statuses = [(await client.get(f"{ACME}/learners", headers=AUTH)).status_code for _ in "abc"]
        assert statuses == [200, 200, 429]
        response = await client.post(f"{ACME}/learners", json=learner(), headers=AUTH)
        assert response.status_code == 429
        assert response.json() == {"error": "rate_limited"}
        assert int(response.headers["retry-after"]) >= 1
        assert sandbox.store.get("acme") is not None
        assert len(sandbox.store.get("acme") or []) == 0  # the refused POST wrote nothing

        # Another key has its own bucket; the control API is never limited.
        assert (await client.get(f"{GLOBEX}/learners", headers=GLOBEX_AUTH)).status_code == 200
        assert (await client.get("/_sandbox/stats")).status_code == 200

        stats = (await client.get("/_sandbox/stats")).json()
        assert stats["orgs"]["acme"]["routes"]["GET /api/v1/learners"] == {"200": 2, "429": 1}
        assert stats["orgs"]["acme"]["routes"]["POST /api/v1/learners"] == {"429": 1}
        assert stats["by_status"]["429"] == 2


async def test_requests_that_fail_auth_cost_no_token() -> None:
    async with sandbox_client(config(rate=1, burst=1)) as (client, _):
        for _ in range(5):
            response = await client.get(f"{ACME}/learners", headers={"Authorization": "Token x"})
            assert response.status_code == 401
        assert (await client.get(f"{ACME}/learners", headers=AUTH)).status_code == 200


async def test_invalid_requests_still_cost_a_token() -> None:
    async with sandbox_client(config(rate=1, burst=1)) as (client, _):
        bad = await client.post(f"{ACME}/learners", json={}, headers=AUTH)
        assert bad.status_code == 422
        assert (await client.get(f"{ACME}/learners", headers=AUTH)).status_code == 429


async def test_rate_knobs_change_at_run_time() -> None:
    async with sandbox_client(config(rate=1, burst=1)) as (client, _):
        await client.get(f"{ACME}/learners", headers=AUTH)
        assert (await client.get(f"{ACME}/learners", headers=AUTH)).status_code == 429
        await client.put("/_sandbox/knobs", json={"rate": 0})
        assert (await client.get(f"{ACME}/learners", headers=AUTH)).status_code == 200


async def test_faults_at_rate_one_answer_502_503_504_and_write_nothing() -> None:
    async with sandbox_client(config(fault_rate=1.0, seed=42)) as (client, sandbox):
        seen: set[int] = set()
        for _ in range(40):
            response = await client.post(f"{ACME}/learners", json=learner(), headers=AUTH)
            seen.add(response.status_code)
            if response.status_code == 503:
                assert response.headers["retry-after"] == "1"
            else:
                assert response.headers.get("retry-after") is None
                assert response.content == b"" or response.text.startswith("<html>")
                if response.content:
                    assert response.headers["content-type"].startswith("text/html")
        assert seen == {502, 503, 504}
        assert len(sandbox.store.get("acme") or []) == 0
        assert (await client.get("/_sandbox/orgs/acme/learners")).json() == {"results": []}


async def test_faults_come_before_auth_and_follow_the_chosen_statuses() -> None:
    async with sandbox_client(config(fault_rate=1.0, fault_statuses=(504,), seed=1)) as (
        client,
        _,
    ):
        response = await client.get("/org/nobody/api/v1/learners")
        assert response.status_code == 504


async def test_faults_are_reproducible_with_a_seed() -> None:
    async def run() -> list[int]:
        async with sandbox_client(config(fault_rate=0.5, seed=3)) as (client, _):
            return [
                (await client.get(f"{ACME}/learners", headers=AUTH)).status_code for _ in range(30)
            ]

    first = await run()
    assert first == await run()
    assert 200 in first
    assert set(first) - {200}


async def test_outage_window_answers_503_with_retry_after_until_it_ends() -> None:
    async with sandbox_client() as (client, _):
        knobs = await client.put("/_sandbox/knobs", json={"outage_seconds": 120})
        assert knobs.status_code == 200
        assert knobs.json()["outage_until"] == pytest.approx(time.time() + 120, abs=5)
        for method, path in [("GET", "/learners"), ("POST", "/learners/1/deactivate")]:
            response = await client.request(method, f"{ACME}{path}", headers=AUTH)
            assert response.status_code == 503
            assert 119 <= int(response.headers["retry-after"]) <= 120
        # Even unauthenticated requests meet the maintenance page first.
        assert (await client.get(f"{ACME}/learners")).status_code == 503
        # The control API still works during an outage.
        inserted = await client.post("/_sandbox/orgs/acme/learners", json=learner())
        assert inserted.status_code == 201

        await client.put("/_sandbox/knobs", json={"outage_seconds": 0})
        response = await client.get(f"{ACME}/learners", headers=AUTH)
        assert response.status_code == 200
        assert len(response.json()["results"]) == 1


async def test_outage_until_in_the_past_is_no_outage() -> None:
    cfg = config(outage_until=time.time() - 1)
    async with sandbox_client(cfg) as (client, _):
        assert (await client.get(f"{ACME}/learners", headers=AUTH)).status_code == 200


async def test_latency_is_added_without_blocking_the_loop() -> None:
    # httpx's ASGITransport runs the app on this loop with real concurrency (the test
    # client would serialise the requests).
    app = create_app(config(latency_ms=100))
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # ASGI typing differs
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        started = time.perf_counter()
        responses = await asyncio.gather(
            *(client.get(f"{ACME}/learners", headers=AUTH) for _ in range(20))
        )
        elapsed = time.perf_counter() - started
    assert all(r.status_code == 200 for r in responses)
    assert 0.1 <= elapsed < 1.0  # 20 sequential sleeps would take 2 s


def test_config_defaults_follow_the_contract() -> None:
    cfg = SandboxConfig()
    assert (cfg.rate, cfg.burst, cfg.fault_rate, cfg.drop_after_write_rate) == (20.0, 40, 0, 0)
