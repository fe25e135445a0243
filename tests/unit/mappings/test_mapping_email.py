"""Email precedence: work, then primary, then userName when it is an address."""

from __future__ import annotations

from typing import Any

import pytest

from mappings import build_rules, map_user

RULES = build_rules()
WORK = {"value": "Ada@Work.example", "type": "work"}
WORK_2 = {"value": "second@work.example", "type": "Work"}
PRIMARY = {"value": "ada@primary.example", "type": "other", "primary": True}
HOME = {"value": "ada@home.example", "type": "home"}


def _user(emails: object, user_name: object = "ada@username.example") -> dict[str, Any]:
    user: dict[str, Any] = {"id": "u-1", "name": {"givenName": "Ada", "familyName": "Lovelace"}}
    if emails is not None:
        user["emails"] = emails
    if user_name is not None:
        user["userName"] = user_name
    return user


@pytest.mark.parametrize(
    ("emails", "user_name", "expected"),
    [
        pytest.param([PRIMARY, WORK], "ada@u.example", "Ada@Work.example", id="work-beats-primary"),
        pytest.param([WORK, WORK_2], "ada@u.example", "Ada@Work.example", id="first-work-wins"),
        pytest.param([HOME, PRIMARY], "ada@u.example", "ada@primary.example", id="then-primary"),
        pytest.param(
            [{"value": "", "type": "work"}, PRIMARY],
            None,
            "ada@primary.example",
            id="empty-work-falls-through",
        ),
        pytest.param(
            [{"value": None, "type": "work"}, {"type": "work"}, PRIMARY],
            None,
            "ada@primary.example",
            id="null-work-falls-through",
        ),
        pytest.param([HOME], "ada@u.example", "ada@u.example", id="then-username"),
        pytest.param(None, "ada@u.example", "ada@u.example", id="no-emails-username"),
        pytest.param([], "Ada@U.Example", "Ada@U.Example", id="username-case-kept"),
        pytest.param(
            [{"value": "x@p.example", "primary": "True"}],
            None,
            "x@p.example",
            id="entra-string-primary",
        ),
    ],
)
def test_email_precedence(emails: object, user_name: object, expected: str) -> None:
    result = map_user(_user(emails, user_name), RULES)
    assert result.draft.email == expected
    assert result.problems == ()


@pytest.mark.parametrize(
    "user_name",
    ["ada", "ada@", "@example.com", "a@b@c", "", None, 42, {"x": 1}],
)
def test_username_not_an_address_is_missing(user_name: object) -> None:
    result = map_user(_user([HOME], user_name), RULES)
    assert result.draft.email is None
    assert [(p.field, p.kind) for p in result.problems if p.kind != "not_text"] == [
        ("email", "missing_required")
    ]
    assert not result.ok


def test_missing_message_names_the_sources_not_values() -> None:
    result = map_user(_user([HOME], "ada-secret"), RULES)
    (problem,) = result.problems
    assert "userName|email" in problem.message
    assert "ada-secret" not in problem.message


def test_chosen_email_that_is_not_an_address_fails() -> None:
    result = map_user(_user([{"value": "not-mail", "type": "work"}]), RULES)
    assert result.draft.email == "not-mail"
    assert [p.kind for p in result.problems] == ["not_an_address"]
    assert "not-mail" not in result.problems[0].message
    assert not result.ok


def test_emails_not_a_list_single_object_is_used() -> None:
    result = map_user(_user({"value": "solo@work.example", "type": "work"}), RULES)
    assert result.draft.email == "solo@work.example"


@pytest.mark.parametrize("emails", ["ada@x.example", 7, [1, "x", None, []]])
def test_odd_emails_shapes_fall_back_to_username(emails: object) -> None:
    result = map_user(_user(emails), RULES)
    assert result.draft.email == "ada@username.example"
    assert result.ok
