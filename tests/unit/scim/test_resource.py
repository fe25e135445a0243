"""canonicalize, validate_document, merge_for_replace and project (scim/resource.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scim.errors import InvalidSyntax, InvalidValue, Mutability
from scim.resource import canonicalize, merge_for_replace, project, validate_document
from scim.schema import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE,
    GROUP_SCHEMA,
    LMS_USER_SCHEMA,
    USER_RESOURCE,
    USER_SCHEMA,
)
from scim.values import MAX_MULTI_VALUES, MAX_STRING_LENGTH

ENT = ENTERPRISE_USER_SCHEMA


def user(**extra: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": "bjensen@example.com", **extra}


# -- canonicalize: names ---------------------------------------------------------
def test_entra_create_user_body_becomes_canonical() -> None:
    body = {
        "schemas": [USER_SCHEMA, ENT],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_00aa00aa",
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": "Test_User@testuser.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "f", "givenName": "g"},
        "roles": [],
    }
    assert canonicalize(USER_RESOURCE, body) == {
        "schemas": [USER_SCHEMA],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_00aa00aa",
        "name": {"formatted": "givenName familyName", "familyName": "f", "givenName": "g"},
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": "Test_User@testuser.com"}],
    }


def test_keys_match_case_insensitively_and_come_out_canonical() -> None:
    body = {
        "SCHEMAS": [USER_SCHEMA.upper()],
        "UserName": "bob",
        "DisplayName": "Bob",
        "NAME": {"GivenName": "Bob"},
        "emails": [{"Primary": True, "VALUE": "b@x", "Type": "work"}],
    }
    assert canonicalize(USER_RESOURCE, body) == {
        "schemas": [USER_SCHEMA],
        "userName": "bob",
        "name": {"givenName": "Bob"},
        "displayName": "Bob",
        "emails": [{"primary": True, "value": "b@x", "type": "work"}],
    }


def test_extension_object_matched_by_urn_case_insensitively() -> None:
    body = user(**{ENT.lower(): {"Department": "Eng", "Manager": {"Value": "m1"}}})
    doc = canonicalize(USER_RESOURCE, body)
    assert doc[ENT] == {"department": "Eng", "manager": {"value": "m1"}}
    assert doc["schemas"] == [USER_SCHEMA, ENT]


def test_urn_qualified_top_level_keys_accepted() -> None:
    body = user(**{f"{ENT}:department": "Eng", f"{USER_SCHEMA}:title": "Dev"})
    doc = canonicalize(USER_RESOURCE, body)
    assert doc[ENT] == {"department": "Eng"}
    assert doc["title"] == "Dev"


def test_extension_present_without_being_listed_in_schemas_is_kept() -> None:
    doc = canonicalize(USER_RESOURCE, user(**{LMS_USER_SCHEMA: {"team": "Blue"}}))
    assert doc["schemas"] == [USER_SCHEMA, LMS_USER_SCHEMA]


def test_extension_listed_but_empty_is_not_in_schemas() -> None:
    body = user(schemas=[USER_SCHEMA, ENT], **{ENT: {"department": None, "division": ""}})
    doc = canonicalize(USER_RESOURCE, body)
    assert ENT not in doc
    assert doc["schemas"] == [USER_SCHEMA]


def test_readonly_and_unknown_attributes_dropped() -> None:
    body = user(
        id="client-chosen",
        meta={"resourceType": "User", "created": "2020-01-01T00:00:00Z"},
        groups=[{"value": "g1"}],
        Department="at the top level: not a core attribute",
        favouriteColour="green",
        **{"urn:example:unknown:1.0:User": {"x": 1}},
    )
    assert canonicalize(USER_RESOURCE, body) == {
        "schemas": [USER_SCHEMA],
        "userName": "bjensen@example.com",
    }


def test_readonly_sub_attribute_dropped() -> None:
    doc = canonicalize(
        USER_RESOURCE, user(**{ENT: {"manager": {"value": "m", "displayName": "B"}}})
    )
    assert doc[ENT] == {"manager": {"value": "m"}}


def test_unknown_schema_urns_in_schemas_are_ignored() -> None:
    body = {
        "schemas": [
            GROUP_SCHEMA,
            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group",
        ],
        "externalId": "8aa1a0c0",
        "displayName": "displayName",
        "meta": {"resourceType": "Group"},
    }
    assert canonicalize(GROUP_RESOURCE, body) == {
        "schemas": [GROUP_SCHEMA],
        "externalId": "8aa1a0c0",
        "displayName": "displayName",
    }


def test_null_and_empty_values_are_not_stored() -> None:
    body = user(
        displayName=None,
        nickName="",
        emails=[],
        name={"givenName": None, "familyName": ""},
        addresses=[{"country": None, "formatted": "18522 Lisa Unions", "type": "other"}, {}],
        phoneNumbers=[{"type": "mobile", "primary": None, "value": "312-320-1707"}],
    )
    assert canonicalize(USER_RESOURCE, body) == {
        "schemas": [USER_SCHEMA],
        "userName": "bjensen@example.com",
        "phoneNumbers": [{"type": "mobile", "value": "312-320-1707"}],
        "addresses": [{"formatted": "18522 Lisa Unions", "type": "other"}],
    }


def test_values_kept_exactly() -> None:
    doc = canonicalize(USER_RESOURCE, user(displayName="  Bob  ", title="CEO "))
    assert doc["displayName"] == "  Bob  "
    assert doc["title"] == "CEO "


def test_same_attribute_twice_is_invalid_value() -> None:
    with pytest.raises(InvalidValue, match="userName"):
        canonicalize(USER_RESOURCE, user(USERNAME="other"))


def test_dotted_key_merges_with_its_complex_attribute() -> None:
    doc = canonicalize(USER_RESOURCE, user(**{"name.givenName": "B", "name": {"familyName": "J"}}))
    assert doc["name"] == {"givenName": "B", "familyName": "J"}
    with pytest.raises(InvalidValue, match="givenName"):
        canonicalize(USER_RESOURCE, user(**{"name": {"givenName": "B"}, "name.givenName": "C"}))


# -- canonicalize: schemas and required ----------------------------------------
@pytest.mark.parametrize(
    "schemas", [None, "urn:ietf:params:scim:schemas:core:2.0:User", [], [ENT], [USER_SCHEMA, 5]]
)
def test_schemas_missing_or_without_core_is_invalid_syntax(schemas: object) -> None:
    body: dict[str, Any] = {"userName": "bob"}
    if schemas is not None:
        body["schemas"] = schemas
    with pytest.raises(InvalidSyntax) as info:
        canonicalize(USER_RESOURCE, body)
    assert info.value.scim_type == "invalidSyntax"


@pytest.mark.parametrize("body", [None, [], "user", 5])
def test_body_not_an_object_is_invalid_syntax(body: object) -> None:
    with pytest.raises(InvalidSyntax):
        canonicalize(USER_RESOURCE, body)


@pytest.mark.parametrize("user_name", [None, "", "absent"])
def test_user_name_required(user_name: object) -> None:
    body: dict[str, Any] = {"schemas": [USER_SCHEMA], "displayName": "x"}
    if user_name != "absent":
        body["userName"] = user_name
    with pytest.raises(InvalidValue, match="userName"):
        canonicalize(USER_RESOURCE, body)


def test_group_display_name_required() -> None:
    with pytest.raises(InvalidValue, match="displayName"):
        canonicalize(GROUP_RESOURCE, {"schemas": [GROUP_SCHEMA], "externalId": "e"})


# -- canonicalize: types -------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"userName": 5}, "userName"),
        ({"userName": ["bob"]}, "userName"),
        ({"userName": True}, "userName"),
        ({"name": "Bob Jensen"}, "name"),
        ({"name": ["Bob"]}, "name"),
        ({"name": {"givenName": 5}}, "name.givenName"),
        ({"emails": "b@x"}, "emails"),
        ({"emails": ["b@x"]}, "emails[0]"),
        ({"emails": [{"value": 5}]}, "emails[0].value"),
        ({"active": "yes"}, "active"),
        ({"active": 1}, "active"),
        ({ENT: "Eng"}, ENT),
        ({ENT: {"department": 5}}, "department"),
        ({ENT: {"manager": 5}}, "manager"),
    ],
)
def test_wrong_json_type_is_invalid_value_naming_the_attribute(
    extra: dict[str, Any], named: str
) -> None:
    body = {**user(), **extra}
    with pytest.raises(InvalidValue) as info:
        canonicalize(USER_RESOURCE, body)
    assert named in info.value.detail
    assert info.value.scim_type == "invalidValue"


@pytest.mark.parametrize(("raw", "expected"), [("True", True), ("False", False), ("true", True)])
def test_boolean_strings_coerced(raw: str, expected: bool) -> None:
    doc = canonicalize(USER_RESOURCE, user(active=raw, emails=[{"value": "a", "primary": raw}]))
    assert doc["active"] is expected
    assert doc["emails"][0]["primary"] is expected


def test_single_object_for_multi_valued_attribute_is_wrapped() -> None:
    doc = canonicalize(USER_RESOURCE, user(emails={"value": "b@x", "type": "work"}))
    assert doc["emails"] == [{"value": "b@x", "type": "work"}]


def test_identical_values_kept_once() -> None:
    doc = canonicalize(USER_RESOURCE, user(emails=[{"value": "a"}, {"value": "a"}, {"value": "b"}]))
    assert doc["emails"] == [{"value": "a"}, {"value": "b"}]


def test_two_primaries_is_invalid_value() -> None:
    emails = [{"value": "a", "primary": True}, {"value": "b", "primary": "True"}]
    with pytest.raises(InvalidValue, match="primary"):
        canonicalize(USER_RESOURCE, user(emails=emails))


def test_string_limit() -> None:
    canonicalize(USER_RESOURCE, user(displayName="x" * MAX_STRING_LENGTH))
    with pytest.raises(InvalidValue, match="displayName"):
        canonicalize(USER_RESOURCE, user(displayName="x" * (MAX_STRING_LENGTH + 1)))
    with pytest.raises(InvalidValue, match="emails"):
        canonicalize(USER_RESOURCE, user(emails=[{"value": "x" * (MAX_STRING_LENGTH + 1)}]))


def test_multi_valued_limit_except_group_members() -> None:
    many = [{"value": f"u{i}"} for i in range(MAX_MULTI_VALUES + 1)]
    canonicalize(USER_RESOURCE, user(emails=many[:-1]))
    with pytest.raises(InvalidValue, match="emails"):
        canonicalize(USER_RESOURCE, user(emails=many))
    group = {"schemas": [GROUP_SCHEMA], "displayName": "big", "members": many * 3}
    assert len(canonicalize(GROUP_RESOURCE, group)["members"]) == MAX_MULTI_VALUES + 1


# -- canonicalize: groups ------------------------------------------------------
def test_group_members_keep_only_value_and_type() -> None:
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "G",
        "members": [
            {"value": "u1", "display": "VP", "$ref": "https://x/Users/u1"},
            {"value": "u2", "type": "user"},
            {"value": "u1", "display": "again"},
        ],
    }
    assert canonicalize(GROUP_RESOURCE, body)["members"] == [
        {"value": "u1"},
        {"value": "u2", "type": "User"},
    ]


@pytest.mark.parametrize(
    "members", [[{"display": "no id"}], [{"value": "g", "type": "Group"}], [{"value": 5}]]
)
def test_group_members_need_a_user_id(members: object) -> None:
    with pytest.raises(InvalidValue):
        canonicalize(
            GROUP_RESOURCE, {"schemas": [GROUP_SCHEMA], "displayName": "G", "members": members}
        )


def test_group_created_with_empty_members_has_none() -> None:
    body = {"schemas": [GROUP_SCHEMA], "displayName": "G", "members": []}
    assert canonicalize(GROUP_RESOURCE, body) == {"schemas": [GROUP_SCHEMA], "displayName": "G"}


def test_for_replace_applies_the_same_rules() -> None:
    body = user(id="x", displayName="B")
    assert canonicalize(USER_RESOURCE, body, for_replace=True) == canonicalize(USER_RESOURCE, body)


# -- validate_document ---------------------------------------------------------
def test_validate_document_keeps_readonly_values() -> None:
    doc = {
        "schemas": [USER_SCHEMA],
        "id": "u1",
        "meta": {"resourceType": "User", "version": 'W/"1"'},
        "userName": "bob",
        "groups": [{"value": "g1", "display": "G"}],
        ENT: {"manager": {"value": "m", "displayName": "Boss"}},
    }
    assert validate_document(USER_RESOURCE, doc) == {**doc, "schemas": [USER_SCHEMA, ENT]}


def test_validate_document_refuses_what_post_would() -> None:
    with pytest.raises(InvalidValue):
        validate_document(USER_RESOURCE, {"schemas": [USER_SCHEMA], "id": "u1"})
    with pytest.raises(InvalidValue):
        validate_document(USER_RESOURCE, {"id": "u1", "userName": 5})


# -- merge_for_replace ---------------------------------------------------------
OLD = {
    "schemas": [USER_SCHEMA, ENT],
    "id": "u1",
    "externalId": "e1",
    "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z"},
    "userName": "bob",
    "displayName": "Bob",
    "password": "s3cret",
    "groups": [{"value": "g1"}],
    ENT: {"department": "Eng"},
}


def test_put_replaces_writable_attributes_and_keeps_readonly() -> None:
    old = copy.deepcopy(OLD)
    new = canonicalize(USER_RESOURCE, user(userName="bob2", title="Dev", id="other", meta={}))
    merged = merge_for_replace(USER_RESOURCE, old, new)
    assert merged == {
        "schemas": [USER_SCHEMA],
        "id": "u1",
        "userName": "bob2",
        "title": "Dev",
        "password": "s3cret",
        "groups": [{"value": "g1"}],
        "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z"},
    }
    assert old == OLD


def test_put_with_password_replaces_it() -> None:
    new = canonicalize(USER_RESOURCE, user(password="n3w"))
    assert merge_for_replace(USER_RESOURCE, OLD, new)["password"] == "n3w"


def test_put_immutable_attribute() -> None:
    immutable = GROUP_RESOURCE.schema.attribute("members")
    assert immutable is not None  # members' sub-attributes are immutable, not members itself
    old = {"schemas": [GROUP_SCHEMA], "id": "g", "displayName": "G", "members": [{"value": "u1"}]}
    new = canonicalize(GROUP_RESOURCE, {"schemas": [GROUP_SCHEMA], "displayName": "H"})
    assert merge_for_replace(GROUP_RESOURCE, old, new) == {
        "schemas": [GROUP_SCHEMA],
        "id": "g",
        "displayName": "H",
    }


def test_put_changing_an_immutable_attribute_is_mutability() -> None:
    from scim.schema import Attribute, ResourceType, Schema

    schema = Schema(
        id="urn:example:core:1.0:Thing",
        name="Thing",
        description="",
        attributes=(
            Attribute(name="code", mutability="immutable"),
            Attribute(name="label", required=True),
        ),
    )
    rtype = ResourceType(id="Thing", endpoint="/Things", description="", schema=schema)
    old = {"schemas": [schema.id], "id": "t", "code": "A", "label": "x"}
    same = canonicalize(rtype, {"schemas": [schema.id], "code": "A", "label": "y"})
    assert merge_for_replace(rtype, old, same)["label"] == "y"
    omitted = canonicalize(rtype, {"schemas": [schema.id], "label": "y"})
    assert merge_for_replace(rtype, old, omitted)["code"] == "A"
    changed = canonicalize(rtype, {"schemas": [schema.id], "code": "B", "label": "y"})
    with pytest.raises(Mutability):
        merge_for_replace(rtype, old, changed)
    first = {"schemas": [schema.id], "id": "t", "label": "x"}
    assert merge_for_replace(rtype, first, changed)["code"] == "B"


# -- project -------------------------------------------------------------------
STORED = {
    "schemas": [USER_SCHEMA, ENT],
    "id": "u1",
    "externalId": "e1",
    "userName": "bob",
    "name": {"givenName": "Bob", "familyName": "Jensen"},
    "password": "s3cret",
    "emails": [{"value": "b@x", "type": "work", "primary": True}, {"value": "h@x", "type": "home"}],
    "meta": {"resourceType": "User", "location": "https://x/Users/u1"},
    ENT: {"department": "Eng", "manager": {"value": "m1"}},
}


def test_project_default_returns_all_but_password() -> None:
    out = project(STORED, USER_RESOURCE, None, None)
    assert "password" not in out
    assert out == {k: v for k, v in STORED.items() if k != "password"}


def test_project_attributes_keeps_id_and_schemas() -> None:
    out = project(STORED, USER_RESOURCE, ["userName"], None)
    assert out == {"schemas": [USER_SCHEMA], "id": "u1", "userName": "bob"}


def test_project_attributes_dotted_and_urn_qualified() -> None:
    names = ["NAME.givenName", "emails.value", "emails.type", f"{ENT}:department", "nope", "x.y"]
    out = project(STORED, USER_RESOURCE, names, None)
    assert out == {
        "schemas": [USER_SCHEMA, ENT],
        "id": "u1",
        "name": {"givenName": "Bob"},
        "emails": [{"value": "b@x", "type": "work"}, {"value": "h@x", "type": "home"}],
        ENT: {"department": "Eng"},
    }


def test_project_attributes_whole_extension_and_password_never() -> None:
    out = project(STORED, USER_RESOURCE, [ENT, "password"], None)
    assert out == {"schemas": [USER_SCHEMA, ENT], "id": "u1", ENT: STORED[ENT]}


def test_project_excluded_never_removes_id() -> None:
    out = project(STORED, USER_RESOURCE, None, ["id", "emails", "meta", "name.familyName", ENT])
    assert out == {
        "schemas": [USER_SCHEMA],
        "id": "u1",
        "externalId": "e1",
        "userName": "bob",
        "name": {"givenName": "Bob"},
    }


def test_project_excluded_members_as_entra_asks() -> None:
    group = {
        "schemas": [GROUP_SCHEMA],
        "id": "g1",
        "displayName": "G",
        "members": [{"value": "u1"}],
    }
    out = project(group, GROUP_RESOURCE, None, ["members"])
    assert out == {"schemas": [GROUP_SCHEMA], "id": "g1", "displayName": "G"}


def test_project_excluding_last_extension_attribute_drops_its_urn() -> None:
    out = project(STORED, USER_RESOURCE, None, [f"{ENT}:department", f"{ENT}:manager"])
    assert ENT not in out
    assert out["schemas"] == [USER_SCHEMA]


def test_project_both_lists_selects_then_excludes() -> None:
    out = project(STORED, USER_RESOURCE, ["userName", "emails"], ["emails.type"])
    assert out["emails"] == [{"value": "b@x", "primary": True}, {"value": "h@x"}]
    assert set(out) == {"schemas", "id", "userName", "emails"}


def test_project_does_not_modify_the_document() -> None:
    before = copy.deepcopy(STORED)
    project(STORED, USER_RESOURCE, ["emails.value"], ["name.givenName"])
    project(STORED, USER_RESOURCE, None, ["name.givenName"])
    assert before == STORED
