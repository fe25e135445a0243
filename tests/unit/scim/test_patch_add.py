"""PATCH "add" (RFC 7644 §3.5.2.1), plus the request envelope checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scim.errors import InvalidPath, InvalidSyntax, InvalidValue, Mutability, NoTarget
from scim.patch import MAX_PATCH_OPERATIONS, apply_patch
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
    "schemas": [USER_SCHEMA],
    "id": "u1",
    "meta": {"resourceType": "User"},
    "userName": "bob",
    "name": {"familyName": "Jensen"},
    "emails": [{"value": "b@x", "type": "work", "primary": True}],
}


def patch(*ops: dict[str, Any], doc: dict[str, Any] | None = None) -> dict[str, Any]:
    base = copy.deepcopy(USER if doc is None else doc)
    before = copy.deepcopy(base)
    result = apply_patch(
        USER_RESOURCE, base, {"schemas": [PATCH_OP_SCHEMA], "Operations": list(ops)}
    )
    assert base == before, "apply_patch must not modify its input"
    return result


# -- envelope ------------------------------------------------------------------
@pytest.mark.parametrize(
    "request_body",
    [
        None,
        [],
        {"Operations": [{"op": "add", "path": "title", "value": "x"}]},
        {"schemas": [USER_SCHEMA], "Operations": [{"op": "add", "path": "title", "value": "x"}]},
        {"schemas": PATCH_OP_SCHEMA, "Operations": [{"op": "add", "path": "title", "value": "x"}]},
        {"schemas": [PATCH_OP_SCHEMA]},
        {"schemas": [PATCH_OP_SCHEMA], "Operations": []},
        {"schemas": [PATCH_OP_SCHEMA], "Operations": {"op": "add"}},
        {"schemas": [PATCH_OP_SCHEMA], "Operations": ["add"]},
        {"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "copy", "path": "title"}]},
        {"schemas": [PATCH_OP_SCHEMA], "Operations": [{"path": "title", "value": "x"}]},
    ],
)
def test_malformed_request_is_invalid_syntax(request_body: object) -> None:
    with pytest.raises(InvalidSyntax):
        apply_patch(USER_RESOURCE, USER, request_body)


def test_envelope_names_are_case_insensitive() -> None:
    body = {
        "SCHEMAS": [PATCH_OP_SCHEMA.upper()],
        "operations": [{"OP": "ADD", "PATH": "title", "VALUE": "x"}],
    }
    assert apply_patch(USER_RESOURCE, USER, body)["title"] == "x"


def test_too_many_operations_is_invalid_value() -> None:
    ops = [{"op": "add", "path": "title", "value": str(i)} for i in range(MAX_PATCH_OPERATIONS + 1)]
    with pytest.raises(InvalidValue, match=str(MAX_PATCH_OPERATIONS)):
        patch(*ops)
    assert patch(*ops[:MAX_PATCH_OPERATIONS])["title"] == str(MAX_PATCH_OPERATIONS - 1)


def test_error_names_the_operation() -> None:
    with pytest.raises(InvalidPath, match="operation 2"):
        patch(
            {"op": "add", "path": "title", "value": "x"}, {"op": "add", "path": "nope", "value": 1}
        )


@pytest.mark.parametrize("path", [5, ["title"], {"a": 1}])
def test_path_not_a_string_is_invalid_path(path: object) -> None:
    with pytest.raises(InvalidPath):
        patch({"op": "add", "path": path, "value": "x"})


# -- single-valued -------------------------------------------------------------
def test_add_simple_attribute() -> None:
    assert patch({"op": "add", "path": "nickName", "value": "Babs"})["nickName"] == "Babs"


def test_add_to_assigned_single_valued_attribute_replaces() -> None:
    assert patch({"op": "add", "path": "userName", "value": "alice"})["userName"] == "alice"


def test_add_sub_attribute() -> None:
    out = patch({"op": "add", "path": "name.givenName", "value": "Bob"})
    assert out["name"] == {"familyName": "Jensen", "givenName": "Bob"}


def test_add_complex_merges_sub_attributes() -> None:
    out = patch({"op": "add", "path": "name", "value": {"givenName": "Bob", "formatted": "B J"}})
    assert out["name"] == {"familyName": "Jensen", "givenName": "Bob", "formatted": "B J"}


def test_add_extension_attribute_by_urn_path() -> None:
    out = patch({"op": "add", "path": f"{ENT}:department", "value": "Eng"})
    assert out[ENT] == {"department": "Eng"}
    assert out["schemas"] == [USER_SCHEMA, ENT]


def test_add_whole_extension_by_urn_path() -> None:
    out = patch({"op": "add", "path": ENT, "value": {"department": "Eng", "Division": "R&D"}})
    assert out[ENT] == {"department": "Eng", "division": "R&D"}


def test_add_null_or_empty_unassigns() -> None:
    out = patch({"op": "add", "path": "name.familyName", "value": ""})
    assert "name" not in out


# -- multi-valued --------------------------------------------------------------
def test_add_appends_to_multi_valued() -> None:
    out = patch({"op": "add", "path": "emails", "value": [{"value": "h@x", "type": "home"}]})
    assert out["emails"] == [
        {"value": "b@x", "type": "work", "primary": True},
        {"value": "h@x", "type": "home"},
    ]


def test_add_does_not_duplicate_an_identical_value() -> None:
    value = [{"type": "work", "primary": True, "value": "b@x"}]
    assert patch({"op": "add", "path": "emails", "value": value})["emails"] == USER["emails"]


def test_add_single_object_to_multi_valued() -> None:
    out = patch({"op": "add", "path": "phoneNumbers", "value": {"value": "555", "type": "work"}})
    assert out["phoneNumbers"] == [{"value": "555", "type": "work"}]


def test_add_primary_value_demotes_the_old_primary() -> None:
    out = patch({"op": "add", "path": "emails", "value": [{"value": "n@x", "primary": True}]})
    assert out["emails"] == [
        {"value": "b@x", "type": "work", "primary": False},
        {"value": "n@x", "primary": True},
    ]


def test_add_two_primaries_at_once_is_invalid_value() -> None:
    value = [{"value": "n@x", "primary": True}, {"value": "m@x", "primary": True}]
    with pytest.raises(InvalidValue, match="primary"):
        patch({"op": "add", "path": "emails", "value": value})


def test_add_through_filter_to_existing_element() -> None:
    out = patch({"op": "add", "path": 'emails[type eq "work"].display', "value": "Work"})
    assert out["emails"] == [{"value": "b@x", "type": "work", "primary": True, "display": "Work"}]


def test_add_through_filter_that_matches_nothing_creates_the_element() -> None:
    out = patch({"op": "add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "555"})
    assert out["phoneNumbers"] == [{"type": "mobile", "value": "555"}]


def test_add_beyond_the_value_limit_is_invalid_value() -> None:
    values = [{"value": f"{i}@x"} for i in range(100)]
    with pytest.raises(InvalidValue, match="emails"):
        patch({"op": "add", "path": "emails", "value": values})


# -- path-less -----------------------------------------------------------------
def test_pathless_add_merges_attribute_by_attribute() -> None:
    value = {
        "emails": [{"value": "babs@jensen.org", "type": "home"}],
        "nickname": "Babs",
        "name": {"givenName": "Barbara"},
        ENT: {"department": "Eng"},
        f"{ENT}:costCenter": "42",
    }
    out = patch({"op": "add", "value": value})
    assert out["nickName"] == "Babs"
    assert out["name"] == {"familyName": "Jensen", "givenName": "Barbara"}
    assert out["emails"][-1] == {"value": "babs@jensen.org", "type": "home"}
    assert out[ENT] == {"department": "Eng", "costCenter": "42"}


def test_pathless_add_ignores_unknown_and_readonly_keys() -> None:
    out = patch({"op": "add", "value": {"id": "other", "meta": {}, "groups": [], "shoeSize": 9}})
    assert out == patch({"op": "add", "value": {}})
    assert out["id"] == "u1"


@pytest.mark.parametrize("value", ["Babs", ["nickName"], 5, None])
def test_pathless_add_needs_an_object(value: object) -> None:
    with pytest.raises(InvalidValue):
        patch({"op": "add", "value": value})


def test_add_without_value_is_invalid_value() -> None:
    with pytest.raises(InvalidValue):
        patch({"op": "add", "path": "nickName"})


# -- errors --------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["shoeSize", "name.middle", "title.sub", f"{ENT}:shoeSize", "urn:example:x:1.0:User:a"]
)
def test_add_unknown_attribute_is_invalid_path(path: str) -> None:
    with pytest.raises(InvalidPath):
        patch({"op": "add", "path": path, "value": "x"})


@pytest.mark.parametrize(
    "path", ["id", "meta", "meta.created", "groups", f"{ENT}:manager.displayName"]
)
def test_add_readonly_is_mutability(path: str) -> None:
    with pytest.raises(Mutability):
        patch({"op": "add", "path": path, "value": "x"})


@pytest.mark.parametrize(
    ("path", "value"),
    [("userName", 5), ("active", "maybe"), ("name", "Bob"), ("emails", "b@x"), ("title", ["x"])],
)
def test_add_wrong_type_is_invalid_value(path: str, value: object) -> None:
    with pytest.raises(InvalidValue):
        patch({"op": "add", "path": path, "value": value})


def test_add_filter_on_single_valued_attribute_is_invalid_path() -> None:
    with pytest.raises(InvalidPath):
        patch({"op": "add", "path": 'name[givenName eq "x"]', "value": {}})


def test_add_through_an_or_filter_that_matches_nothing_is_no_target() -> None:
    path = 'phoneNumbers[type eq "work" or type eq "mobile"].value'
    with pytest.raises(NoTarget):
        patch({"op": "add", "path": path, "value": "555"})


# -- groups --------------------------------------------------------------------
GROUP: dict[str, Any] = {
    "schemas": [GROUP_SCHEMA],
    "id": "g1",
    "displayName": "G",
    "members": [{"value": "u1"}],
}


def group_patch(*ops: dict[str, Any]) -> dict[str, Any]:
    body = {"schemas": [PATCH_OP_SCHEMA], "Operations": list(ops)}
    return apply_patch(GROUP_RESOURCE, copy.deepcopy(GROUP), body)


def test_add_members() -> None:
    out = group_patch(
        {
            "op": "add",
            "path": "members",
            "value": [{"value": "u2", "display": "x"}, {"value": "u1"}],
        }
    )
    assert out["members"] == [{"value": "u1"}, {"value": "u2"}]


def test_add_many_members_has_no_limit() -> None:
    value = [{"value": f"u{i}"} for i in range(500)]
    assert len(group_patch({"op": "add", "path": "members", "value": value})["members"]) == 500


def test_changing_a_members_value_is_mutability() -> None:
    with pytest.raises(Mutability):
        group_patch({"op": "add", "path": 'members[value eq "u1"].value', "value": "u9"})
