"""The LMS's request rules as pure functions (lms_sandbox.validation)."""

from __future__ import annotations

from typing import Any

import pytest

from lms_sandbox.errors import UnsupportedMediaType, ValidationFailed
from lms_sandbox.validation import (
    ListQuery,
    check_json_content_type,
    decode_object,
    parse_list_query,
    validate_learner,
)


def fields_of(data: dict[str, Any], *, partial: bool = False) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as caught:
        validate_learner(data, partial=partial)
    return caught.value.fields


VALID = {"email": "a@b", "first_name": "A", "last_name": "B"}


def test_minimal_valid_create_returns_only_given_fields() -> None:
    assert validate_learner(dict(VALID), partial=False) == VALID


def test_create_names_every_missing_required_field() -> None:
    assert fields_of({}) == {
        "email": ["required"],
        "first_name": ["required"],
        "last_name": ["required"],
    }


def test_patch_requires_nothing() -> None:
    assert validate_learner({}, partial=True) == {}


@pytest.mark.parametrize("name", ["id", "status", "created_at", "updated_at"])
def test_read_only_fields_are_rejected(name: str) -> None:
    assert fields_of({**VALID, name: "x"}) == {name: ["read-only field"]}
    assert fields_of({name: "x"}, partial=True) == {name: ["read-only field"]}


def test_unknown_fields_are_rejected() -> None:
    assert fields_of({**VALID, "nickname": "x"}) == {"nickname": ["unknown field"]}


@pytest.mark.parametrize("name", ["email", "first_name", "last_name"])
def test_required_fields_may_not_be_null_or_non_strings(name: str) -> None:
    assert fields_of({**VALID, name: None}) == {name: ["may not be null"]}
    assert fields_of({name: None}, partial=True) == {name: ["may not be null"]}
    assert fields_of({**VALID, name: 5}) == {name: ["must be a string"]}


OPTIONAL = ["job_role", "company", "business_unit", "team", "external_ref"]


@pytest.mark.parametrize("name", OPTIONAL)
def test_optional_fields_take_null_and_empty_strings(name: str) -> None:
    assert validate_learner({name: None}, partial=True) == {name: None}
    assert validate_learner({name: ""}, partial=True) == {name: ""}


@pytest.mark.parametrize("name", OPTIONAL)
@pytest.mark.parametrize("value", [1, 1.5, True, [], {}])
def test_optional_fields_reject_other_types(name: str, value: object) -> None:
    assert fields_of({name: value}, partial=True) == {name: ["must be a string or null"]}


LIMITS = [
    ("first_name", 100),
    ("last_name", 100),
    ("job_role", 100),
    ("company", 100),
    ("business_unit", 100),
    ("team", 100),
    ("external_ref", 255),
]


@pytest.mark.parametrize(("name", "limit"), LIMITS)
def test_lengths_count_code_points(name: str, limit: int) -> None:
    # An emoji is one code point but two UTF-16 units and four UTF-8 bytes.
    assert validate_learner({name: "😀" * limit}, partial=True) == {name: "😀" * limit}
    assert fields_of({name: "é" * (limit + 1)}, partial=True) == {
        name: [f"at most {limit} characters"]
    }


@pytest.mark.parametrize("name", ["first_name", "last_name"])
def test_names_need_at_least_one_character(name: str) -> None:
    assert fields_of({name: ""}, partial=True) == {name: ["at least 1 character"]}


def test_email_length_limit_is_254_code_points() -> None:
    ok = "ü" * 200 + "@" + "x" * 53
    assert len(ok) == 254
    assert validate_learner({"email": ok}, partial=True) == {"email": ok}
    assert fields_of({"email": ok + "x"}, partial=True) == {"email": ["at most 254 characters"]}


@pytest.mark.parametrize("email", ["a@b", "first.last+tag@example.com", "ü@ö", " a @ b "])
def test_valid_addresses(email: str) -> None:
    assert validate_learner({"email": email}, partial=True) == {"email": email}


@pytest.mark.parametrize("email", ["", "ab", "@b", "a@", "a@b@c", "@", "a@@b"])
def test_invalid_addresses(email: str) -> None:
    assert fields_of({"email": email}, partial=True) == {"email": ["not a valid address"]}


def test_every_bad_field_is_named_at_once() -> None:
    errors = fields_of({"email": "nope", "team": "t" * 101, "status": "active", "x": 1})
    assert errors == {
        "email": ["not a valid address"],
        "team": ["at most 100 characters"],
        "status": ["read-only field"],
        "x": ["unknown field"],
        "first_name": ["required"],
        "last_name": ["required"],
    }


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=UTF8",
    ],
)
def test_json_content_types_are_accepted(content_type: str) -> None:
    check_json_content_type(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/merge-patch+json",
        "application/json; charset=latin-1",
    ],
)
def test_other_content_types_are_415(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        check_json_content_type(content_type)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xff", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'"x"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"1", "must be a JSON object"),
    ],
)
def test_a_body_that_is_not_an_object_is_named_body(body: bytes, reason: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decode_object(body)
    assert caught.value.fields == {"body": [reason]}


def test_decode_object_returns_the_object() -> None:
    assert decode_object(b'{"a": [1]}') == {"a": [1]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ListQuery()),
        ("email=A%40B.com", ListQuery(email="A@B.com")),
        ("email=", ListQuery(email="")),
        ("external_ref=r%2B1", ListQuery(external_ref="r+1")),
        ("page=3", ListQuery(page=3)),
        ("page_size=200", ListQuery(page_size=200)),
        ("page=2&page_size=1", ListQuery(page=2, page_size=1)),
    ],
)
def test_list_query_modes(query: str, expected: ListQuery) -> None:
    assert parse_list_query(query) == expected


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("foo=1", {"foo": ["unknown parameter"]}),
        ("Email=a%40b", {"Email": ["unknown parameter"]}),
        ("page=1&page=2", {"page": ["given more than once"]}),
        ("page=0", {"page": ["must be at least 1"]}),
        ("page=-1", {"page": ["must be an integer"]}),
        ("page=1.0", {"page": ["must be an integer"]}),
        ("page=x", {"page": ["must be an integer"]}),
        ("page_size=0", {"page_size": ["must be from 1 to 200"]}),
        ("page_size=201", {"page_size": ["must be from 1 to 200"]}),
        (
            "email=a%40b&external_ref=r",
            {
                "email": ["cannot be combined with external_ref"],
                "external_ref": ["cannot be combined with email"],
            },
        ),
        (
            "external_ref=r&page=1&page_size=5",
            {
                "external_ref": ["cannot be combined with page, page_size"],
                "page": ["cannot be combined with external_ref"],
                "page_size": ["cannot be combined with external_ref"],
            },
        ),
    ],
)
def test_bad_list_queries_are_422(query: str, errors: dict[str, list[str]]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_list_query(query)
    assert caught.value.fields == errors
