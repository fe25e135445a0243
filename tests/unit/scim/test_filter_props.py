"""Properties of the filter parser, printer and evaluator (hypothesis).

The parser reads hostile query strings: whatever the text, it answers with a
tree or a ScimError. The printer's text parses back to the very same tree.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scim.ast import And, AttrPath, Compare, Filter, Not, Or, PatchPath, Present, ValuePath
from scim.errors import ScimError
from scim.evaluate import matches, validate_filter
from scim.filter import (
    format_filter,
    format_patch_path,
    parse_filter,
    parse_patch_path,
)
from scim.schema import ENTERPRISE_USER_SCHEMA, USER_RESOURCE, USER_SCHEMA

OPS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
KEYWORDS = ["and", "or", "not", "pr", "eq", "true", "null", "$ref"]


def same(a: Filter, b: Filter) -> bool:
    """Equality that also tells True from 1 and 1 from 1.0."""
    return msgspec.json.encode(a) == msgspec.json.encode(b)


names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,6}", fullmatch=True) | st.sampled_from(KEYWORDS)
urns = st.sampled_from(
    [None, USER_SCHEMA, ENTERPRISE_USER_SCHEMA, "urn:example:x-1:2.0:Thing", "URN:a:b"]
)
values = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
paths = st.builds(AttrPath, attr=names, sub_attr=st.none() | names, urn=urns)
plain_paths = st.builds(AttrPath, attr=names)


def trees(leaf_paths: st.SearchStrategy[AttrPath]) -> st.SearchStrategy[Filter]:
    leaves: st.SearchStrategy[Filter] = st.builds(
        Compare, path=leaf_paths, op=st.sampled_from(OPS), value=values
    ) | st.builds(Present, path=leaf_paths)
    return st.recursive(
        leaves,
        lambda kids: st.builds(And, kids, kids) | st.builds(Or, kids, kids) | st.builds(Not, kids),
        max_leaves=10,
    )


value_paths = st.builds(
    ValuePath, path=st.builds(AttrPath, attr=names, urn=urns), filter=trees(plain_paths)
)
filters: st.SearchStrategy[Filter] = st.recursive(
    trees(paths) | value_paths,
    lambda kids: st.builds(And, kids, kids) | st.builds(Or, kids, kids) | st.builds(Not, kids),
    max_leaves=4,
)


@st.composite
def rendered(draw: st.DrawFn, f: Filter) -> str:
    """`f` as a client might write it: keyword case, spacing, redundant parentheses."""

    def kw(word: str) -> str:
        return draw(st.sampled_from([word, word.upper(), word.capitalize()]))

    def gap() -> str:
        return draw(st.sampled_from([" ", "  ", "\t", " \n "]))

    def render(node: Filter) -> str:
        if isinstance(node, And | Or):
            word = "and" if isinstance(node, And) else "or"
            text = f"({render(node.left)}){gap()}{kw(word)}{gap()}({render(node.right)})"
        elif isinstance(node, Not):
            text = f"{kw('not')}{draw(st.sampled_from(['', ' ']))}({render(node.inner)})"
        elif isinstance(node, ValuePath):
            text = f"{format_filter(Present(node.path))[:-3]}[{render(node.filter)}]"
        elif isinstance(node, Present):
            text = f"{format_filter(node)[:-3]}{gap()}{kw('pr')}"
        else:
            head, _, rest = format_filter(node).partition(f" {node.op} ")
            text = f"{head}{gap()}{kw(node.op)}{gap()}{rest}"
        return f"({text})" if draw(st.booleans()) else text

    return render(f)


@given(filters)
def test_format_then_parse_is_identity(f: Filter) -> None:
    assert same(parse_filter(format_filter(f)), f)


@given(filters.flatmap(lambda f: st.tuples(st.just(f), rendered(f))))
def test_parse_is_insensitive_to_case_spacing_and_parentheses(case: tuple[Filter, str]) -> None:
    f, text = case
    parsed = parse_filter(text)
    assert same(parsed, f)
    assert same(parse_filter(format_filter(parsed)), parsed)


GRAMMAR_ALPHABET = '()[]"\\ .:-$eqnotandrpswcglu0123456789EQNOT_xyzé\t'


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300) | st.text(alphabet=GRAMMAR_ALPHABET, max_size=300))
def test_arbitrary_text_raises_only_scim_errors(text: str) -> None:
    try:
        parsed = parse_filter(text)
    except ScimError:
        pass
    else:
        assert same(parse_filter(format_filter(parsed)), parsed)
    try:
        path = parse_patch_path(text)
    except ScimError:
        pass
    else:
        assert parse_patch_path(format_patch_path(path)) == path


@given(filters.map(format_filter), st.data())
def test_mutated_filters_raise_only_scim_errors(text: str, data: st.DataObject) -> None:
    """Near-misses of valid filters reach deeper into the parser than random text."""
    at = data.draw(st.integers(min_value=0, max_value=len(text)))
    cut = data.draw(st.integers(min_value=0, max_value=3))
    insert = data.draw(st.text(alphabet='()[]" .:\\', max_size=2))
    mutated = text[:at] + insert + text[at + cut :]
    try:
        parsed = parse_filter(mutated)
    except ScimError:
        return
    assert same(parse_filter(format_filter(parsed)), parsed)


@given(st.builds(AttrPath, attr=names, sub_attr=st.none() | names, urn=urns), st.data())
def test_patch_paths_print_back(attr: AttrPath, data: st.DataObject) -> None:
    value_filter = data.draw(st.none() | trees(plain_paths))
    sub_attr = data.draw(st.none() | names) if value_filter is not None else None
    if value_filter is not None:
        attr = AttrPath(attr.attr, urn=attr.urn)
    path = PatchPath(attr, value_filter, sub_attr)
    assert parse_patch_path(format_patch_path(path)) == path


# -- the evaluator never fails with anything but a ScimError -----------------
USER_DOC: dict[str, Any] = {
    "schemas": [USER_SCHEMA],
    "id": "1",
    "userName": "Ann",
    "active": False,
    "name": {"givenName": "Ann"},
    "emails": [{"value": "a@x.org", "type": "work", "primary": True}, {"value": None}],
    "meta": {"lastModified": "2024-01-01T00:00:00Z", "created": "garbage"},
    ENTERPRISE_USER_SCHEMA: {"department": "Ops", "manager": {"value": "m"}},
}
schema_names = st.sampled_from(
    [
        "userName",
        "id",
        "active",
        "name",
        "emails",
        "meta",
        "title",
        "department",
        "manager",
        "schemas",
        "unknown",
    ]
)
schema_subs = st.sampled_from(
    [None, "value", "givenName", "type", "primary", "lastModified", "created", "nope"]
)
schema_paths = st.builds(
    AttrPath,
    attr=schema_names,
    sub_attr=schema_subs,
    urn=st.sampled_from([None, USER_SCHEMA, ENTERPRISE_USER_SCHEMA, "urn:x:y"]),
)
schema_values = values | st.sampled_from(["2023-06-01T00:00:00+02:00", "true", "a@x.org"])
schema_filters = st.recursive(
    st.builds(Compare, path=schema_paths, op=st.sampled_from(OPS), value=schema_values)
    | st.builds(Present, path=schema_paths)
    | st.builds(
        ValuePath,
        path=st.builds(AttrPath, attr=schema_names),
        filter=st.builds(
            Compare,
            path=st.builds(AttrPath, attr=schema_subs.map(lambda s: s or "value")),
            op=st.sampled_from(OPS),
            value=schema_values,
        ),
    ),
    lambda kids: st.builds(And, kids, kids) | st.builds(Or, kids, kids) | st.builds(Not, kids),
    max_leaves=6,
)


@given(schema_filters)
def test_evaluator_raises_only_scim_errors_and_validate_is_enough(f: Filter) -> None:
    try:
        validate_filter(f, USER_RESOURCE)
    except ScimError:
        with contextlib.suppress(ScimError):
            matches(f, USER_DOC, USER_RESOURCE)
        return
    assert isinstance(matches(f, USER_DOC, USER_RESOURCE), bool)
    assert matches(Not(f), USER_DOC, USER_RESOURCE) is not matches(f, USER_DOC, USER_RESOURCE)
