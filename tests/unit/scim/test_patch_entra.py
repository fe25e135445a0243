"""Every PATCH shape Microsoft documents Entra sending, with and without `aadOptscim062020`.

Sources: "Known issues and resolutions with SCIM 2.0 protocol compliance of the
Microsoft Entra user provisioning service" (the flag's before/after pairs),
"Tutorial: Develop and plan provisioning for a SCIM endpoint" (request
examples and the default attribute mapping), and Entra's SCIM validator.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scim.members import MemberChanges, split_member_ops
from scim.patch import apply_patch
from scim.resource import canonicalize
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
    "id": "6764549bef60420686bc",
    "externalId": "6c75de36-30fa-4d2d-a196-6bdcdb6b6539",
    "meta": {"resourceType": "User", "created": "2018-03-27T19:59:26.000Z"},
    "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
    "name": {
        "formatted": "givenName familyName",
        "familyName": "familyName",
        "givenName": "givenName",
    },
    "active": True,
    "emails": [{"value": "Test_User_11bb11bb@testuser.com", "type": "work", "primary": True}],
}
GROUP: dict[str, Any] = {
    "schemas": [GROUP_SCHEMA],
    "id": "a99962b9f99d4c4fac67",
    "displayName": "displayName",
    "members": [
        {"value": "u1091"},
        {"value": "7f4bc1a3-285e-48ae-8202-5accb43efb0e"},
        {"value": "keep"},
    ],
}


def patch_user(*ops: dict[str, Any], doc: dict[str, Any] = USER) -> dict[str, Any]:
    base = copy.deepcopy(doc)
    out = apply_patch(USER_RESOURCE, base, {"schemas": [PATCH_OP_SCHEMA], "Operations": list(ops)})
    assert base == doc
    return out


def patch_group(body: dict[str, Any]) -> dict[str, Any]:
    base = copy.deepcopy(GROUP)
    out = apply_patch(GROUP_RESOURCE, base, body)
    assert base == GROUP
    return out


# -- "Requests made to disable users" ----------------------------------------------
@pytest.mark.parametrize(
    "operation",
    [
        {"op": "Replace", "path": "active", "value": "False"},  # without the flag
        {"op": "replace", "path": "active", "value": False},  # with aadOptscim062020
    ],
    ids=["default", "aadOptscim062020"],
)
def test_disable_user(operation: dict[str, Any]) -> None:
    assert patch_user(operation)["active"] is False


def test_disable_user_tutorial_shape_operations_before_schemas() -> None:
    body = {
        "Operations": [{"op": "Replace", "path": "active", "value": False}],
        "schemas": [PATCH_OP_SCHEMA],
    }
    assert apply_patch(USER_RESOURCE, USER, body)["active"] is False


def test_enable_user_with_string_true() -> None:
    disabled = {**USER, "active": False}
    assert (
        patch_user({"op": "Replace", "path": "active", "value": "True"}, doc=disabled)["active"]
        is True
    )


# -- "Requests made to add a single-value string attribute" -----------------------
@pytest.mark.parametrize("op", ["Add", "add"], ids=["default", "aadOptscim062020"])
def test_add_single_value_string(op: str) -> None:
    assert patch_user({"op": op, "path": "nickName", "value": "Babs"})["nickName"] == "Babs"


# -- "Requests to replace multiple attributes" ------------------------------------
def test_replace_multiple_attributes_without_flag() -> None:
    out = patch_user(
        {"op": "Replace", "path": "displayName", "value": "Pvlo"},
        {
            "op": "Replace",
            "path": 'emails[type eq "work"].value',
            "value": "TestBcwqnm@test.microsoft.com",
        },
        {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
        {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
        {"op": "Replace", "path": "externalId", "value": "Eqpj"},
        {"op": "Replace", "path": f"{ENT}:employeeNumber", "value": "Eqpj"},
    )
    assert out["displayName"] == "Pvlo"
    assert out["emails"] == [
        {"value": "TestBcwqnm@test.microsoft.com", "type": "work", "primary": True}
    ]
    assert out["name"] == {
        "formatted": "givenName familyName",
        "familyName": "Pkqf",
        "givenName": "Gtfd",
    }
    assert out["externalId"] == "Eqpj"
    assert out[ENT] == {"employeeNumber": "Eqpj"}
    assert out["schemas"] == [USER_SCHEMA, ENT]


def test_replace_multiple_attributes_with_flag() -> None:
    out = patch_user(
        {
            "op": "replace",
            "path": 'emails[type eq "work"].value',
            "value": "TestMhvaes@test.microsoft.com",
        },
        {
            "op": "replace",
            "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                "name.familyName": "Unua",
                f"{ENT}:employeeNumber": "Aklq",
            },
        },
    )
    assert out["emails"][0]["value"] == "TestMhvaes@test.microsoft.com"
    assert out["displayName"] == "Bjfe"
    # a dotted key replaces only that sub-attribute: `formatted` survives
    assert out["name"] == {
        "formatted": "givenName familyName",
        "familyName": "Unua",
        "givenName": "Kkom",
    }
    assert out[ENT] == {"employeeNumber": "Aklq"}


# -- "Requests made to remove a group member" --------------------------------------
REMOVE_MEMBER_DEFAULT = {
    "schemas": [PATCH_OP_SCHEMA],
    "Operations": [{"op": "Remove", "path": "members", "value": [{"value": "u1091"}]}],
}
REMOVE_MEMBER_FLAG = {
    "schemas": [PATCH_OP_SCHEMA],
    "Operations": [
        {"op": "remove", "path": 'members[value eq "7f4bc1a3-285e-48ae-8202-5accb43efb0e"]'}
    ],
}


def test_remove_member_without_flag_removes_only_that_member() -> None:
    out = patch_group(REMOVE_MEMBER_DEFAULT)
    assert out["members"] == [{"value": "7f4bc1a3-285e-48ae-8202-5accb43efb0e"}, {"value": "keep"}]
    assert split_member_ops(REMOVE_MEMBER_DEFAULT) == (MemberChanges(remove=["u1091"]), [])


def test_remove_member_with_flag() -> None:
    out = patch_group(REMOVE_MEMBER_FLAG)
    assert out["members"] == [{"value": "u1091"}, {"value": "keep"}]
    assert split_member_ops(REMOVE_MEMBER_FLAG) == (
        MemberChanges(remove=["7f4bc1a3-285e-48ae-8202-5accb43efb0e"]),
        [],
    )


# -- Tutorial: user operations ----------------------------------------------------
def test_tutorial_update_user_multi_valued_properties() -> None:
    out = patch_user(
        {
            "op": "Replace",
            "path": 'emails[type eq "work"].value',
            "value": "updatedEmail@microsoft.com",
        },
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
    )
    assert out["emails"] == [
        {"value": "updatedEmail@microsoft.com", "type": "work", "primary": True}
    ]
    assert out["name"]["familyName"] == "updatedFamilyName"


def test_tutorial_update_user_single_valued_property() -> None:
    value = "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    assert patch_user({"op": "Replace", "path": "userName", "value": value})["userName"] == value


def test_work_email_created_when_user_has_none() -> None:
    doc = {k: v for k, v in USER.items() if k != "emails"}
    out = patch_user(
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "a@b"}, doc=doc
    )
    assert out["emails"] == [{"type": "work", "value": "a@b"}]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ('phoneNumbers[type eq "fax"].value', ("phoneNumbers", {"type": "fax", "value": "V"})),
        (
            'phoneNumbers[type eq "mobile"].value',
            ("phoneNumbers", {"type": "mobile", "value": "V"}),
        ),
        ('phoneNumbers[type eq "work"].value', ("phoneNumbers", {"type": "work", "value": "V"})),
        (
            'addresses[type eq "work"].postalCode',
            ("addresses", {"type": "work", "postalCode": "V"}),
        ),
        (
            'addresses[type eq "work"].streetAddress',
            ("addresses", {"type": "work", "streetAddress": "V"}),
        ),
        (
            'addresses[type eq "other"].Formatted',
            ("addresses", {"type": "other", "formatted": "V"}),
        ),
        ('emails[type eq "other"].Value', ("emails", {"type": "other", "value": "V"})),
    ],
)
def test_default_mapping_paths_create_their_element(path: str, expected: tuple[str, Any]) -> None:
    for op in ("Add", "Replace"):
        out = patch_user({"op": op, "path": path, "value": "V"})
        attr, element = expected
        assert element in out[attr]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("title", ("title", "V")),
        ("externalId", ("externalId", "V")),
        (f"{ENT}:department", (ENT, {"department": "V"})),
    ],
)
def test_default_mapping_simple_paths(path: str, expected: tuple[str, Any]) -> None:
    key, value = expected
    assert patch_user({"op": "Add", "path": path, "value": "V"})[key] == value


# -- manager shapes ----------------------------------------------------------------
MANAGER = f"{ENT}:manager"
WITH_MANAGER = {
    **USER,
    "schemas": [USER_SCHEMA, ENT],
    ENT: {"manager": {"value": "m0"}, "department": "D"},
}


@pytest.mark.parametrize("op", ["Add", "add", "Replace", "replace"])
@pytest.mark.parametrize(
    "value",
    ["26118915-6090-4610-87e4-49d8ca9f808d", {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}],
)
def test_manager_set_from_bare_id_or_object(op: str, value: object) -> None:
    for doc in (USER, WITH_MANAGER):
        out = patch_user({"op": op, "path": MANAGER, "value": value}, doc=doc)
        assert out[ENT]["manager"] == {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}


@pytest.mark.parametrize("value", ["", None, {"value": ""}])
def test_manager_cleared(value: object) -> None:
    out = patch_user({"op": "Replace", "path": MANAGER, "value": value}, doc=WITH_MANAGER)
    assert out[ENT] == {"department": "D"}


def test_manager_cleared_on_user_without_one_is_a_no_op() -> None:
    out = patch_user({"op": "Replace", "path": MANAGER, "value": ""})
    assert ENT not in out


def test_manager_removed() -> None:
    out = patch_user({"op": "Remove", "path": MANAGER}, doc=WITH_MANAGER)
    assert out[ENT] == {"department": "D"}


def test_manager_pathless_with_flag() -> None:
    out = patch_user({"op": "replace", "value": {MANAGER: "m9"}}, doc=WITH_MANAGER)
    assert out[ENT]["manager"] == {"value": "m9"}


# -- Tutorial: group operations -------------------------------------------------------
def test_tutorial_create_group_with_microsoft_schema() -> None:
    body = {
        "schemas": [
            GROUP_SCHEMA,
            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group",
        ],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "displayName",
        "meta": {"resourceType": "Group"},
    }
    assert canonicalize(GROUP_RESOURCE, body)["schemas"] == [GROUP_SCHEMA]


def test_tutorial_update_group_non_member_attributes() -> None:
    body = {
        "schemas": [PATCH_OP_SCHEMA],
        "Operations": [
            {
                "op": "Replace",
                "path": "displayName",
                "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName",
            }
        ],
    }
    assert (
        patch_group(body)["displayName"] == "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    )
    changes, other = split_member_ops(body)
    assert changes.empty
    assert other == [body["Operations"][0] | {"op": "replace"}]


def test_tutorial_add_members_with_null_ref() -> None:
    body = {
        "schemas": [PATCH_OP_SCHEMA],
        "Operations": [
            {
                "op": "Add",
                "path": "members",
                "value": [{"$ref": None, "value": "f648f8d5ea4e4cd38e9c"}],
            }
        ],
    }
    assert patch_group(body)["members"][-1] == {"value": "f648f8d5ea4e4cd38e9c"}
    assert split_member_ops(body) == (MemberChanges(add=["f648f8d5ea4e4cd38e9c"]), [])


def test_tutorial_remove_members_with_null_ref() -> None:
    body = {
        "schemas": [PATCH_OP_SCHEMA],
        "Operations": [
            {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": "u1091"}]}
        ],
    }
    assert {"value": "u1091"} not in patch_group(body)["members"]
    assert len(patch_group(body)["members"]) == 2
    assert split_member_ops(body) == (MemberChanges(remove=["u1091"]), [])


def test_validator_adds_member_as_bare_string() -> None:
    body = {
        "id": "a99962b9f99d4c4fac67",
        "Operations": [{"op": "add", "path": "members", "value": "string id 1"}],
        "schemas": [PATCH_OP_SCHEMA],
    }
    assert patch_group(body)["members"][-1] == {"value": "string id 1"}
    assert split_member_ops(body) == (MemberChanges(add=["string id 1"]), [])


def test_validator_user_posts() -> None:
    body = {
        "UserName": "UserName222",
        "Active": "True",
        "DisplayName": "lennay",
        "schemas": [ENT, USER_SCHEMA],
        "externalId": "e",
        "emails": [
            {"Primary": True, "type": "work", "value": "testing@bob2.com"},
            {"Primary": False, "type": "home", "value": "h@bob3.com"},
        ],
        ENT: {"Department": "bob", "Manager": {"Value": "SuzzyQ"}},
    }
    doc = canonicalize(USER_RESOURCE, body)
    assert doc["active"] is True
    assert doc[ENT] == {"department": "bob", "manager": {"value": "SuzzyQ"}}
    assert doc["emails"][1] == {"primary": False, "type": "home", "value": "h@bob3.com"}


def test_manager_cleared_by_object_with_empty_value_drops_stored_display_name() -> None:
    doc = {**WITH_MANAGER, ENT: {"manager": {"value": "m0", "displayName": "Boss"}}}
    out = patch_user({"op": "Replace", "path": MANAGER, "value": {"value": ""}}, doc=doc)
    assert ENT not in out
