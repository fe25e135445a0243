"""map_user never raises: odd input becomes problems, not exceptions."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mappings import (
    LMS_LIMITS,
    FieldOverride,
    FieldRule,
    MappingOverrides,
    TeamFromGroups,
    build_rules,
    map_user,
    preview,
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LMS = "urn:ietf:params:scim:schemas:extension:lms:2.0:User"
KNOWN_KEYS = [
    "id",
    "userName",
    "active",
    "name",
    "givenName",
    "familyName",
    "emails",
    "value",
    "type",
    "primary",
    "title",
    "organization",
    "department",
    "team",
    ENTERPRISE,
    LMS,
]

keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=300)
    | st.sampled_from(["work", "true", "True", "a@b", "", " "])
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)
users = st.dictionaries(keys, json_values, max_size=10)
groups = st.lists(st.tuples(st.text(max_size=5), st.none() | st.text(max_size=120)), max_size=4)

RULE_SETS = [
    build_rules(),
    build_rules(
        MappingOverrides(
            fields={f: FieldOverride(on_too_long="reject") for f in LMS_LIMITS},
            team_from_groups=TeamFromGroups(patterns=("*a*", "g")),
        )
    ),
    build_rules(
        MappingOverrides(
            fields={
                "job_role": FieldOverride(sources=("emails.value", f"{ENTERPRISE}:manager.value")),
                "team": FieldOverride(drop=True),
                "active": FieldOverride(sources=("emails[primary eq true].primary",)),
            }
        )
    ),
]


@settings(max_examples=300, deadline=None, database=None)
@given(user=users, rule_index=st.integers(0, len(RULE_SETS) - 1), groups=groups)
def test_map_user_never_raises(user: dict[str, Any], rule_index: int, groups: Any) -> None:
    rules = RULE_SETS[rule_index]
    result = map_user(user, rules, groups)
    by_field: dict[str, FieldRule] = {c.rule.field: c.rule for c in rules.rules}
    for field, limit in LMS_LIMITS.items():
        value = getattr(result.draft, field)
        assert value is None or (isinstance(value, str) and len(value) <= limit)
        if value is not None:
            assert value.strip()
        assert by_field[field].max_length == limit
    assert result.ok == (not any(p.fatal for p in result.problems))
    if result.ok:
        assert result.draft.first_name
        assert result.draft.last_name
        assert result.draft.email
    assert isinstance(preview(user, rules, groups)["ok"], bool)
