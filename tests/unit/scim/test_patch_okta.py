"""The requests Okta's SCIM 2.0 reference shows it sending (users and groups).

Okta updates user profiles with PUT and uses PATCH only for `active` and the
password; groups are renamed with a path-less replace that echoes the `id`,
and members change through `members` paths.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scim.errors import Mutability
from scim.members import MemberChanges, split_member_ops
from scim.patch import apply_patch
from scim.resource import canonicalize, merge_for_replace, project
from scim.schema import GROUP_RESOURCE, GROUP_SCHEMA, PATCH_OP_SCHEMA, USER_RESOURCE, USER_SCHEMA

CREATE_USER = {
    "schemas": [USER_SCHEMA],
    "userName": "test.user@okta.local",
    "name": {"givenName": "Test", "familyName": "User"},
    "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
    "displayName": "Test User",
    "locale": "en-US",
    "externalId": "00ujl29u0le5T6Aj10h7",
    "groups": [],
    "password": "1mz050nq",
    "active": True,
}


def stored_user() -> dict[str, Any]:
    doc = canonicalize(USER_RESOURCE, CREATE_USER)
    return {**doc, "id": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "meta": {"resourceType": "User"}}


def okta_patch(rtype: Any, doc: dict[str, Any], *ops: dict[str, Any]) -> dict[str, Any]:
    before = copy.deepcopy(doc)
    out = apply_patch(rtype, doc, {"schemas": [PATCH_OP_SCHEMA], "Operations": list(ops)})
    assert doc == before
    return out


def test_create_user() -> None:
    doc = canonicalize(USER_RESOURCE, CREATE_USER)
    assert doc["password"] == "1mz050nq"
    assert "groups" not in doc
    assert "password" not in project(doc, USER_RESOURCE, None, None)


@pytest.mark.parametrize("active", [False, True])
def test_deactivate_and_reactivate_user(active: bool) -> None:
    out = okta_patch(USER_RESOURCE, stored_user(), {"op": "replace", "value": {"active": active}})
    assert out["active"] is active
    assert {k: v for k, v in out.items() if k != "active"} == {
        k: v for k, v in stored_user().items() if k != "active"
    }


def test_update_password() -> None:
    out = okta_patch(
        USER_RESOURCE, stored_user(), {"op": "replace", "value": {"password": "t1meMa$heen"}}
    )
    assert out["password"] == "t1meMa$heen"


def test_profile_update_by_put_keeps_id_and_password() -> None:
    old = stored_user()
    body = {
        "schemas": [USER_SCHEMA],
        "id": old["id"],
        "userName": "test.user@okta.local",
        "name": {"givenName": "Another", "familyName": "User"},
        "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Another User",
        "locale": "en-US",
        "groups": [],
        "active": True,
        "meta": {"resourceType": "User"},
    }
    new = merge_for_replace(USER_RESOURCE, old, canonicalize(USER_RESOURCE, body, for_replace=True))
    assert new["id"] == old["id"]
    assert new["name"] == {"givenName": "Another", "familyName": "User"}
    assert new["password"] == "1mz050nq"
    assert "externalId" not in new  # omitted readWrite attributes are cleared by PUT


# -- groups ------------------------------------------------------------------------
GROUP = {
    "schemas": [GROUP_SCHEMA],
    "id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
    "displayName": "Test SCIMv2",
    "members": [{"value": "b1c794f24f4c49f4b5d503a4cb2686ea"}],
}


def test_create_group() -> None:
    body = {"schemas": [GROUP_SCHEMA], "displayName": "Test SCIMv2", "members": []}
    assert canonicalize(GROUP_RESOURCE, body) == {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Test SCIMv2",
    }


def test_rename_group_with_echoed_id() -> None:
    op = {"op": "replace", "value": {"id": GROUP["id"], "displayName": "Test SCIMv2 renamed"}}
    out = okta_patch(GROUP_RESOURCE, GROUP, op)
    assert out["displayName"] == "Test SCIMv2 renamed"
    assert out["id"] == GROUP["id"]
    changes, other = split_member_ops({"schemas": [PATCH_OP_SCHEMA], "Operations": [op]})
    assert changes.empty
    assert other == [op]


def test_echoed_id_that_differs_is_ignored_not_applied() -> None:
    op = {"op": "replace", "value": {"id": "someone-else", "displayName": "X"}}
    assert okta_patch(GROUP_RESOURCE, GROUP, op)["id"] == GROUP["id"]


def test_add_members_with_display() -> None:
    op = {
        "op": "add",
        "path": "members",
        "value": [
            {"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"}
        ],
    }
    out = okta_patch(GROUP_RESOURCE, GROUP, op)
    assert out["members"] == [
        {"value": "b1c794f24f4c49f4b5d503a4cb2686ea"},
        {"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173"},
    ]
    body = {"schemas": [PATCH_OP_SCHEMA], "Operations": [op]}
    assert split_member_ops(body) == (
        MemberChanges(add=["23a35c27-23d3-4c03-b4c5-6443c09e7173"]),
        [],
    )


def test_remove_member_by_filter() -> None:
    op = {"op": "remove", "path": 'members[value eq "b1c794f24f4c49f4b5d503a4cb2686ea"]'}
    assert "members" not in okta_patch(GROUP_RESOURCE, GROUP, op)
    body = {"schemas": [PATCH_OP_SCHEMA], "Operations": [op]}
    assert split_member_ops(body) == (
        MemberChanges(remove=["b1c794f24f4c49f4b5d503a4cb2686ea"]),
        [],
    )


def test_replace_members_and_rename_in_one_request() -> None:
    ops = [
        {"op": "replace", "value": {"id": GROUP["id"], "displayName": "Renamed"}},
        {
            "op": "replace",
            "path": "members",
            "value": [{"value": "u9", "display": "nine@okta.local"}],
        },
    ]
    out = okta_patch(GROUP_RESOURCE, GROUP, *ops)
    assert out["displayName"] == "Renamed"
    assert out["members"] == [{"value": "u9"}]
    changes, other = split_member_ops({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
    assert changes == MemberChanges(replace_all=["u9"])
    assert other == [ops[0]]


def test_changing_a_member_display_is_refused() -> None:
    op = {
        "op": "replace",
        "path": 'members[value eq "b1c794f24f4c49f4b5d503a4cb2686ea"].display',
        "value": "x",
    }
    with pytest.raises(Mutability):
        okta_patch(GROUP_RESOURCE, GROUP, op)
