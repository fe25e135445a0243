"""Every answer of docs/lms-contract.md: decoded on 2xx, the right exception otherwise,
never retried."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import respx

from lms_client import (
    Learner,
    LearnerWrite,
    LmsClient,
    LmsConflict,
    LmsError,
    LmsNotFound,
    LmsUnauthorized,
    LmsUnexpectedResponse,
    LmsUnsupported,
    LmsValidationError,
    RetryPolicy,
)
from tests.support.lms_answers import BASE, KEY, LEARNERS, Sleeps, learner_json

FAST = RetryPolicy(initial_backoff=0.001, max_backoff=0.002, jitter=0.001)


@pytest.fixture
def retry_policy() -> RetryPolicy:
    return FAST


async def test_get_decodes_learner_and_sends_auth(lms: respx.MockRouter, client: LmsClient) -> None:
    route = lms.get(f"{LEARNERS}/7").respond(200, json=learner_json(7, team="Blue"))
    learner = await client.get(7)
    assert isinstance(learner, Learner)
    assert (learner.id, learner.team, learner.status) == (7, "Blue", "active")
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Token {KEY}"
    assert request.headers["Content-Type"] == "application/json"


async def test_create_posts_given_fields_and_decodes_201(
    lms: respx.MockRouter, client: LmsClient
) -> None:
    route = lms.post(LEARNERS).respond(201, json=learner_json(9, external_ref="scim-9"))
    write = LearnerWrite(email="a@b.c", first_name="A", last_name="B", external_ref="scim-9")
    learner = await client.create(write)
    assert learner.id == 9
    assert json.loads(route.calls.last.request.content) == {
        "email": "a@b.c",
        "first_name": "A",
        "last_name": "B",
        "external_ref": "scim-9",
    }


async def test_update_patches_only_given_fields_with_null(
    lms: respx.MockRouter, client: LmsClient
) -> None:
    route = lms.patch(f"{LEARNERS}/7").respond(200, json=learner_json(7, job_role="Dev"))
    learner = await client.update(7, LearnerWrite(job_role="Dev", team=None))
    assert learner.job_role == "Dev"
    sent = route.calls.last.request.content
    assert json.loads(sent) == {"job_role": "Dev", "team": None}
    assert b'"team":null' in sent


@pytest.mark.parametrize(
    ("action", "status"), [("deactivate", "deactivated"), ("reactivate", "active")]
)
async def test_status_actions(
    lms: respx.MockRouter, client: LmsClient, action: str, status: str
) -> None:
    route = lms.post(f"{LEARNERS}/7/{action}").respond(200, json=learner_json(7, status=status))
    learner = await getattr(client, action)(7)
    assert learner.status == status
    assert json.loads(route.calls.last.request.content) == {}


@pytest.mark.parametrize(
    ("method", "param"), [("find_by_email", "email"), ("find_by_external_ref", "external_ref")]
)
async def test_find_returns_the_match_or_none(
    lms: respx.MockRouter, client: LmsClient, method: str, param: str
) -> None:
    route = lms.get(LEARNERS).mock(
        side_effect=[
            httpx.Response(200, json={"results": [learner_json(3)], "next": None}),
            httpx.Response(200, json={"results": [], "next": None}),
        ]
    )
    found = await getattr(client, method)("Ada+x@Example.com")
    assert found is not None
    assert found.id == 3
    assert dict(route.calls.last.request.url.params) == {param: "Ada+x@Example.com"}
    assert await getattr(client, method)("nobody") is None


async def test_list_learners_sends_page_and_size(lms: respx.MockRouter, client: LmsClient) -> None:
    route = lms.get(LEARNERS).respond(200, json={"results": [learner_json(1)], "next": 3})
    page = await client.list_learners(2, 1)
    assert page.next == 3
    assert [learner.id for learner in page.results] == [1]
    assert dict(route.calls.last.request.url.params) == {"page": "2", "page_size": "1"}


async def test_iter_learners_follows_next(lms: respx.MockRouter, client: LmsClient) -> None:
    pages = {1: ([1, 2], 2), 2: ([3, 4], 3), 3: ([5], None)}

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.params["page_size"] == "2"
        ids, following = pages[int(request.url.params["page"])]
        results = [learner_json(i) for i in ids]
        return httpx.Response(200, json={"results": results, "next": following})

    route = lms.get(LEARNERS).mock(side_effect=answer)
    assert [learner.id async for learner in client.iter_learners(page_size=2)] == [1, 2, 3, 4, 5]
    assert route.call_count == 3


async def test_iter_learners_refuses_a_next_that_goes_back(
    lms: respx.MockRouter, client: LmsClient
) -> None:
    lms.get(LEARNERS).respond(200, json={"results": [learner_json(1)], "next": 1})
    with pytest.raises(LmsUnexpectedResponse, match="points back"):
        _ = [learner async for learner in client.iter_learners()]


Call = Callable[[LmsClient], Awaitable[object]]
CALLS: dict[str, tuple[str, str, Call]] = {
    "create": ("POST", LEARNERS, lambda c: c.create(LearnerWrite(email="a@b.c"))),
    "update": ("PATCH", f"{LEARNERS}/7", lambda c: c.update(7, LearnerWrite(team="x"))),
    "get": ("GET", f"{LEARNERS}/7", lambda c: c.get(7)),
    "deactivate": ("POST", f"{LEARNERS}/7/deactivate", lambda c: c.deactivate(7)),
    "find": ("GET", LEARNERS, lambda c: c.find_by_email("a@b.c")),
}


@pytest.mark.parametrize(
    ("call", "status", "body", "exc_type"),
    [
        ("get", 401, {"error": "unauthorized"}, LmsUnauthorized),
        ("find", 401, {"error": "unauthorized"}, LmsUnauthorized),
        ("get", 404, {"error": "not_found"}, LmsNotFound),
        ("update", 404, {"error": "not_found"}, LmsNotFound),
        ("deactivate", 404, {"error": "not_found"}, LmsNotFound),
        ("create", 415, None, LmsUnsupported),
        ("create", 409, {"error": "email_taken", "learner_id": 5}, LmsConflict),
        ("update", 409, {"error": "external_ref_taken", "learner_id": 6}, LmsConflict),
        (
            "create",
            422,
            {"error": "validation_failed", "fields": {"email": ["not a valid address"]}},
            LmsValidationError,
        ),
        ("get", 500, None, LmsUnexpectedResponse),
        ("get", 403, {"error": "forbidden"}, LmsUnexpectedResponse),
    ],
)
async def test_rejections_raise_and_are_not_retried(
    lms: respx.MockRouter,
    client: LmsClient,
    sleeps: Sleeps,
    call: str,
    status: int,
    body: dict[str, Any] | None,
    exc_type: type[LmsError],
) -> None:
    method, path, do = CALLS[call]
    route = lms.request(method, path).respond(status, json=body)
    with pytest.raises(exc_type) as caught:
        await do(client)
    assert route.call_count == 1
    assert sleeps.calls == []
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("body", "error", "learner_id"),
    [
        ({"error": "email_taken", "learner_id": 5}, "email_taken", 5),
        ({"error": "external_ref_taken", "learner_id": 6}, "external_ref_taken", 6),
    ],
)
async def test_conflict_names_the_learner(
    lms: respx.MockRouter, client: LmsClient, body: dict[str, Any], error: str, learner_id: int
) -> None:
    lms.post(LEARNERS).respond(409, json=body)
    with pytest.raises(LmsConflict) as caught:
        await client.create(LearnerWrite(email="a@b.c"))
    assert (caught.value.error, caught.value.learner_id) == (error, learner_id)


async def test_validation_error_carries_fields(lms: respx.MockRouter, client: LmsClient) -> None:
    fields = {"email": ["not a valid address"], "team": ["at most 100 characters"]}
    lms.patch(f"{LEARNERS}/7").respond(422, json={"error": "validation_failed", "fields": fields})
    with pytest.raises(LmsValidationError) as caught:
        await client.update(7, LearnerWrite(email="nope", team="x" * 101))
    assert caught.value.fields == fields
    assert "team: at most 100 characters" in str(caught.value)


async def test_undecodable_success_is_unexpected_not_retried(
    lms: respx.MockRouter, client: LmsClient
) -> None:
    route = lms.get(f"{LEARNERS}/7").respond(200, json={"id": "seven"})
    with pytest.raises(LmsUnexpectedResponse, match="does not match") as caught:
        await client.get(7)
    assert caught.value.status == 200
    assert route.call_count == 1


async def test_on_call_reports_endpoint_templates(lms: respx.MockRouter, sleeps: Sleeps) -> None:
    seen: list[tuple[str, str]] = []
    lms.get(f"{LEARNERS}/7").respond(404, json={"error": "not_found"})
    lms.post(f"{LEARNERS}/7/deactivate").respond(200, json=learner_json(7))
    lms.get(LEARNERS).respond(200, json={"results": [], "next": None})
    async with LmsClient(
        BASE, KEY, retry=FAST, sleep=sleeps, on_call=lambda e, o, s: seen.append((e, o))
    ) as client:
        with pytest.raises(LmsNotFound):
            await client.get(7)
        await client.deactivate(7)
        await client.find_by_external_ref("r")
    assert seen == [
        ("GET /learners/{id}", "404"),
        ("POST /learners/{id}/deactivate", "200"),
        ("GET /learners?external_ref", "200"),
    ]


async def test_a_failing_on_call_does_not_break_the_call(lms: respx.MockRouter) -> None:
    def broken(endpoint: str, outcome: str, seconds: float) -> None:
        raise RuntimeError("metrics down")

    lms.get(f"{LEARNERS}/7").respond(200, json=learner_json(7))
    async with LmsClient(BASE, KEY, on_call=broken) as client:
        assert (await client.get(7)).id == 7


async def test_closes_only_the_http_client_it_made(lms: respx.MockRouter) -> None:
    own = LmsClient(BASE, KEY)
    async with own:
        pass
    assert own._http.is_closed

    shared = httpx.AsyncClient()
    async with LmsClient(BASE + "/", KEY, http=shared) as borrowed:
        lms.get(f"{LEARNERS}/7").respond(200, json=learner_json(7))
        assert (await borrowed.get(7)).id == 7
    assert not shared.is_closed
    await shared.aclose()


async def test_repr_hides_the_key() -> None:
    async with LmsClient(BASE, KEY) as client:
        assert KEY not in repr(client)
