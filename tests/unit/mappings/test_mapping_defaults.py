"""Each row of docs/architecture.md's default mapping table: present, missing, empty, null."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from mappings import DEFAULT_RULES, LEARNER_FIELDS, LearnerDraft, RuleSet, build_rules, map_user

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LMS = "urn:ietf:params:scim:schemas:extension:lms:2.0:User"
RULES: RuleSet = build_rules()

FULL_USER: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE, LMS],
    "id": "2819c223-7f76-453a-919d-413861904646",
    "userName": "not-an-address",
    "externalId": "ext-1",
    "active": True,
    "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
    "emails": [{"value": "Ada@Work.example", "type": "work", "primary": True}],
    "title": "Engineer",
    ENTERPRISE: {"organization": "Acme", "department": "R&D", "manager": {"value": "m-1"}},
    LMS: {"team": "Blue"},
}

FULL_DRAFT = LearnerDraft(
    first_name="Ada",
    last_name="Lovelace",
    email="Ada@Work.example",
    job_role="Engineer",
    company="Acme",
    business_unit="R&D",
    team="Blue",
    external_ref="2819c223-7f76-453a-919d-413861904646",
    active=True,
)

_MISSING = object()


def _setter(*keys: str) -> Callable[[dict[str, Any], object], None]:
    """Set (or remove, for _MISSING) the value at user[k1][k2]..."""

    def put(user: dict[str, Any], value: object) -> None:
        target = user
        for key in keys[:-1]:
            target = target[key]
        if value is _MISSING:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return put


def _put_email(user: dict[str, Any], value: object) -> None:
    if value is _MISSING:
        del user["emails"]
    else:
        user["emails"][0]["value"] = value


ROWS: list[tuple[str, Callable[[dict[str, Any], object], None]]] = [
    ("first_name", _setter("name", "givenName")),
    ("last_name", _setter("name", "familyName")),
    ("email", _put_email),
    ("job_role", _setter("title")),
    ("company", _setter(ENTERPRISE, "organization")),
    ("business_unit", _setter(ENTERPRISE, "department")),
    ("team", _setter(LMS, "team")),
    ("external_ref", _setter("id")),
]
REQUIRED = {"first_name", "last_name", "email"}


def test_default_rules_cover_every_learner_field_in_order() -> None:
    assert tuple(r.field for r in DEFAULT_RULES) == LEARNER_FIELDS
    assert RULES.field_rules == DEFAULT_RULES


def test_full_user_maps_to_full_draft() -> None:
    result = map_user(FULL_USER, RULES)
    assert result.draft == FULL_DRAFT
    assert result.problems == ()
    assert result.ok
    assert result.dropped == ()


@pytest.mark.parametrize(("field", "put"), ROWS, ids=[r[0] for r in ROWS])
@pytest.mark.parametrize(
    ("case", "value", "expected"),
    [
        ("present", "Something", "Something"),
        ("missing", _MISSING, None),
        ("empty", "", None),
        ("blank", "   ", None),
        ("null", None, None),
    ],
)
def test_default_row(
    field: str,
    put: Callable[[dict[str, Any], object], None],
    case: str,
    value: object,
    expected: str | None,
) -> None:
    user = copy.deepcopy(FULL_USER)
    if field == "email" and value == "Something":
        value = "someone@example.com"
        expected = value
    put(user, value)

    result = map_user(user, RULES)

    assert getattr(result.draft, field) == expected
    others = {k: v for k, v in vars_of(result.draft).items() if k != field}
    assert others == {k: v for k, v in vars_of(FULL_DRAFT).items() if k != field}
    if expected is None and field in REQUIRED:
        assert [(p.field, p.kind) for p in result.problems] == [(field, "missing_required")]
        assert not result.ok
    else:
        assert result.problems == ()
        assert result.ok


def vars_of(draft: LearnerDraft) -> dict[str, object]:
    return {f: getattr(draft, f) for f in draft.__struct_fields__}


@pytest.mark.parametrize(
    ("value", "expected", "problem"),
    [
        (True, True, None),
        (False, False, None),
        (_MISSING, True, None),
        (None, True, None),
        ("False", False, None),  # Entra's string booleans
        ("true", True, None),
        ("maybe", True, "not_boolean"),
        ({"x": 1}, True, "not_boolean"),
    ],
)
def test_active(value: object, expected: bool, problem: str | None) -> None:
    user = copy.deepcopy(FULL_USER)
    _setter("active")(user, value)
    result = map_user(user, RULES)
    assert result.draft.active is expected
    assert [p.kind for p in result.problems] == ([problem] if problem else [])
    assert result.ok is (problem is None)


def test_attribute_names_are_case_insensitive() -> None:
    user = {
        "ID": "u-1",
        "NAME": {"GIVENNAME": "Ada", "familyname": "Lovelace"},
        "Emails": [{"VALUE": "ada@example.com", "TYPE": "WORK"}],
        "Title": "Engineer",
        ENTERPRISE.upper(): {"Organization": "Acme", "DEPARTMENT": "R&D"},
        LMS.lower(): {"TEAM": "Blue"},
        "Active": False,
    }
    assert map_user(user, RULES).draft == LearnerDraft(
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.com",
        job_role="Engineer",
        company="Acme",
        business_unit="R&D",
        team="Blue",
        external_ref="u-1",
        active=False,
    )


def test_values_are_not_trimmed_or_recased() -> None:
    user = copy.deepcopy(FULL_USER)
    user["title"] = "  Senior Engineer "
    assert map_user(user, RULES).draft.job_role == "  Senior Engineer "


@pytest.mark.parametrize(
    ("title", "expected", "kinds"),
    [
        (42, "42", []),
        (1.5, "1.5", []),
        (True, None, ["not_text"]),
        ({"a": 1}, None, ["not_text"]),
        ([], None, []),
        (["Engineer", "Lead"], "Engineer", []),
        ([None, "", "Lead"], "Lead", []),
    ],
)
def test_non_string_values(title: object, expected: str | None, kinds: list[str]) -> None:
    user = copy.deepcopy(FULL_USER)
    user["title"] = title
    result = map_user(user, RULES)
    assert result.draft.job_role == expected
    assert [p.kind for p in result.problems] == kinds
    assert result.ok


def test_extension_that_is_not_an_object_yields_nothing() -> None:
    user = copy.deepcopy(FULL_USER)
    user[ENTERPRISE] = "Acme"
    user[LMS] = ["Blue"]
    result = map_user(user, RULES)
    assert (result.draft.company, result.draft.business_unit, result.draft.team) == (
        None,
        None,
        None,
    )
    assert result.ok


def test_not_a_mapping_is_an_empty_user() -> None:
    result = map_user([], RULES)  # type: ignore[arg-type]
    assert result.draft == LearnerDraft()
    assert {p.field for p in result.problems} == REQUIRED
