"""The mapping on hostile input (hypothesis), beyond
tests/unit/mappings/test_mapping_properties.py (map_user with three fixed
rule sets):

- a tenant's overrides arrive as text from the admin API and the CLI:
  `decode_overrides` on any text, bytes or JSON, in JSON or TOML, answers
  overrides or a MappingConfigError, never another exception; what it
  accepts builds, and survives an encode/decode round trip;
- `parse_path` on any text answers a SourcePath or a PathError, and what
  it accepts prints back (its `text`) and resolves on any user;
- `map_user` and `preview` under any rules `decode_overrides` accepts, on
  any JSON user, never raise and keep the LMS limits.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mappings import (
    LEARNER_FIELDS,
    LMS_LIMITS,
    MappingConfigError,
    PathError,
    build_rules,
    decode_overrides,
    encode_overrides,
    map_user,
    parse_path,
    preview,
    resolve,
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATH_ALPHABET = "abcdefgnmtuvwxyzRT.:[]\" eqEQ|$@-_0123456789\\'\tü"
SETTINGS = settings(
    max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=15,
)
source_paths = st.sampled_from(
    [
        "title", "name.givenName", 'emails[type eq "work"].value', "emails[primary eq true].value",
        "userName|email", f"{ENTERPRISE}:department", f"{ENTERPRISE}:manager.value",
        "urn:ietf:params:scim:schemas:core:2.0:User:userName", "x[", "", "a.b.c", "emails[type eq]",
    ]
) | st.text(alphabet=PATH_ALPHABET, max_size=40)  # fmt: skip
field_overrides = st.fixed_dictionaries(
    {},
    optional={
        "sources": st.lists(source_paths, max_size=3),
        "constant": st.none() | st.text(max_size=10) | st.integers(),
        "drop": st.booleans() | st.just("yes"),
        "max_length": st.integers(min_value=-5, max_value=5000),
        "on_too_long": st.sampled_from(["truncate", "reject", "explode"]),
        "unknown": st.just(1),
    },
)
overrides = st.fixed_dictionaries(
    {},
    optional={
        "fields": st.dictionaries(
            st.sampled_from([*LEARNER_FIELDS, "password", "Email"]), field_overrides, max_size=4
        )
        | json_values,
        "team_from_groups": st.none()
        | st.fixed_dictionaries(
            {}, optional={"patterns": st.lists(st.text(max_size=6), max_size=3), "x": st.just(1)}
        )
        | json_values,
        "extra": json_values,
    },
)


def _toml(value: dict[str, Any]) -> str:
    """A crude TOML rendering: good enough that some of it parses."""
    lines = []
    for table, body in value.items():
        if isinstance(body, dict):
            for name, inner in body.items():
                lines.append(f"[{table}.{json.dumps(str(name))}]")
                if isinstance(inner, dict):
                    lines += [f"{json.dumps(str(k))} = {json.dumps(v)}" for k, v in inner.items()]
        else:
            lines.append(f"{table} = {json.dumps(body)}")
    return "\n".join(lines)


@SETTINGS
@given(st.one_of(overrides.map(json.dumps), json_values.map(json.dumps), st.text(max_size=80)))
def test_decode_overrides_json_answers_overrides_or_a_config_error(text: str) -> None:
    for raw in (text, text.encode(), text.encode("utf-16")):
        try:
            decoded = decode_overrides(raw, "json")
        except MappingConfigError as exc:
            problems = exc.problems
            assert problems
            continue
        build_rules(decoded)
        assert decode_overrides(encode_overrides(decoded), "json") == decoded


@SETTINGS
@given(st.one_of(overrides.map(_toml), st.text(max_size=80)))
def test_decode_overrides_toml_answers_overrides_or_a_config_error(text: str) -> None:
    try:
        decoded = decode_overrides(text, "toml")
    except MappingConfigError as exc:
        problems = exc.problems
        assert problems
        return
    assert decode_overrides(encode_overrides(decoded), "json") == decoded


@SETTINGS
@given(source_paths, json_values)
def test_parse_path_answers_a_path_or_a_path_error_and_resolve_never_raises(
    text: str, user: object
) -> None:
    try:
        path = parse_path(text)
    except PathError:
        return
    assert path.text == text
    assert parse_path(path.text) == path
    found = resolve(path, user if isinstance(user, dict) else {"title": user})
    assert isinstance(found, list)


accepted_rules = overrides.map(json.dumps).map(lambda text: _decoded_or_none(text))


def _decoded_or_none(text: str) -> Any:
    try:
        return decode_overrides(text, "json")
    except MappingConfigError:
        return None


users = st.dictionaries(
    st.sampled_from(
        ["userName", "USERNAME", "name", "emails", "title", "active", ENTERPRISE, "id", "groups"]
    )
    | st.text(max_size=8),
    json_values,
    max_size=8,
)


@SETTINGS
@given(
    accepted_rules,
    users,
    st.lists(st.tuples(st.text(max_size=5), st.none() | st.text(max_size=300)), max_size=3),
)
def test_map_user_under_any_accepted_rules_never_raises(
    decoded: Any, user: dict[str, Any], groups: list[tuple[str, str | None]]
) -> None:
    assume(decoded is not None)
    rules = build_rules(decoded)
    result = map_user(user, rules, groups)
    for field, limit in LMS_LIMITS.items():
        value = getattr(result.draft, field)
        assert value is None or (isinstance(value, str) and len(value) <= limit)
    assert result.ok == (not any(p.fatal for p in result.problems))
    shown = preview(user, rules, groups)
    assert json.loads(json.dumps(shown)) == shown  # JSON-ready, as the admin API sends it
