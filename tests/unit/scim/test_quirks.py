"""Each IdP quirk normaliser on its own (scim/quirks.py)."""

from __future__ import annotations

import pytest

from scim.ast import AttrPath
from scim.errors import InvalidSyntax, InvalidValue
from scim.quirks import (
    coerce_boolean,
    expand_value_keys,
    normalise_manager_value,
    normalise_member_values,
    normalise_members_remove,
    normalise_op_name,
    short,
)
from scim.schema import ENTERPRISE_USER_SCHEMA, USER_RESOURCE, USER_SCHEMA

ENT = ENTERPRISE_USER_SCHEMA


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("add", "add"), ("Add", "add"), ("REPLACE", "replace"), ("Replace", "replace"),
     ("Remove", "remove"), ("remove", "remove")],
)  # fmt: skip
def test_normalise_op_name_accepts_any_case(raw: str, expected: str) -> None:
    assert normalise_op_name(raw) == expected


@pytest.mark.parametrize("raw", ["", "delete", "move", " add", None, 1, ["add"], {"op": "add"}])
def test_normalise_op_name_rejects_other_ops_as_invalid_syntax(raw: object) -> None:
    with pytest.raises(InvalidSyntax) as info:
        normalise_op_name(raw)
    assert info.value.scim_type == "invalidSyntax"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("True", True), ("False", False), ("true", True), ("false", False), ("TRUE", True),
     ("fAlSe", False), (True, True), (False, False)],
)  # fmt: skip
def test_coerce_boolean_turns_true_false_words_into_booleans(raw: object, expected: bool) -> None:
    assert coerce_boolean(raw) is expected


@pytest.mark.parametrize("raw", ["yes", "1", "0", "", " true", 1, 0, None, "Truee"])
def test_coerce_boolean_leaves_everything_else_alone(raw: object) -> None:
    assert coerce_boolean(raw) == raw
    assert type(coerce_boolean(raw)) is type(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("26118915-6090-4610-87e4-49d8ca9f808d", {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}),
        ("", None),
        (None, None),
        ({"value": "m1"}, {"value": "m1"}),
        ({"Value": "m1", "displayName": "Boss"}, {"Value": "m1", "displayName": "Boss"}),
        ({"value": ""}, None),
        ({"value": None}, None),
        (5, 5),
        (["m1"], ["m1"]),
    ],
)
def test_normalise_manager_value(raw: object, expected: object) -> None:
    assert normalise_manager_value(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("string id 1", [{"value": "string id 1"}]),
        ("", None),
        ({"value": "u1"}, [{"value": "u1"}]),
        ([{"value": "u1", "$ref": None}], [{"value": "u1", "$ref": None}]),
        (["u1", {"value": "u2"}], [{"value": "u1"}, {"value": "u2"}]),
        ([], []),
        (None, None),
        (7, 7),
        ([7], [7]),
    ],
)
def test_normalise_member_values(raw: object, expected: object) -> None:
    assert normalise_member_values(raw) == expected


def test_normalise_members_remove_reads_entra_value_list() -> None:
    value = [{"$ref": None, "value": "f648f8d5ea4e4cd38e9c"}, {"Value": "u2"}]
    assert normalise_members_remove(value) == ["f648f8d5ea4e4cd38e9c", "u2"]


def test_normalise_members_remove_accepts_single_object_and_bare_id() -> None:
    assert normalise_members_remove({"value": "u1"}) == ["u1"]
    assert normalise_members_remove("u1") == ["u1"]


def test_normalise_members_remove_drops_repeats_and_empty_list_removes_nobody() -> None:
    assert normalise_members_remove([{"value": "a"}, {"value": "a"}]) == ["a"]
    assert normalise_members_remove([]) == []
    assert normalise_members_remove(None) == []


@pytest.mark.parametrize("raw", [[{"display": "x"}], [{"value": 5}], [{"value": ""}], 5, [None]])
def test_normalise_members_remove_rejects_values_without_an_id(raw: object) -> None:
    with pytest.raises(InvalidValue):
        normalise_members_remove(raw)


def test_expand_value_keys_splits_entra_dotted_and_urn_keys() -> None:
    value = {
        "displayName": "Bjfe",
        "name.givenName": "Kkom",
        "name.familyName": "Unua",
        f"{ENT}:employeeNumber": "Aklq",
    }
    assert expand_value_keys(USER_RESOURCE, value) == [
        (AttrPath(attr="displayName"), "Bjfe"),
        (AttrPath(attr="name", sub_attr="givenName"), "Kkom"),
        (AttrPath(attr="name", sub_attr="familyName"), "Unua"),
        (AttrPath(attr="employeeNumber", urn=ENT), "Aklq"),
    ]


def test_expand_value_keys_flattens_nested_extension_objects_case_insensitively() -> None:
    value = {ENT.upper(): {"department": "Eng", "manager.value": "m1"}}
    assert expand_value_keys(USER_RESOURCE, value) == [
        (AttrPath(attr="department", urn=ENT), "Eng"),
        (AttrPath(attr="manager", sub_attr="value", urn=ENT), "m1"),
    ]


def test_expand_value_keys_keeps_core_urn_and_non_object_extension_for_the_caller() -> None:
    value = {f"{USER_SCHEMA}:userName": "bob", ENT: None}
    assert expand_value_keys(USER_RESOURCE, value) == [
        (AttrPath(attr="userName", urn=USER_SCHEMA), "bob"),
        (AttrPath(attr="", urn=ENT), None),
    ]


def test_short_bounds_echoed_input() -> None:
    assert short("x" * 1000).endswith("...")
    assert len(short("x" * 1000)) == 80
    assert short("abc") == "'abc'"
