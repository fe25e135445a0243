"""LMS length limits (docs/lms-contract.md), counted in Unicode code points."""

from __future__ import annotations

from typing import Any

import pytest

from mappings import LMS_LIMITS, FieldOverride, MappingOverrides, build_rules, map_user

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LMS = "urn:ietf:params:scim:schemas:extension:lms:2.0:User"
EMOJI = "\U0001f469\u200d\U0001f52c"  # woman scientist: 3 code points, 1 grapheme


def _user_with(field: str, value: str) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": "u-1",
        "userName": "ada@example.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        ENTERPRISE: {},
        LMS: {},
    }
    place = {
        "first_name": (user["name"], "givenName"),
        "last_name": (user["name"], "familyName"),
        "job_role": (user, "title"),
        "company": (user[ENTERPRISE], "organization"),
        "business_unit": (user[ENTERPRISE], "department"),
        "team": (user[LMS], "team"),
        "external_ref": (user, "id"),
    }
    if field == "email":
        user["emails"] = [{"type": "work", "value": value}]
    else:
        target, key = place[field]
        target[key] = value
    return user


def _value(field: str, length: int) -> str:
    """A value of exactly `length` code points made of multi-code-point emoji."""
    if field == "email":
        domain = "@example.com"
        return (EMOJI * length)[: length - len(domain)] + domain
    return (EMOJI * length)[:length]


FIELDS = sorted(LMS_LIMITS)


def test_limits_match_lms_api() -> None:
    assert LMS_LIMITS == {
        "first_name": 100,
        "last_name": 100,
        "email": 254,
        "job_role": 100,
        "company": 100,
        "business_unit": 100,
        "team": 100,
        "external_ref": 255,
    }


@pytest.mark.parametrize("field", FIELDS)
def test_exactly_at_limit_is_kept(field: str) -> None:
    value = _value(field, LMS_LIMITS[field])
    result = map_user(_user_with(field, value), build_rules())
    assert getattr(result.draft, field) == value
    assert result.problems == ()


@pytest.mark.parametrize("field", [f for f in FIELDS if f != "email"])
def test_one_over_limit_is_truncated_by_default(field: str) -> None:
    limit = LMS_LIMITS[field]
    value = _value(field, limit + 1)
    result = map_user(_user_with(field, value), build_rules())
    assert getattr(result.draft, field) == value[:limit]
    assert len(getattr(result.draft, field)) == limit
    (problem,) = result.problems
    assert (problem.field, problem.kind, problem.fatal) == (field, "truncated", False)
    assert problem.message == f"{field}: {limit + 1} characters, cut to {limit}"
    assert result.ok


@pytest.mark.parametrize("length", [255, 257, 302])
def test_an_email_over_the_limit_is_never_cut_but_fails_the_user(length: int) -> None:
    """A cut address is another address, or none (a 302-character one cut
    to 254 loses its "@"): the user fails, saying why, until Entra fixes it."""
    value = "a" * (length - 12) + "@example.com"
    result = map_user(_user_with("email", value), build_rules())
    assert result.draft.email is None
    assert not result.ok
    assert [p.message for p in result.problems] == [
        f"email: {length} characters, over the limit of 254"
    ]


@pytest.mark.parametrize("field", FIELDS)
def test_reject_rule_makes_over_limit_fatal(field: str) -> None:
    limit = LMS_LIMITS[field]
    rules = build_rules(MappingOverrides(fields={field: FieldOverride(on_too_long="reject")}))
    value = "x" * (limit + 1) if field != "email" else "a" * (limit - 11) + "@example.com"
    result = map_user(_user_with(field, value), rules)
    assert getattr(result.draft, field) is None
    (problem,) = result.problems
    assert (problem.field, problem.kind, problem.fatal) == (field, "too_long", True)
    assert value not in problem.message
    assert not result.ok


def test_reject_rule_keeps_values_at_the_limit() -> None:
    rules = build_rules(MappingOverrides(fields={"team": FieldOverride(on_too_long="reject")}))
    result = map_user(_user_with("team", _value("team", 100)), rules)
    assert result.ok
    assert result.problems == ()


def test_lower_max_length_override() -> None:
    rules = build_rules(MappingOverrides(fields={"job_role": FieldOverride(max_length=5)}))
    result = map_user(_user_with("job_role", EMOJI * 2), rules)
    assert result.draft.job_role == EMOJI + EMOJI[:2]
    assert [p.message for p in result.problems] == ["job_role: 6 characters, cut to 5"]


def test_truncated_to_blanks_is_no_value() -> None:
    result = map_user(_user_with("first_name", " " * 100 + "Ada"), build_rules())
    assert result.draft.first_name is None
    assert [p.kind for p in result.problems] == ["truncated", "missing_required"]
