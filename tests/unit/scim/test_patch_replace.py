"""PATCH "replace" (RFC 7644 §3.5.2.3)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scim.errors import InvalidValue, Mutability, NoTarget
from scim.patch import apply_patch
from scim.schema import ENTERPRISE_USER_SCHEMA, PATCH_OP_SCHEMA, USER_RESOURCE, USER_SCHEMA

ENT = ENTERPRISE_USER_SCHEMA
USER: dict[str, Any] = {
    "schemas": [USER_SCHEMA, ENT],
    "id": "u1",
    "meta": {"resourceType": "User"},
    "userName": "bob",
    "displayName": "Bob",
    "name": {"givenName": "Bob", "familyName": "Jensen"},
    "active": True,
    "emails": [
        {"value": "b@x", "type": "work", "primary": True},
        {"value": "h@x", "type": "home"},
    ],
    ENT: {"department": "Eng", "manager": {"value": "m1", "displayName": "Boss"}},
}


def patch(*ops: dict[str, Any]) -> dict[str, Any]:
    base = copy.deepcopy(USER)
    result = apply_patch(
        USER_RESOURCE, base, {"schemas": [PATCH_OP_SCHEMA], "Operations": list(ops)}
    )
    assert base == USER, "apply_patch must not modify its input"
    return result


def test_replace_simple_attribute() -> None:
    assert patch({"op": "replace", "path": "displayName", "value": "B"})["displayName"] == "B"


def test_replace_unassigned_attribute_adds_it() -> None:
    assert patch({"op": "replace", "path": "title", "value": "Dev"})["title"] == "Dev"


def test_replace_sub_attribute() -> None:
    out = patch({"op": "replace", "path": "name.familyName", "value": "J"})
    assert out["name"] == {"givenName": "Bob", "familyName": "J"}


def test_replace_complex_leaves_unnamed_sub_attributes() -> None:
    out = patch({"op": "replace", "path": "name", "value": {"familyName": "J", "givenName": None}})
    assert out["name"] == {"familyName": "J"}
    out = patch({"op": "replace", "path": "name", "value": {"formatted": "Bob J"}})
    assert out["name"] == {"givenName": "Bob", "familyName": "Jensen", "formatted": "Bob J"}


def test_replace_keeps_stored_readonly_sub_attribute() -> None:
    out = patch({"op": "replace", "path": f"{ENT}:department", "value": "Ops"})
    assert out[ENT] == {"department": "Ops", "manager": {"value": "m1", "displayName": "Boss"}}


def test_replace_multi_valued_without_filter_replaces_the_list() -> None:
    out = patch({"op": "replace", "path": "emails", "value": [{"value": "n@x", "type": "work"}]})
    assert out["emails"] == [{"value": "n@x", "type": "work"}]


def test_replace_through_filter_replaces_sub_attribute_of_matches() -> None:
    out = patch({"op": "replace", "path": 'emails[type eq "work"].value', "value": "w@x"})
    assert out["emails"] == [
        {"value": "w@x", "type": "work", "primary": True},
        {"value": "h@x", "type": "home"},
    ]


def test_replace_through_filter_replaces_whole_matching_element() -> None:
    out = patch(
        {
            "op": "replace",
            "path": 'emails[type eq "home"]',
            "value": {"value": "o@x", "type": "other"},
        }
    )
    assert out["emails"][1] == {"value": "o@x", "type": "other"}


def test_replace_through_filter_matching_nothing_creates_the_element() -> None:
    out = patch({"op": "replace", "path": 'emails[type eq "other"].value', "value": "o@x"})
    assert out["emails"][-1] == {"type": "other", "value": "o@x"}


def test_replace_through_and_filter_matching_nothing_seeds_every_eq_term() -> None:
    path = 'addresses[type eq "work" and primary eq true].postalCode'
    out = patch({"op": "replace", "path": path, "value": "99265"})
    assert out["addresses"] == [{"type": "work", "primary": True, "postalCode": "99265"}]


def test_replace_whole_element_through_unmatched_filter() -> None:
    path = 'phoneNumbers[type eq "fax"]'
    out = patch({"op": "replace", "path": path, "value": {"value": "312-320-0500"}})
    assert out["phoneNumbers"] == [{"type": "fax", "value": "312-320-0500"}]


def test_replace_unmatched_filter_with_null_creates_nothing() -> None:
    out = patch({"op": "replace", "path": 'emails[type eq "other"].value', "value": None})
    assert out == patch({"op": "replace", "value": {}})


@pytest.mark.parametrize(
    "path",
    ['emails[type ne "work"].value', 'emails[not (type eq "work")].value', "emails[type pr].value"],
)
def test_replace_unmatchable_filter_that_cannot_seed_is_no_target(path: str) -> None:
    doc_path = path.replace("emails", "ims")
    with pytest.raises(NoTarget):
        patch({"op": "replace", "path": doc_path, "value": "x"})


def test_replace_primary_demotes_others() -> None:
    out = patch({"op": "replace", "path": 'emails[type eq "home"].primary', "value": True})
    assert [e.get("primary") for e in out["emails"]] == [False, True]


@pytest.mark.parametrize("value", [None, ""])
def test_replace_with_null_or_empty_removes_simple_attribute(value: object) -> None:
    out = patch({"op": "replace", "path": "displayName", "value": value})
    assert "displayName" not in out


def test_replace_multi_valued_with_empty_list_removes_it() -> None:
    assert "emails" not in patch({"op": "replace", "path": "emails", "value": []})


def test_replace_required_with_empty_is_mutability() -> None:
    with pytest.raises(Mutability):
        patch({"op": "replace", "path": "userName", "value": ""})


def test_pathless_replace() -> None:
    out = patch(
        {
            "op": "replace",
            "value": {"active": False, "displayName": "B", "emails": [{"value": "n@x"}]},
        }
    )
    assert out["active"] is False
    assert out["displayName"] == "B"
    assert out["emails"] == [{"value": "n@x"}]


def test_pathless_replace_of_extension_object_merges() -> None:
    out = patch({"op": "replace", "value": {ENT: {"division": "R&D"}}})
    assert out[ENT] == {
        "department": "Eng",
        "division": "R&D",
        "manager": {"value": "m1", "displayName": "Boss"},
    }


def test_replace_whole_extension_with_null_removes_it() -> None:
    out = patch({"op": "replace", "path": ENT, "value": None})
    assert ENT not in out
    assert out["schemas"] == [USER_SCHEMA]


@pytest.mark.parametrize(("path", "value"), [("active", "nope"), ("name", ["x"]), (ENT, "Eng")])
def test_replace_wrong_type_is_invalid_value(path: str, value: object) -> None:
    with pytest.raises(InvalidValue):
        patch({"op": "replace", "path": path, "value": value})


def test_replace_without_value_is_invalid_value() -> None:
    with pytest.raises(InvalidValue):
        patch({"op": "replace", "path": "displayName"})


def test_replace_id_is_mutability() -> None:
    with pytest.raises(Mutability):
        patch({"op": "replace", "path": "id", "value": "u2"})


def test_replace_filtered_values_with_null_removes_them() -> None:
    out = patch({"op": "replace", "path": 'emails[type eq "home"]', "value": None})
    assert out["emails"] == [{"value": "b@x", "type": "work", "primary": True}]
