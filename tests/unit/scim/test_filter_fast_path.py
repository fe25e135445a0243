"""The one-regex fast path of `parse_filter` (`attr eq "text"`) gives exactly
the tree, or the error, that the full parser gives, for every text near it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scim.ast import AttrPath, Compare
from scim.errors import ScimError
from scim.filter import parse_filter, parse_filter_fully

NAMES = st.sampled_from(
    ["userName", "externalId", "id", "displayName", "name", "emails", "x-y_z", "$ref", "a1"]
)
SUBS = st.one_of(st.just(""), NAMES.map(lambda n: f".{n}"))
SPACE = st.sampled_from(["", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\f"])
OPS = st.sampled_from(["eq", "EQ", "Eq", "eQ", "ne", "co", "eqq", "e q"])
VALUES = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        ["a@b.example", 'quo\\"te', "back\\\\slash", "\\u00e9", "\\ud800", "tab\there"]
    ),
)


def outcome(parse: object, text: str) -> object:
    try:
        return parse(text)  # type: ignore[operator]
    except ScimError as exc:
        return (type(exc), exc.scim_type, str(exc))


@settings(max_examples=600, deadline=None)
@given(
    lead=SPACE,
    name=NAMES,
    sub=SUBS,
    gap1=SPACE,
    op=OPS,
    gap2=SPACE,
    value=VALUES,
    quote=st.sampled_from(['"', "", "'"]),
    tail=st.sampled_from(["", " ", " and id pr", ")", '"']),
)
def test_the_fast_path_agrees_with_the_full_parser(
    lead: str,
    name: str,
    sub: str,
    gap1: str,
    op: str,
    gap2: str,
    value: str,
    quote: str,
    tail: str,
) -> None:
    text = f"{lead}{name}{sub}{gap1}{op}{gap2}{quote}{value}{quote}{tail}"
    assert outcome(parse_filter, text) == outcome(parse_filter_fully, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "bjensen@example.com"', AttrPath("userName")),
        ('name.familyName EQ "O Malley" ', AttrPath("name", "familyName")),
    ],
)
def test_the_common_lookups_take_the_fast_path(text: str, expected: AttrPath) -> None:
    value = text.split('"')[1]
    assert parse_filter(text) == Compare(expected, "eq", value)
    assert parse_filter_fully(text) == parse_filter(text)
