"""Faults of docs/lms-contract.md: retried within the policy, deferred past it, paced by
the limiter."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx

from lms_client import (
    LearnerWrite,
    LmsClient,
    LmsConflict,
    LmsDeferred,
    LmsError,
    LmsRateLimited,
    LmsTransientError,
    LmsUnauthorized,
    LmsValidationError,
    RetryPolicy,
)
from tests.support.lms_answers import BASE, KEY, LEARNERS, Sleeps, learner_json

FAST = RetryPolicy(
    max_attempts=4,
    initial_backoff=0.001,
    max_backoff=0.002,
    jitter=0.001,
    total_budget=5.0,
    max_retry_after_wait=3.0,
)


def ok() -> httpx.Response:
    return httpx.Response(200, json=learner_json(7))


@pytest.fixture
def retry_policy() -> RetryPolicy:
    return FAST


async def test_429_waits_retry_after_then_succeeds(
    lms: respx.MockRouter, client: LmsClient, sleeps: Sleeps
) -> None:
    limited = httpx.Response(429, json={"error": "rate_limited"}, headers={"Retry-After": "1"})
    route = lms.get(f"{LEARNERS}/7").mock(side_effect=[limited, ok()])
    assert (await client.get(7)).id == 7
    assert route.call_count == 2
    assert sleeps.calls == [1.0]


async def test_503_with_retry_after_then_succeeds(
    lms: respx.MockRouter, client: LmsClient, sleeps: Sleeps
) -> None:
    busy = httpx.Response(503, headers={"Retry-After": "2"})
    route = lms.patch(f"{LEARNERS}/7").mock(side_effect=[busy, busy, ok()])
    assert (await client.update(7, LearnerWrite(team="x"))).id == 7
    assert route.call_count == 3
    assert sleeps.calls == [2.0, 2.0]


async def test_retry_after_as_http_date(
    lms: respx.MockRouter, client: LmsClient, sleeps: Sleeps
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    busy = httpx.Response(503, headers={"Retry-After": when})
    lms.get(f"{LEARNERS}/7").mock(side_effect=[busy, ok()])
    await client.get(7)
    assert len(sleeps.calls) == 1
    assert 1.0 < sleeps.calls[0] <= 3.0


@pytest.mark.parametrize(
    "fault",
    [
        httpx.Response(502, html="<html><body><h1>502 Bad Gateway</h1></body></html>"),
        httpx.Response(504),
        httpx.Response(503, headers={"Retry-After": "whenever"}),  # garbage: back off instead
        httpx.Response(429, json={"error": "rate_limited"}),  # no Retry-After: back off
    ],
)
async def test_gateway_faults_back_off_then_succeed(
    lms: respx.MockRouter, client: LmsClient, sleeps: Sleeps, fault: httpx.Response
) -> None:
    route = lms.get(f"{LEARNERS}/7").mock(side_effect=[fault, ok()])
    assert (await client.get(7)).id == 7
    assert route.call_count == 2
    assert len(sleeps.calls) == 1
    assert 0 < sleeps.calls[0] <= FAST.max_backoff


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
    ],
)
async def test_transport_errors_are_retried(
    lms: respx.MockRouter, client: LmsClient, sleeps: Sleeps, error: Exception
) -> None:
    route = lms.get(f"{LEARNERS}/7").mock(side_effect=[error, error, ok()])
    assert (await client.get(7)).id == 7
    assert route.call_count == 3
    assert len(sleeps.calls) == 2


async def test_backoff_grows_and_is_capped(lms: respx.MockRouter, sleeps: Sleeps) -> None:
    policy = RetryPolicy(max_attempts=5, initial_backoff=1.0, max_backoff=3.0, jitter=0.0)
    route = lms.get(f"{LEARNERS}/7").mock(
        side_effect=[*(httpx.Response(502) for _ in range(4)), ok()]
    )
    async with LmsClient(BASE, KEY, retry=policy, sleep=sleeps) as client:
        await client.get(7)
    assert route.call_count == 5
    assert sleeps.calls == [1.0, 2.0, 3.0, 3.0]


async def test_exhausted_retries_raise_the_last_transient_error(
    lms: respx.MockRouter, client: LmsClient, sleeps: Sleeps
) -> None:
    route = lms.get(f"{LEARNERS}/7").mock(
        side_effect=[
            httpx.Response(502),
            httpx.Response(504),
            httpx.Response(502),
            httpx.Response(503),
        ]
    )
    with pytest.raises(LmsTransientError) as caught:
        await client.get(7)
    assert type(caught.value) is LmsTransientError
    assert caught.value.status == 503
    assert route.call_count == FAST.max_attempts
    assert len(sleeps.calls) == FAST.max_attempts - 1


async def test_exhausted_transport_errors_keep_the_cause(
    lms: respx.MockRouter, client: LmsClient
) -> None:
    lms.post(LEARNERS).mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(LmsTransientError, match="ConnectError") as caught:
        await client.create(LearnerWrite(email="a@b.c"))
    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_exhausted_429_is_rate_limited(lms: respx.MockRouter, client: LmsClient) -> None:
    lms.get(f"{LEARNERS}/7").respond(
        429, json={"error": "rate_limited"}, headers={"Retry-After": "1"}
    )
    with pytest.raises(LmsRateLimited) as caught:
        await client.get(7)
    assert caught.value.retry_after == 1.0


@pytest.mark.parametrize("status", [429, 503])
async def test_long_retry_after_defers_at_once(
    lms: respx.MockRouter, client: LmsClient, sleeps: Sleeps, status: int
) -> None:
    route = lms.get(f"{LEARNERS}/7").respond(status, headers={"Retry-After": "300"})
    with pytest.raises(LmsDeferred) as caught:
        await client.get(7)
    assert caught.value.retry_after == 300.0
    assert caught.value.status == status
    assert route.call_count == 1
    assert sleeps.calls == []


async def test_retry_after_past_the_budget_defers(lms: respx.MockRouter, sleeps: Sleeps) -> None:
    policy = RetryPolicy(total_budget=1.5, max_retry_after_wait=10.0)
    route = lms.get(f"{LEARNERS}/7").respond(503, headers={"Retry-After": "2"})
    async with LmsClient(BASE, KEY, retry=policy, sleep=sleeps) as client:
        with pytest.raises(LmsDeferred):
            await client.get(7)
    assert route.call_count == 1
    assert sleeps.calls == []


async def test_backoff_past_the_budget_stops(lms: respx.MockRouter, sleeps: Sleeps) -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff=1.0, jitter=0.0, total_budget=0.5)
    route = lms.get(f"{LEARNERS}/7").respond(502)
    async with LmsClient(BASE, KEY, retry=policy, sleep=sleeps) as client:
        with pytest.raises(LmsTransientError) as caught:
            await client.get(7)
    assert not isinstance(caught.value, LmsDeferred)
    assert route.call_count == 1
    assert sleeps.calls == []


async def test_a_rejection_after_a_fault_is_not_retried(
    lms: respx.MockRouter, client: LmsClient
) -> None:
    bad = httpx.Response(422, json={"error": "validation_failed", "fields": {"email": ["bad"]}})
    route = lms.post(LEARNERS).mock(side_effect=[httpx.Response(503), bad, ok()])
    with pytest.raises(LmsValidationError):
        await client.create(LearnerWrite(email="x"))
    assert route.call_count == 2


async def test_limiter_is_awaited_before_every_attempt(
    lms: respx.MockRouter, sleeps: Sleeps
) -> None:
    events: list[str] = []

    class Limiter:
        async def acquire(self) -> None:
            events.append("acquire")

    answers: Iterator[httpx.Response | Exception] = iter(
        [httpx.ReadTimeout("slow"), httpx.Response(429), ok()]
    )

    def answer(request: httpx.Request) -> httpx.Response:
        events.append("request")
        item = next(answers)
        if isinstance(item, Exception):
            raise item
        return item

    lms.get(f"{LEARNERS}/7").mock(side_effect=answer)
    async with LmsClient(BASE, KEY, retry=FAST, sleep=sleeps, limiter=Limiter()) as client:
        await client.get(7)
    assert events == ["acquire", "request"] * 3


async def test_post_applied_before_the_drop_meets_its_own_conflict(
    lms: respx.MockRouter, client: LmsClient
) -> None:
    stored: dict[str, int] = {}

    def lms_side(request: httpx.Request) -> httpx.Response:
        ref = json.loads(request.content)["external_ref"]
        if ref in stored:
            return httpx.Response(
                409, json={"error": "external_ref_taken", "learner_id": stored[ref]}
            )
        stored[ref] = 42  # applied, then the connection drops before the answer
        raise httpx.RemoteProtocolError("server disconnected", request=request)

    route = lms.post(LEARNERS).mock(side_effect=lms_side)
    with pytest.raises(LmsConflict) as caught:
        await client.create(LearnerWrite(email="a@b.c", external_ref="scim-1"))
    assert caught.value.error == "external_ref_taken"
    assert caught.value.learner_id == 42
    assert route.call_count == 2


async def test_real_sleep_with_millisecond_backoff(lms: respx.MockRouter) -> None:
    lms.get(f"{LEARNERS}/7").mock(side_effect=[httpx.Response(503), httpx.Response(502), ok()])
    async with LmsClient(BASE, KEY, retry=FAST) as client:
        assert (await client.get(7)).id == 7


async def test_key_never_in_errors_or_logs(
    lms: respx.MockRouter, client: LmsClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    lms.get(f"{LEARNERS}/1").respond(401, json={"error": "unauthorized"})
    lms.get(f"{LEARNERS}/2").mock(side_effect=httpx.ConnectError("refused"))
    lms.get(f"{LEARNERS}/3").respond(503, headers={"Retry-After": "600"})
    lms.get(f"{LEARNERS}/4").respond(502, html="<html>Bad Gateway</html>")
    lms.get(LEARNERS).respond(200, json={"results": [], "next": None})
    errors: list[LmsError] = []
    cases: list[tuple[int, type[LmsError]]] = [
        (1, LmsUnauthorized),
        (2, LmsTransientError),
        (3, LmsDeferred),
        (4, LmsTransientError),
    ]
    for learner_id, exc_type in cases:
        with pytest.raises(exc_type) as caught:
            await client.get(learner_id)
        errors.append(caught.value)
    await client.find_by_email("secret.person@example.com")

    for error in errors:
        assert KEY not in str(error)
        assert KEY not in repr(error)
        assert "Bad Gateway" not in str(error)
    assert KEY not in caplog.text
    ours = [r.getMessage() for r in caplog.records if r.name == "lms_client"]
    assert "LMS GET /org/acme/api/v1/learners/1 -> 401 in" in " ".join(ours)
    assert not any("secret.person" in message for message in ours)
