"""Per-tenant overrides: decoding (JSON, TOML), merging, and every problem at once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mappings import (
    DEFAULT_RULES,
    FieldOverride,
    FieldRule,
    MappingConfigError,
    MappingOverrides,
    TeamFromGroups,
    build_rules,
    decode_overrides,
    encode_overrides,
    map_user,
    preview,
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LMS = "urn:ietf:params:scim:schemas:extension:lms:2.0:User"

USER: dict[str, Any] = {
    "id": "u-1",
    "userName": "ada@example.com",
    "name": {"givenName": "Ada", "familyName": "Lovelace"},
    "title": "Engineer",
    ENTERPRISE: {"organization": "Acme", "department": "R&D", "employeeNumber": "E-7"},
    LMS: {"team": "Blue"},
}

EXAMPLE_JSON = f"""
{{"fields": {{
    "job_role": {{"sources": ["{ENTERPRISE}:employeeNumber"]}},
    "company": {{"constant": "Acme Ltd"}},
    "team": {{"drop": true}},
    "email": {{"on_too_long": "reject"}}
}}}}
"""

EXAMPLE_TOML = f"""
[fields.job_role]
sources = ["{ENTERPRISE}:employeeNumber"]

[fields.company]
constant = "Acme Ltd"

[fields.team]
drop = true

[fields.email]
on_too_long = "reject"
"""

EXAMPLE = MappingOverrides(
    fields={
        "job_role": FieldOverride(sources=(f"{ENTERPRISE}:employeeNumber",)),
        "company": FieldOverride(constant="Acme Ltd"),
        "team": FieldOverride(drop=True),
        "email": FieldOverride(on_too_long="reject"),
    }
)


@pytest.mark.parametrize(
    ("text", "fmt"),
    [(EXAMPLE_JSON, "json"), (EXAMPLE_JSON.encode(), "json"), (EXAMPLE_TOML, "toml")],
)
def test_decode_example(text: str | bytes, fmt: Any) -> None:
    assert decode_overrides(text, fmt) == EXAMPLE


def test_example_applied() -> None:
    rules = build_rules(EXAMPLE)
    result = map_user(USER, rules)
    assert result.draft.job_role == "E-7"
    assert result.draft.company == "Acme Ltd"
    assert result.draft.team is None
    assert result.dropped == ("team",)
    assert "team" not in result.lms_fields()
    assert "active" not in result.lms_fields()
    assert result.lms_fields()["job_role"] == "E-7"
    by_field = {r.field: r for r in rules.field_rules}
    assert by_field["email"].on_too_long == "reject"
    assert by_field["email"].sources == next(r.sources for r in DEFAULT_RULES if r.field == "email")
    assert by_field["company"] == FieldRule(field="company", constant="Acme Ltd", max_length=100)


def test_encode_round_trip() -> None:
    data = encode_overrides(EXAMPLE)
    assert decode_overrides(data, "json") == EXAMPLE
    with_groups = MappingOverrides(team_from_groups=TeamFromGroups(patterns=("Team *", "g-1")))
    assert decode_overrides(encode_overrides(with_groups)) == with_groups
    assert encode_overrides(MappingOverrides()) == b"{}"


def test_empty_overrides_are_the_defaults() -> None:
    assert decode_overrides("{}") == MappingOverrides()
    assert decode_overrides("", "toml") == MappingOverrides()
    assert build_rules(MappingOverrides()) == build_rules(None)


def test_sources_replace_default_constant_and_back() -> None:
    rules = build_rules(
        MappingOverrides(
            fields={
                "job_role": FieldOverride(sources=("TITLE", "nickName")),
                "company": FieldOverride(constant=None),
            }
        )
    )
    result = map_user({**USER, "title": "", "nickName": "Countess"}, rules)
    assert result.draft.job_role == "Countess"
    assert result.draft.company == "Acme"


def test_empty_sources_always_clear_an_optional_field() -> None:
    rules = build_rules(MappingOverrides(fields={"business_unit": FieldOverride(sources=())}))
    result = map_user(USER, rules)
    assert result.draft.business_unit is None
    assert "business_unit" in result.lms_fields()


@pytest.mark.parametrize(("constant", "expected"), [("false", False), ("TRUE", True)])
def test_active_constant(constant: str, expected: bool) -> None:
    rules = build_rules(MappingOverrides(fields={"active": FieldOverride(constant=constant)}))
    assert map_user({**USER, "active": not expected}, rules).draft.active is expected


def test_active_from_another_source() -> None:
    rules = build_rules(
        MappingOverrides(fields={"active": FieldOverride(sources=(f"{LMS}:enabled", "active"))})
    )
    assert map_user({**USER, LMS: {"enabled": False}, "active": True}, rules).draft.active is False
    assert map_user({**USER, "active": False}, rules).draft.active is False


def test_constant_on_required_field() -> None:
    rules = build_rules(MappingOverrides(fields={"last_name": FieldOverride(constant="-")}))
    result = map_user({"name": {"givenName": "Cher"}, "userName": "cher@example.com"}, rules)
    assert result.draft.last_name == "-"
    assert result.ok


def _problems(text: str | bytes, fmt: Any = "json") -> list[tuple[str, str]]:
    with pytest.raises(MappingConfigError) as info:
        decode_overrides(text, fmt)
    return [(p.field, p.kind) for p in info.value.problems]


def test_bad_overrides_are_reported_together() -> None:
    text = """{
        "fields": {
            "jobrole": {"sources": ["title"]},
            "email": {"sources": ["emails["]},
            "company": {"constant": "Acme", "sources": ["title"]},
            "team": {"drop": "yes"},
            "first_name": {"drop": true},
            "last_name": {"max_length": 101},
            "job_role": {"sourcse": ["title"]}
        },
        "colour": "blue"
    }"""
    with pytest.raises(MappingConfigError) as info:
        decode_overrides(text)
    problems = [(p.field, p.kind) for p in info.value.problems]
    assert sorted(problems) == sorted(
        [
            ("colour", "bad_syntax"),
            ("jobrole", "unknown_field"),
            ("team", "bad_syntax"),
            ("job_role", "bad_syntax"),
            ("email", "bad_rule"),
            ("company", "bad_rule"),
            ("first_name", "bad_rule"),
            ("last_name", "bad_rule"),
        ]
    )
    message = str(info.value)
    for name in ("jobrole", "emails[", "either sources or constant", "fields.team.drop"):
        assert name in message


def test_bad_overrides_in_toml_are_reported_together() -> None:
    text = """
    [fields.jobrole]
    sources = ["title"]
    [fields.job_role]
    sources = ["title with spaces"]
    [fields.company]
    constant = "Acme"
    sources = ["title"]
    """
    assert sorted(_problems(text, "toml")) == [
        ("company", "bad_rule"),
        ("job_role", "bad_rule"),
        ("jobrole", "unknown_field"),
    ]


def test_build_rules_reports_every_problem() -> None:
    overrides = MappingOverrides(
        fields={
            "nickname": FieldOverride(sources=("nickName",)),
            "team": FieldOverride(sources=("a b", "c[")),
            "email": FieldOverride(sources=()),
            "active": FieldOverride(drop=True, max_length=3),
        }
    )
    with pytest.raises(MappingConfigError) as info:
        build_rules(overrides)
    assert [(p.field, p.kind) for p in info.value.problems] == [
        ("nickname", "unknown_field"),
        ("email", "bad_rule"),
        ("team", "bad_rule"),
        ("team", "bad_rule"),
        ("active", "bad_rule"),
        ("active", "bad_rule"),
    ]


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        (FieldOverride(constant=""), "constant is empty"),
        (FieldOverride(constant="x" * 101), "constant is 101 characters"),
        (FieldOverride(max_length=0), "max_length"),
        (FieldOverride(max_length=101), "max_length"),
    ],
)
def test_bad_constant_and_limits(override: FieldOverride, needle: str) -> None:
    with pytest.raises(MappingConfigError, match=needle):
        build_rules(MappingOverrides(fields={"team": override}))


def test_bad_active_constant() -> None:
    with pytest.raises(MappingConfigError, match='"true" or "false"'):
        build_rules(MappingOverrides(fields={"active": FieldOverride(constant="yes")}))


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("{not json", "json"),
        ("[fields", "toml"),
        ("[1, 2]", "json"),
        ('{"fields": []}', "json"),
        ('{"team_from_groups": {"patterns": "Team *"}}', "json"),
        (b"\xff", "toml"),
        ("{}", "yaml"),
    ],
)
def test_unreadable_overrides(text: str | bytes, fmt: Any) -> None:
    assert {kind for _, kind in _problems(text, fmt)} == {"bad_syntax"}


def test_preview_is_json_ready() -> None:
    rules = build_rules(EXAMPLE)
    view = preview({**USER, "title": None, "name": {"givenName": "A" * 101}}, rules)
    assert json.loads(json.dumps(view)) == view
    assert view["ok"] is False
    assert view["dropped"] == ["team"]
    assert view["learner"]["first_name"] == "A" * 100
    assert view["learner"]["active"] is True
    assert view["problems"] == [
        {
            "field": "first_name",
            "kind": "truncated",
            "fatal": False,
            "message": "first_name: 101 characters, cut to 100",
        },
        {
            "field": "last_name",
            "kind": "missing_required",
            "fatal": True,
            "message": "last_name: required, but no source has a value (tried name.familyName)",
        },
    ]
