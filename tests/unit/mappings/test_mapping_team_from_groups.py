"""team_from_groups: the first pattern, in pattern order, that matches a group."""

from __future__ import annotations

from typing import Any

import pytest

from mappings import (
    FieldOverride,
    GroupRef,
    MappingConfigError,
    MappingOverrides,
    TeamFromGroups,
    build_rules,
    decode_overrides,
    map_user,
)

LMS = "urn:ietf:params:scim:schemas:extension:lms:2.0:User"
USER: dict[str, Any] = {
    "id": "u-1",
    "userName": "ada@example.com",
    "name": {"givenName": "Ada", "familyName": "Lovelace"},
    LMS: {"team": "From attribute"},
}
GROUPS: list[GroupRef] = [
    ("g-1", "All Staff"),
    ("g-2", "Team Blue"),
    ("g-3", "team red"),
    ("g-4", None),
    ("g-5", "LMS-Engineering"),
    GroupRef("g-6", "Sales EMEA", "6F1C2C9E-0000-4444-8888-123456789ABC"),
]


def _rules(*patterns: str) -> Any:
    return build_rules(MappingOverrides(team_from_groups=TeamFromGroups(patterns=patterns)))


@pytest.mark.parametrize(
    ("patterns", "groups", "expected"),
    [
        pytest.param(("lms-*",), GROUPS, "LMS-Engineering", id="glob-case-insensitive"),
        pytest.param(("Team *", "lms-*"), GROUPS, "Team Blue", id="pattern-order-then-name"),
        pytest.param(("lms-*", "Team *"), GROUPS, "LMS-Engineering", id="pattern-order-wins"),
        pytest.param(("g-2", "lms-*"), GROUPS, "Team Blue", id="exact-id"),
        pytest.param(("G-2",), GROUPS, "Team Blue", id="id-ignores-case"),
        pytest.param(
            ("6f1c2c9e-0000-4444-8888-123456789abc",),
            GROUPS,
            "Sales EMEA",
            id="external-id-as-entra-shows-it",
        ),
        pytest.param(("g-4", "All*"), GROUPS, "All Staff", id="group-without-name-skipped"),
        pytest.param(("nope*",), GROUPS, None, id="no-match-is-null"),
        pytest.param(("*",), [], None, id="no-groups-is-null"),
        pytest.param(("TEAM ?ed",), GROUPS, "team red", id="question-mark"),
        pytest.param(("team [bq]*",), GROUPS, "Team Blue", id="char-class"),
    ],
)
def test_team_from_groups(
    patterns: tuple[str, ...], groups: list[GroupRef], expected: str | None
) -> None:
    result = map_user(USER, _rules(*patterns), groups)
    assert result.draft.team == expected
    assert result.ok


def test_group_order_does_not_matter() -> None:
    rules = _rules("team *")
    teams = {map_user(USER, rules, order).draft.team for order in (GROUPS, GROUPS[::-1])}
    assert teams == {"Team Blue"}


def test_without_setting_groups_are_ignored() -> None:
    assert map_user(USER, build_rules(), GROUPS).draft.team == "From attribute"


def test_team_limits_still_apply() -> None:
    rules = build_rules(
        MappingOverrides(
            fields={"team": FieldOverride(on_too_long="reject")},
            team_from_groups=TeamFromGroups(patterns=("*",)),
        )
    )
    result = map_user(USER, rules, [("g-9", "x" * 101)])
    assert result.draft.team is None
    assert [p.kind for p in result.problems] == ["too_long"]


def test_odd_group_entries_are_skipped() -> None:
    groups: Any = [None, ("only-one",), (1, "One"), ("g-1", 2), ("g-2", "Team Blue")]
    assert map_user(USER, _rules("*"), groups).draft.team == "Team Blue"


def test_decoded_from_toml() -> None:
    overrides = decode_overrides('[team_from_groups]\npatterns = ["Team *", "g-7"]\n', "toml")
    assert overrides.team_from_groups == TeamFromGroups(patterns=("Team *", "g-7"))


@pytest.mark.parametrize(
    "text",
    [
        '{"team_from_groups": {"patterns": []}}',
        '{"team_from_groups": {"patterns": [""]}}',
        '{"team_from_groups": {"patterns": ["*"]}, "fields": {"team": {"drop": true}}}',
        '{"team_from_groups": {"patterns": ["*"]}, "fields": {"team": {"constant": "x"}}}',
        '{"team_from_groups": {"patterns": ["*"]}, "fields": {"team": {"sources": ["x"]}}}',
    ],
)
def test_bad_team_from_groups(text: str) -> None:
    with pytest.raises(MappingConfigError) as info:
        decode_overrides(text)
    assert [(p.field, p.kind) for p in info.value.problems] == [("team_from_groups", "bad_rule")]
