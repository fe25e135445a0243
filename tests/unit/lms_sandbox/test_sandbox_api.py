"""The LMS API of docs/lms-contract.md, end to end through the app (Litestar's AsyncTestClient)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.unit.lms_sandbox.sandbox_testkit import (
    ACME,
    AUTH,
    GLOBEX,
    GLOBEX_AUTH,
    GLOBEX_KEY,
    Client,
    learner,
    sandbox_client,
)

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with sandbox_client() as (test_client, _):
        yield test_client


async def create(client: Client, n: int = 1, **fields: Any) -> dict[str, Any]:
    response = await client.post(f"{ACME}/learners", json=learner(n, **fields), headers=AUTH)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# --- auth and organisations ------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Token wrong"},
        {"Authorization": f"Token {GLOBEX_KEY}"},  # another organisation's key
        {"Authorization": "Bearer acme-secret"},
        {"Authorization": "token acme-secret"},
        {"Authorization": "Token"},
    ],
)
async def test_missing_or_wrong_key_is_401(client: Client, headers: dict[str, str]) -> None:
    for method, path in [("GET", "/learners"), ("POST", "/learners"), ("GET", "/learners/1")]:
        response = await client.request(method, f"{ACME}{path}", headers=headers, json={})
        assert response.status_code == 401
        assert response.json() == {"error": "unauthorized"}


async def test_unknown_organisation_is_404(client: Client) -> None:
    response = await client.get("/org/initech/api/v1/learners", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found"}


async def test_unknown_path_and_delete_answer_in_the_lms_shape(client: Client) -> None:
    await create(client)
    response = await client.get(f"{ACME}/courses", headers=AUTH)
    assert (response.status_code, response.json()) == (404, {"error": "not_found"})
    response = await client.delete(f"{ACME}/learners/1", headers=AUTH)
    assert (response.status_code, response.json()) == (405, {"error": "method_not_allowed"})
    assert "DELETE" not in response.headers["allow"]
    assert (await client.get(f"{ACME}/learners/1", headers=AUTH)).status_code == 200


# --- create ------------------------------------------------------------------------------------


async def test_create_answers_201_with_the_full_learner(client: Client) -> None:
    body = await create(client, job_role="Engineer", team="", external_ref="scim-1")
    assert body == {
        "id": 1,
        "email": "user1@example.com",
        "first_name": "First1",
        "last_name": "Last1",
        "job_role": "Engineer",
        "company": None,
        "business_unit": None,
        "team": "",
        "external_ref": "scim-1",
        "status": "active",
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
    }
    assert RFC3339_UTC.match(body["created_at"])


async def test_ids_start_from_1_in_each_organisation(client: Client) -> None:
    assert (await create(client, 1))["id"] == 1
    assert (await create(client, 2))["id"] == 2
    response = await client.post(f"{GLOBEX}/learners", json=learner(1), headers=GLOBEX_AUTH)
    assert response.json()["id"] == 1  # same email is fine in another organisation


async def test_email_is_stored_as_given(client: Client) -> None:
    assert (await create(client, email="Mixed.Case@Example.COM"))["email"] == (
        "Mixed.Case@Example.COM"
    )


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/xml", "text/json"])
async def test_create_with_a_non_json_content_type_is_415(
    client: Client, content_type: str | None
) -> None:
    headers = dict(AUTH)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await client.post(f"{ACME}/learners", content=b'{"a": 1}', headers=headers)
    assert response.status_code == 415
    assert response.json() == {"error": "unsupported_media_type"}


async def test_create_accepts_json_with_a_utf8_charset(client: Client) -> None:
    headers = {**AUTH, "Content-Type": "application/json; charset=utf-8"}
    body = '{"email": "ü@x", "first_name": "Zoë", "last_name": "Ø"}'.encode()
    response = await client.post(f"{ACME}/learners", content=body, headers=headers)
    assert response.status_code == 201
    assert response.json()["first_name"] == "Zoë"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"[]", "must be a JSON object"), (b"nope", "not valid JSON"), (b"", "not valid JSON")],
)
async def test_create_with_a_body_that_is_not_an_object_is_422(
    client: Client, raw: bytes, reason: str
) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    response = await client.post(f"{ACME}/learners", content=raw, headers=headers)
    assert response.status_code == 422
    assert response.json() == {"error": "validation_failed", "fields": {"body": [reason]}}


async def test_create_422_names_every_bad_field(client: Client) -> None:
    body = {"email": "a@b@c", "last_name": 7, "team": "t" * 101, "status": "active", "foo": 1}
    response = await client.post(f"{ACME}/learners", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json() == {
        "error": "validation_failed",
        "fields": {
            "email": ["not a valid address"],
            "last_name": ["must be a string"],
            "team": ["at most 100 characters"],
            "status": ["read-only field"],
            "foo": ["unknown field"],
            "first_name": ["required"],
        },
    }
    assert (await client.get(f"{ACME}/learners", headers=AUTH)).json()["results"] == []


async def test_create_with_a_taken_email_is_409_compared_lowercased(client: Client) -> None:
    first = await create(client, 1, email="Ann@Example.com")
    response = await client.post(
        f"{ACME}/learners", json=learner(2, email="ann@EXAMPLE.COM"), headers=AUTH
    )
    assert response.status_code == 409
    assert response.json() == {"error": "email_taken", "learner_id": first["id"]}


async def test_create_with_a_taken_external_ref_is_409(client: Client) -> None:
    first = await create(client, 1, external_ref="ref-1")
    response = await client.post(
        f"{ACME}/learners", json=learner(2, external_ref="ref-1"), headers=AUTH
    )
    assert response.status_code == 409
    assert response.json() == {"error": "external_ref_taken", "learner_id": first["id"]}


async def test_external_ref_is_compared_exactly_and_null_is_never_taken(client: Client) -> None:
    await create(client, 1, external_ref="Ref")
    await create(client, 2, external_ref="ref")
    await create(client, 3, external_ref=None)
    await create(client, 4)


async def test_email_taken_wins_when_both_keys_are_taken(client: Client) -> None:
    await create(client, 1, external_ref="ref-1")
    holder_of_email = await create(client, 2)
    response = await client.post(
        f"{ACME}/learners", json=learner(2, external_ref="ref-1"), headers=AUTH
    )
    assert response.json() == {"error": "email_taken", "learner_id": holder_of_email["id"]}


async def test_invalid_and_conflicting_is_422(client: Client) -> None:
    await create(client, 1)
    response = await client.post(f"{ACME}/learners", json=learner(1, team=5), headers=AUTH)
    assert response.status_code == 422


# --- read --------------------------------------------------------------------------------------


async def test_read_one_and_unknown_ids(client: Client) -> None:
    created = await create(client)
    response = await client.get(f"{ACME}/learners/1", headers=AUTH)
    assert (response.status_code, response.json()) == (200, created)
    for path in ["/learners/2", "/learners/0", "/learners/-1", "/learners/abc"]:
        response = await client.get(f"{ACME}{path}", headers=AUTH)
        assert (response.status_code, response.json()) == (404, {"error": "not_found"})


async def test_organisations_are_walled_off(client: Client) -> None:
    await create(client)
    response = await client.get(f"{GLOBEX}/learners/1", headers=GLOBEX_AUTH)
    assert response.status_code == 404


# --- patch -------------------------------------------------------------------------------------


async def test_patch_changes_only_the_given_fields(client: Client) -> None:
    created = await create(client, job_role="Dev", company="Acme")
    response = await client.patch(
        f"{ACME}/learners/1", json={"job_role": None, "team": "Blue"}, headers=AUTH
    )
    assert response.status_code == 200
    body = response.json()
    assert body == {
        **created,
        "job_role": None,
        "team": "Blue",
        "updated_at": body["updated_at"],
    }
    assert body["updated_at"] > created["updated_at"]


@pytest.mark.parametrize(
    "change",
    [{}, {"first_name": "First1"}, {"email": "user1@example.com", "job_role": None}],
)
async def test_a_patch_that_changes_nothing_keeps_updated_at(
    client: Client, change: dict[str, Any]
) -> None:
    created = await create(client)
    response = await client.patch(f"{ACME}/learners/1", json=change, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == created


async def test_a_change_of_email_case_is_a_change(client: Client) -> None:
    created = await create(client)
    response = await client.patch(
        f"{ACME}/learners/1", json={"email": "USER1@example.com"}, headers=AUTH
    )
    assert response.status_code == 200
    assert response.json()["email"] == "USER1@example.com"
    assert response.json()["updated_at"] > created["updated_at"]


async def test_patch_status_is_422_and_changes_nothing(client: Client) -> None:
    created = await create(client)
    response = await client.patch(
        f"{ACME}/learners/1", json={"status": "deactivated", "team": "x"}, headers=AUTH
    )
    assert response.status_code == 422
    assert response.json()["fields"] == {"status": ["read-only field"]}
    assert (await client.get(f"{ACME}/learners/1", headers=AUTH)).json() == created


async def test_patch_is_allowed_on_a_deactivated_learner(client: Client) -> None:
    await create(client)
    await client.post(f"{ACME}/learners/1/deactivate", headers=AUTH)
    response = await client.patch(f"{ACME}/learners/1", json={"team": "Red"}, headers=AUTH)
    assert response.status_code == 200
    assert response.json()["status"] == "deactivated"
    assert response.json()["team"] == "Red"


async def test_patch_conflicts_and_precedence(client: Client) -> None:
    await create(client, 1, external_ref="ref-1")
    await create(client, 2, external_ref="ref-2")
    url = f"{ACME}/learners/2"
    response = await client.patch(url, json={"email": "USER1@example.com"}, headers=AUTH)
    assert response.json() == {"error": "email_taken", "learner_id": 1}
    response = await client.patch(url, json={"external_ref": "ref-1"}, headers=AUTH)
    assert response.json() == {"error": "external_ref_taken", "learner_id": 1}
    both = {"email": "user1@example.com", "external_ref": "ref-1"}
    response = await client.patch(url, json=both, headers=AUTH)
    assert response.json() == {"error": "email_taken", "learner_id": 1}
    response = await client.patch(url, json={**both, "last_name": ""}, headers=AUTH)
    assert response.status_code == 422
    # Its own keys are not a conflict.
    own = {"email": "User2@Example.com", "external_ref": "ref-2"}
    assert (await client.patch(url, json=own, headers=AUTH)).status_code == 200


async def test_patch_frees_the_old_keys(client: Client) -> None:
    await create(client, 1, external_ref="ref-1")
    changed = {"email": "new@example.com", "external_ref": None}
    assert (await client.patch(f"{ACME}/learners/1", json=changed, headers=AUTH)).status_code == 200
    await create(client, 2, email="user1@example.com", external_ref="ref-1")
    found = await client.get(f"{ACME}/learners", params={"email": "NEW@example.com"}, headers=AUTH)
    assert [row["id"] for row in found.json()["results"]] == [1]


async def test_patch_errors(client: Client) -> None:
    response = await client.patch(f"{ACME}/learners/9", json={"team": "x"}, headers=AUTH)
    assert (response.status_code, response.json()) == (404, {"error": "not_found"})
    await create(client)
    response = await client.patch(f"{ACME}/learners/1", json={"first_name": None}, headers=AUTH)
    assert response.json()["fields"] == {"first_name": ["may not be null"]}
    response = await client.patch(
        f"{ACME}/learners/1", content=b"team=x", headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    response = await client.patch(
        f"{ACME}/learners/1", content=b"[1]", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.json() == {
        "error": "validation_failed",
        "fields": {"body": ["must be a JSON object"]},
    }


# --- deactivate / reactivate ---------------------------------------------------------------------


async def test_deactivate_and_reactivate_are_idempotent(client: Client) -> None:
    created = await create(client)
    first = await client.post(f"{ACME}/learners/1/deactivate", headers=AUTH)
    assert first.status_code == 200
    assert first.json()["status"] == "deactivated"
    assert first.json()["updated_at"] > created["updated_at"]
    again = await client.post(f"{ACME}/learners/1/deactivate", headers=AUTH)
    assert (again.status_code, again.json()) == (200, first.json())

    back = await client.post(f"{ACME}/learners/1/reactivate", headers=AUTH)
    assert back.json()["status"] == "active"
    again = await client.post(f"{ACME}/learners/1/reactivate", headers=AUTH)
    assert (again.status_code, again.json()) == (200, back.json())


@pytest.mark.parametrize("action", ["deactivate", "reactivate"])
async def test_actions_on_unknown_learners_are_404(client: Client, action: str) -> None:
    response = await client.post(f"{ACME}/learners/1/{action}", headers=AUTH)
    assert (response.status_code, response.json()) == (404, {"error": "not_found"})


# --- list --------------------------------------------------------------------------------------


async def test_list_by_email_is_case_insensitive_and_exact(client: Client) -> None:
    await create(client, 1, email="Ann@Example.com")
    await create(client, 2, email="ann@example.co")
    response = await client.get(
        f"{ACME}/learners", params={"email": "ANN@example.COM"}, headers=AUTH
    )
    assert response.status_code == 200
    body = response.json()
    assert [row["id"] for row in body["results"]] == [1]
    assert body["next"] is None
    response = await client.get(f"{ACME}/learners", params={"email": "nobody@x"}, headers=AUTH)
    assert response.json() == {"results": [], "next": None}


async def test_list_by_external_ref_is_exact(client: Client) -> None:
    await create(client, 1, external_ref="a+b c")
    params = {"external_ref": "a+b c"}
    response = await client.get(f"{ACME}/learners", params=params, headers=AUTH)
    assert [row["id"] for row in response.json()["results"]] == [1]
    params = {"external_ref": "A+B C"}
    response = await client.get(f"{ACME}/learners", params=params, headers=AUTH)
    assert response.json()["results"] == []


async def test_list_pages_by_id(client: Client) -> None:
    for n in range(1, 121):
        await create(client, n)
    url = f"{ACME}/learners"
    default = (await client.get(url, headers=AUTH)).json()
    assert [row["id"] for row in default["results"]] == list(range(1, 51))
    assert default["next"] == 2

    page3 = (await client.get(url, params={"page": 3}, headers=AUTH)).json()
    assert [row["id"] for row in page3["results"]] == list(range(101, 121))
    assert page3["next"] is None

    exact = (await client.get(url, params={"page": 2, "page_size": 60}, headers=AUTH)).json()
    assert [row["id"] for row in exact["results"]] == list(range(61, 121))
    assert exact["next"] is None

    big = (await client.get(url, params={"page_size": 200}, headers=AUTH)).json()
    assert len(big["results"]) == 120

    past = await client.get(url, params={"page": 9}, headers=AUTH)
    assert (past.status_code, past.json()) == (200, {"results": [], "next": None})


async def test_list_of_an_empty_organisation(client: Client) -> None:
    response = await client.get(f"{ACME}/learners", headers=AUTH)
    assert response.json() == {"results": [], "next": None}


@pytest.mark.parametrize(
    "query",
    [
        "page_size=201",
        "page_size=0",
        "page=0",
        "page=abc",
        "email=a%40b&external_ref=r",
        "email=a%40b&page=1",
        "external_ref=r&page_size=5",
        "sort=id",
        "email=a%40b&email=c%40d",
    ],
)
async def test_bad_list_queries_are_422(client: Client, query: str) -> None:
    response = await client.get(f"{ACME}/learners?{query}", headers=AUTH)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_failed"
    assert body["fields"]
