"""PATCH paths from arbitrary text (hypothesis), beyond test_patch_props.py
(which draws paths from a fixed list or short random text):

- paths built from the path grammar's pieces (URNs, names, sub-attributes,
  value filters) and then mutated, so they reach every branch of the path
  parser and of the engine's path resolution;
- applied with add, replace and remove and values of any type, to a User
  and to a Group (whose member operations are split out first, as the API
  does): the answer is a document or a ScimError, never another exception,
  and a path the parser accepts prints back to the same path.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scim.errors import ScimError
from scim.filter import format_patch_path, parse_patch_path
from scim.members import split_member_ops
from scim.names import all_attributes
from scim.patch import apply_patch
from scim.resource import validate_document
from scim.schema import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE,
    GROUP_SCHEMA,
    LMS_USER_SCHEMA,
    PATCH_OP_SCHEMA,
    USER_RESOURCE,
    USER_SCHEMA,
)

SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
USER: dict[str, Any] = {
    "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
    "id": "u1",
    "userName": "bob",
    "name": {"givenName": "Bob"},
    "emails": [{"value": "b@x", "type": "work", "primary": True}],
    "active": True,
    ENTERPRISE_USER_SCHEMA: {"department": "Eng", "manager": {"value": "m"}},
}
GROUP: dict[str, Any] = {
    "schemas": [GROUP_SCHEMA],
    "id": "g1",
    "displayName": "Team",
    "members": [{"value": "u1"}, {"value": "u2"}],
}

urns = st.sampled_from(
    ["", f"{USER_SCHEMA}:", f"{ENTERPRISE_USER_SCHEMA}:", f"{LMS_USER_SCHEMA}:", f"{GROUP_SCHEMA}:",
     "urn:x:", "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:", "urn:"]
)  # fmt: skip
names = st.sampled_from(
    ["userName", "name", "emails", "members", "active", "title", "department", "manager",
     "displayName", "id", "meta", "groups", "team", "phoneNumbers", "x", "$ref", "9", ""]
)  # fmt: skip
subs = st.sampled_from(["", ".value", ".givenName", ".type", ".primary", ".display", ".", ".x.y"])
conditions = st.sampled_from(
    ['type eq "work"', 'value eq "u1"', "primary eq true", 'value co "@" and type pr',
     "not (primary eq true)", 'value eq "u1" or value eq "u2"', "type", 'type eq "', "", "]"]
)  # fmt: skip
grammar_paths = st.builds(
    lambda urn, name, sub, condition, after: (
        f"{urn}{name}{sub}" if condition is None else f"{urn}{name}[{condition}]{after}"
    ),
    urns,
    names,
    subs,
    st.none() | conditions,
    subs,
)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    text = draw(base)
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 2))
        insert = draw(st.text(alphabet='[]()." :\\$-_eqandor', max_size=2))
        text = text[:at] + insert + text[at + cut :]
    return text


def real_paths() -> list[str]:
    """Every path that names an attribute, in the shapes clients write them."""
    found = []
    for rtype in (USER_RESOURCE, GROUP_RESOURCE):
        for container, attr in all_attributes(rtype):
            head = attr.name if container is None else f"{container}:{attr.name}"
            found.append(head)
            for sub in attr.sub_attributes:
                found.append(f"{head}.{sub.name}")
                if attr.multi_valued:
                    found.append(f'{head}[type eq "work"].{sub.name}')
            if attr.multi_valued:
                found.append(f'{head}[value eq "u1"]')
    return sorted(set(found))


valid_paths = st.sampled_from(real_paths())
paths = st.one_of(
    valid_paths, mutated(valid_paths), grammar_paths, mutated(grammar_paths), st.text(max_size=40)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
values = json_values | st.sampled_from(
    ["x", "", "True", [{"value": "u3"}], {"value": "u3"}, {"givenName": "B"}, ["u4"], 7]
)


def fitting(path: str) -> object:
    """A value of the type the path most likely names, so that some
    operations get past the value checks to the writing code."""
    last = re.split(r"[.:\]]", path.lower())[-1] if path else ""
    if "active" in last or "primary" in last:
        return True
    if last.endswith("emails") or last.endswith("phonenumbers"):
        return [{"value": "n@x", "type": "home"}]
    if last.endswith("members"):
        return [{"value": "u3"}]
    if last == "name":
        return {"givenName": "B"}
    if last == "manager":
        return {"value": "m2"}
    return "text"


@st.composite
def operations(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(["add", "replace", "remove", "Replace"]))
    path = draw(paths)
    operation: dict[str, Any] = {"op": op, "path": path}
    if draw(st.booleans()):
        operation["value"] = fitting(path)
    elif draw(st.booleans()):
        operation["value"] = draw(values)
    return operation


@SETTINGS
@given(paths)
def test_a_path_parses_or_is_a_scim_error_and_prints_back(text: str) -> None:
    try:
        parsed = parse_patch_path(text)
    except ScimError:
        return
    assert parse_patch_path(format_patch_path(parsed)) == parsed


def _patched(rtype: Any, doc: dict[str, Any], request: dict[str, Any]) -> dict[str, Any] | None:
    before = copy.deepcopy(doc)
    try:
        result = apply_patch(rtype, doc, request)
    except ScimError:
        return None
    finally:
        assert doc == before, "apply_patch modified its input"
    assert validate_document(rtype, result) == result
    return result


@SETTINGS
@given(st.lists(operations(), min_size=1, max_size=4))
def test_user_patches_with_any_path_answer_a_document_or_a_scim_error(
    ops: list[dict[str, Any]],
) -> None:
    result = _patched(USER_RESOURCE, USER, {"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
    if result is not None:
        assert result["id"] == "u1"
        assert result["userName"]


@SETTINGS
@given(st.lists(operations(), min_size=1, max_size=4))
def test_group_patches_with_any_path_answer_a_document_or_a_scim_error(
    ops: list[dict[str, Any]],
) -> None:
    """As the API does it: member operations split out, the rest applied."""
    request = {"schemas": [PATCH_OP_SCHEMA], "Operations": ops}
    try:
        changes, other = split_member_ops(request)
    except ScimError:
        return
    assert all(isinstance(i, str) for i in [*changes.add, *changes.remove])
    if other:
        _patched(GROUP_RESOURCE, GROUP, {"schemas": [PATCH_OP_SCHEMA], "Operations": other})
