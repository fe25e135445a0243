"""The filter parser at its limits and on hostile text (hypothesis), beyond
test_filter_props.py:

- the length, nesting and term limits hold exactly: a filter within all
  three parses, one past any of them is InvalidFilter (never RecursionError,
  however deep the nesting);
- every string a parsed filter carries is real text (UTF-8 encodable): a
  lone surrogate escape such as `"\\ud800"` is refused, since the value
  goes on to Redis lookups and JSON encoders that cannot take it;
- `equality_key` never raises on a parsed filter, and `matches` answers a
  bool or a ScimError on documents other than one fixed user.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scim.ast import And, Compare, Filter, Not, Or, Present, ValuePath
from scim.errors import InvalidFilter, ScimError
from scim.evaluate import matches, validate_filter
from scim.filter import (
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_FILTER_TERMS,
    equality_key,
    parse_filter,
    parse_patch_path,
)
from scim.schema import ENTERPRISE_USER_SCHEMA, GROUP_RESOURCE, USER_RESOURCE, USER_SCHEMA

SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def strings_of(f: Filter) -> list[str]:
    if isinstance(f, Compare):
        return [f.value] if isinstance(f.value, str) else []
    if isinstance(f, And | Or):
        return strings_of(f.left) + strings_of(f.right)
    if isinstance(f, Not):
        return strings_of(f.inner)
    if isinstance(f, ValuePath):
        return strings_of(f.filter)
    return []


def terms_of(f: Filter) -> int:
    if isinstance(f, Compare | Present):
        return 1
    if isinstance(f, And | Or):
        return terms_of(f.left) + terms_of(f.right)
    if isinstance(f, Not):
        return terms_of(f.inner)
    return terms_of(f.filter) if isinstance(f, ValuePath) else 0


@SETTINGS
@given(
    depth=st.integers(0, MAX_FILTER_DEPTH + 40),
    terms=st.integers(1, MAX_FILTER_TERMS + 40),
    opener=st.sampled_from(["(", "not (", "NOT(", " ( "]),
    joiner=st.sampled_from([" or ", " and ", " OR "]),
    padding=st.integers(0, 20),
)
def test_the_limits_hold_exactly(
    depth: int, terms: int, opener: str, joiner: str, padding: int
) -> None:
    inner = joiner.join(["title pr"] * terms)
    text = opener * depth + inner + ")" * depth + " " * padding
    within = depth <= MAX_FILTER_DEPTH and terms <= MAX_FILTER_TERMS
    if len(text) <= MAX_FILTER_LENGTH and within:
        assert terms_of(parse_filter(text)) == terms
    else:
        with pytest.raises(InvalidFilter):
            parse_filter(text)


@pytest.mark.parametrize("depth", [MAX_FILTER_DEPTH + 1, 1000, 1900])
def test_nesting_far_past_the_limit_is_invalid_filter(depth: int) -> None:
    for text in (
        "(" * depth + "a pr" + ")" * depth,
        "not (" * depth,
        "(" * depth,
        "emails[" * depth,
    ):
        with pytest.raises(InvalidFilter):
            parse_filter(text[:MAX_FILTER_LENGTH])
    with pytest.raises(ScimError):
        parse_patch_path("emails[" + "(" * depth + 'type eq "work"' + ")" * depth + "].value")


surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
escapes = st.integers(0, 0xFFFF).map(lambda c: f"\\u{c:04x}")
literal_bodies = st.lists(
    escapes | st.sampled_from(['\\"', "\\\\", "\\n", "\\/", "a", "é", " "]) | surrogates,
    max_size=6,
).map("".join)


@SETTINGS
@given(
    attr=st.sampled_from(["userName", "externalId", "id", "displayName", "title", "emails.value"]),
    body=literal_bodies,
)
def test_parsed_strings_are_always_real_text(attr: str, body: str) -> None:
    for text in (
        f'{attr} eq "{body}"',
        f'emails[value eq "{body}"]',
        f'{attr} sw "{body}" or a pr',
    ):
        try:
            parsed = parse_filter(text)
        except InvalidFilter:
            continue
        for value in strings_of(parsed):
            value.encode("utf-8")  # raises on a lone surrogate
        key = equality_key(parsed)
        if key is not None:
            key[1].encode("utf-8")


documents = st.fixed_dictionaries(
    {"schemas": st.just([USER_SCHEMA]), "id": st.text(max_size=5)},
    optional={
        "userName": st.text(max_size=8) | st.integers(),
        "active": st.booleans() | st.text(max_size=3),
        "title": st.none() | st.text(max_size=5) | st.lists(st.text(max_size=3), max_size=2),
        "emails": st.lists(
            st.dictionaries(
                st.sampled_from(["value", "type", "primary"]),
                st.none() | st.booleans() | st.text(max_size=4) | st.integers(),
                max_size=3,
            )
            | st.text(max_size=3),
            max_size=3,
        ),
        "meta": st.dictionaries(
            st.sampled_from(["created", "lastModified"]),
            st.sampled_from(["2024-01-01T00:00:00Z", "yesterday", ""]) | st.integers(),
        ),
        ENTERPRISE_USER_SCHEMA: st.dictionaries(
            st.sampled_from(["department", "manager"]),
            st.text(max_size=4) | st.fixed_dictionaries({"value": st.text(max_size=3)}),
        ),
        "members": st.lists(st.fixed_dictionaries({"value": st.text(max_size=3)}), max_size=2),
    },
)
filter_texts = st.sampled_from(
    [
        'userName eq "a"', "userName pr", 'title co ""', 'emails[type eq "work"]',
        'emails[value sw "a" and primary eq true]', "not (active eq true)", "active eq false",
        'meta.created gt "2023-01-01T00:00:00Z"', "meta.lastModified le 5", "userName gt 3",
        f'{ENTERPRISE_USER_SCHEMA}:manager.value eq "m"', 'members[value eq "x"]',
        'displayName eq "Team"', "emails.primary eq true or title pr", 'id eq "x" and userName pr',
    ]
)  # fmt: skip


@SETTINGS
@given(filter_texts, documents, st.sampled_from([USER_RESOURCE, GROUP_RESOURCE]))
def test_matches_answers_a_bool_or_a_scim_error_on_any_document(
    text: str, doc: dict[str, Any], rtype: Any
) -> None:
    parsed = parse_filter(text)
    equality_key(parsed)
    try:
        validate_filter(parsed, rtype)
        result = matches(parsed, doc, rtype)
    except ScimError:
        return
    assert isinstance(result, bool)
