"""PATCH "remove" (RFC 7644 §3.5.2.2)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scim.errors import InvalidFilter, InvalidPath, Mutability, NoTarget
from scim.patch import apply_patch
from scim.schema import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE,
    GROUP_SCHEMA,
    PATCH_OP_SCHEMA,
    USER_RESOURCE,
    USER_SCHEMA,
)

ENT = ENTERPRISE_USER_SCHEMA
USER: dict[str, Any] = {
    "schemas": [USER_SCHEMA, ENT],
    "id": "u1",
    "meta": {"resourceType": "User"},
    "userName": "bob",
    "title": "Dev",
    "name": {"givenName": "Bob", "familyName": "Jensen"},
    "emails": [
        {"value": "b@x", "type": "work", "primary": True},
        {"value": "h@x", "type": "home"},
    ],
    ENT: {"department": "Eng"},
}
GROUP: dict[str, Any] = {
    "schemas": [GROUP_SCHEMA],
    "id": "g1",
    "displayName": "G",
    "members": [{"value": "u1"}, {"value": "u2", "type": "User"}, {"value": "u3"}],
}


def patch(*ops: dict[str, Any], doc: dict[str, Any] = USER) -> dict[str, Any]:
    rtype = GROUP_RESOURCE if doc is GROUP else USER_RESOURCE
    base = copy.deepcopy(doc)
    result = apply_patch(rtype, base, {"schemas": [PATCH_OP_SCHEMA], "Operations": list(ops)})
    assert base == doc, "apply_patch must not modify its input"
    return result


def test_remove_needs_a_path() -> None:
    with pytest.raises(NoTarget):
        patch({"op": "remove"})
    with pytest.raises(NoTarget):
        patch({"op": "remove", "path": "", "value": "x"})


def test_remove_simple_attribute() -> None:
    assert "title" not in patch({"op": "remove", "path": "title"})


def test_remove_sub_attribute_and_emptied_complex() -> None:
    out = patch({"op": "remove", "path": "name.givenName"})
    assert out["name"] == {"familyName": "Jensen"}
    out = patch(
        {"op": "remove", "path": "name.givenName"}, {"op": "remove", "path": "name.familyName"}
    )
    assert "name" not in out


def test_remove_whole_multi_valued_attribute() -> None:
    assert "emails" not in patch({"op": "remove", "path": "emails"})


def test_remove_filtered_elements() -> None:
    out = patch({"op": "remove", "path": 'emails[type eq "work"]'})
    assert out["emails"] == [{"value": "h@x", "type": "home"}]
    assert "emails" not in patch({"op": "remove", "path": 'emails[value co "@x"]'})


def test_remove_sub_attribute_of_filtered_elements() -> None:
    out = patch({"op": "remove", "path": 'emails[type eq "work"].primary'})
    assert out["emails"][0] == {"value": "b@x", "type": "work"}


def test_remove_sub_attribute_of_every_element() -> None:
    out = patch({"op": "remove", "path": "emails.type"})
    assert out["emails"] == [{"value": "b@x", "primary": True}, {"value": "h@x"}]


def test_remove_extension_attribute_and_whole_extension() -> None:
    out = patch({"op": "remove", "path": f"{ENT}:department"})
    assert ENT not in out
    assert out["schemas"] == [USER_SCHEMA]
    assert ENT not in patch({"op": "remove", "path": ENT})


@pytest.mark.parametrize(
    "path",
    ["nickName", "name.middleName", 'emails[type eq "other"]', 'ims[type eq "aim"].value',
     f"{ENT}:manager", f"{ENT}:manager.value", "phoneNumbers.value"],
)  # fmt: skip
def test_removing_what_is_absent_is_not_an_error(path: str) -> None:
    assert patch({"op": "remove", "path": path}) == patch({"op": "add", "value": {}})


def test_remove_with_value_removes_only_matching_values() -> None:
    out = patch({"op": "remove", "path": "emails", "value": [{"value": "h@x"}]})
    assert out["emails"] == [{"value": "b@x", "type": "work", "primary": True}]


@pytest.mark.parametrize("path", ["userName", "id", "meta", "meta.lastModified", "groups"])
def test_remove_required_or_readonly_is_mutability(path: str) -> None:
    with pytest.raises(Mutability):
        patch({"op": "remove", "path": path})


@pytest.mark.parametrize("path", ["shoeSize", "name.shoe", "urn:example:x:1.0:User:a"])
def test_remove_unknown_attribute_is_invalid_path(path: str) -> None:
    with pytest.raises(InvalidPath):
        patch({"op": "remove", "path": path})


@pytest.mark.parametrize("path", ['emails[type eq "work"', "emails[type eq]", "emails[]"])
def test_remove_with_unparseable_filter_is_invalid_filter(path: str) -> None:
    with pytest.raises(InvalidFilter):
        patch({"op": "remove", "path": path})


@pytest.mark.parametrize("path", ["emails..value", 'emails[type eq "work"]x', "9lives", "a b"])
def test_remove_with_malformed_path_is_invalid_path(path: str) -> None:
    with pytest.raises(InvalidPath):
        patch({"op": "remove", "path": path})


# -- group members -------------------------------------------------------------
def test_remove_member_by_filter() -> None:
    out = patch({"op": "remove", "path": 'members[value eq "u2"]'}, doc=GROUP)
    assert out["members"] == [{"value": "u1"}, {"value": "u3"}]


def test_remove_member_filter_is_case_exact() -> None:
    out = patch({"op": "remove", "path": 'members[value eq "U2"]'}, doc=GROUP)
    assert out["members"] == GROUP["members"]


def test_remove_members_with_value_list() -> None:
    value = [{"value": "u1", "$ref": None}, {"value": "u3"}]
    out = patch({"op": "remove", "path": "members", "value": value}, doc=GROUP)
    assert out["members"] == [{"value": "u2", "type": "User"}]


def test_remove_all_members() -> None:
    out = patch({"op": "remove", "path": "members"}, doc=GROUP)
    assert out == {"schemas": [GROUP_SCHEMA], "id": "g1", "displayName": "G"}


def test_remove_members_with_empty_value_list_removes_nobody() -> None:
    out = patch({"op": "remove", "path": "members", "value": []}, doc=GROUP)
    assert out["members"] == GROUP["members"]


def test_remove_member_value_sub_attribute_is_mutability() -> None:
    with pytest.raises(Mutability):
        patch({"op": "remove", "path": 'members[value eq "u2"].type'}, doc=GROUP)


def test_remove_display_name_of_group_is_mutability() -> None:
    with pytest.raises(Mutability):
        patch({"op": "remove", "path": "displayName"}, doc=GROUP)
