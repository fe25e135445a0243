"""What OneLogin, JumpCloud and PingOne / PingFederate send where it differs
from RFC 7643/7644, each read as the RFC shape it stands for.

Every test names the published source of the shape it replays.
"""

from __future__ import annotations

from typing import Any

import pytest

from scim.errors import InvalidSyntax
from scim.members import split_member_ops
from scim.quirks import SCIM_1_CORE_SCHEMA, normalise_manager_value, normalise_schemas
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


def test_onelogin_core_schema_template_posts_scim_1_core_urn() -> None:
    """OneLogin "SCIM Provisioner with SAML (Core Schema)": the published JSON
    template writes `"schemas": ["urn:scim:schemas:core:1.0"]` to a SCIM 2.0
    base URL. Source: https://scim.dev/guide/applications/onelogin"""
    template = {
        "schemas": [SCIM_1_CORE_SCHEMA],
        "userName": "jdoe@example.com",
        "name": {"givenName": "Jane", "familyName": "Doe", "formatted": "Jane Doe"},
    }
    doc = canonicalize(USER_RESOURCE, template)
    assert doc["schemas"] == [USER_SCHEMA]
    assert doc["name"] == {"givenName": "Jane", "familyName": "Doe", "formatted": "Jane Doe"}
    group = canonicalize(GROUP_RESOURCE, {"schemas": [SCIM_1_CORE_SCHEMA], "displayName": "G"})
    assert group["schemas"] == [GROUP_SCHEMA]


@pytest.mark.parametrize(
    "schemas",
    [
        ["urn:scim:schemas:core:1.1"],  # not the 1.1 core URN: no guess
        ["urn:scim:schemas:extension:enterprise:1.0"],
        "urn:scim:schemas:core:1.0",  # not a list
    ],
)
def test_other_schema_lists_are_not_read_generously(schemas: object) -> None:
    assert normalise_schemas(USER_SCHEMA, schemas) == schemas
    with pytest.raises(InvalidSyntax):
        canonicalize(USER_RESOURCE, {"schemas": schemas, "userName": "x"})


def onelogin_enterprise_user() -> dict[str, Any]:
    """OneLogin "SCIM Provisioner with SAML (SCIM v2 Enterprise)" with the JSON
    template an integrator publishes, as OneLogin fills it in: `active` as the
    string of {$user.active}, `"id": null`, a `meta` object, empty strings for
    unset parameters and the manager's id under `managerId`.
    Source: https://doc.keepnetlabs.com/next-generation-product/platform/company/
    company-settings/scim-settings/onelogin-scim-integration"""
    return {
        ENT: {
            "department": "Tours",
            "manager": {"managerId": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "M B"},
        },
        "active": "true",
        "emails": [{"value": "jdoe@example.com", "type": "work", "primary": True}],
        "meta": {"resourceType": "User"},
        "name": {"familyName": "Doe", "givenName": "Jane", "formatted": "Jane Doe"},
        "userName": "jdoe@example.com",
        "title": "",
        "id": None,
        "schemas": [USER_SCHEMA],
    }


def test_onelogin_enterprise_template_reads_as_the_rfc_user() -> None:
    doc = canonicalize(USER_RESOURCE, onelogin_enterprise_user())
    assert doc["active"] is True
    assert "id" not in doc
    assert "meta" not in doc
    assert "title" not in doc  # an unset parameter is "" : unassigned (RFC 7643 §2.5)
    assert doc[ENT] == {
        "department": "Tours",
        "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"},
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"managerId": "m1"}, {"value": "m1"}),
        ({"managerId": ""}, None),  # OneLogin leaves an unset parameter empty: no manager
        ({"managerId": "m1", "value": "m2"}, {"managerId": "m1", "value": "m2"}),  # no guessing
        ({"MANAGERID": "m1", "displayName": "M"}, {"displayName": "M", "value": "m1"}),
    ],
)
def test_onelogin_manager_id_is_the_manager_value(raw: object, expected: object) -> None:
    assert normalise_manager_value(raw) == expected


def test_jumpcloud_removes_members_with_a_value_list_and_no_filter() -> None:
    """JumpCloud's group push removes members as
    `{"op": "remove", "path": "members", "value": [{"value": uid}]}` (the
    Azure AD style, without an RFC value filter); read literally it would
    empty the group. Source: https://app.uni-moni.com/en/kb/sso-setup-jumpcloud"""
    changes, other = split_member_ops(
        {
            "schemas": [PATCH_OP_SCHEMA],
            "Operations": [
                {"op": "remove", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]},
                {"op": "add", "path": "members", "value": [{"value": "u3"}]},
            ],
        }
    )
    assert other == []
    assert (changes.remove, changes.add, changes.remove_all) == (["u1", "u2"], ["u3"], False)
