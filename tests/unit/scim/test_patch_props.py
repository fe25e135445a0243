"""Properties of the PATCH engine and canonicalize on generated input (hypothesis).

- apply_patch never modifies its input and raises nothing but ScimError, on
  realistic operation lists and on arbitrary JSON;
- a successful result is already canonical (re-validating changes nothing);
- split_member_ops plus set operations gives the same members as apply_patch.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scim.errors import ScimError
from scim.members import split_member_ops
from scim.patch import apply_patch
from scim.resource import canonicalize, validate_document
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
    "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z"},
    "userName": "bob",
    "displayName": "Bob",
    "name": {"givenName": "Bob", "familyName": "Jensen"},
    "active": True,
    "emails": [{"value": "b@x", "type": "work", "primary": True}, {"value": "h@x", "type": "home"}],
    "groups": [{"value": "g1", "display": "G"}],
    ENT: {"department": "Eng", "manager": {"value": "m1"}},
}

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

PATHS = [
    "userName", "displayName", "nickName", "title", "active", "password", "externalId", "id",
    "meta", "meta.created", "groups", "name", "name.givenName", "name.familyName", "NAME.GIVENNAME",
    "emails", "emails.value", "emails.primary", 'emails[type eq "work"]',
    'emails[type eq "work"].value', 'emails[type eq "other"].value', 'emails[value co "@"].primary',
    'emails[type eq "home" or primary eq true]', 'phoneNumbers[type eq "mobile"].value',
    'addresses[type eq "work" and primary eq true].postalCode', "addresses", "roles",
    ENT, f"{ENT}:department", f"{ENT}:manager", f"{ENT}:manager.value",
    f"{ENT}:manager.displayName",
    "urn:ietf:params:scim:schemas:extension:lms:2.0:User:team", "shoeSize", "emails[", "9x",
    'emails[type eq "work"].nope', "name[givenName eq \"x\"]", "",
]  # fmt: skip
realistic_values = st.one_of(
    json_scalars,
    st.sampled_from(["True", "False", "", "work", "a@b"]),
    st.lists(
        st.fixed_dictionaries(
            {"value": st.text(max_size=5)},
            optional={
                "type": st.sampled_from(["work", "home", "other"]),
                "primary": st.booleans() | st.sampled_from(["True", "false"]),
                "display": st.text(max_size=3),
            },
        ),
        max_size=3,
    ),
    st.dictionaries(
        st.sampled_from(
            [
                "givenName",
                "familyName",
                "value",
                "type",
                "primary",
                "active",
                "displayName",
                "name.givenName",
                f"{ENT}:department",
                "emails",
                "id",
                "userName",
                "department",
            ]
        ),
        json_scalars | st.sampled_from(["True", "x"]),
        max_size=4,
    ),
)
operations = st.builds(
    lambda op, path, value, has_value: {
        "op": op,
        **({"path": path} if path is not None else {}),
        **({"value": value} if has_value else {}),
    },
    st.sampled_from(["add", "Add", "replace", "Replace", "remove", "Remove"]),
    st.none() | st.sampled_from(PATHS),
    realistic_values,
    st.booleans(),
)


text = st.text(min_size=1, max_size=6)
email = st.fixed_dictionaries(
    {"value": text}, optional={"type": st.sampled_from(["work", "home"]), "primary": st.booleans()}
)
TYPED = {  # path -> values of the right type (so most operations succeed)
    "displayName": text | st.just(""),
    "title": text | st.none(),
    "active": st.booleans() | st.sampled_from(["True", "False"]),
    "name.givenName": text,
    "name": st.fixed_dictionaries({}, optional={"givenName": text, "formatted": text | st.none()}),
    "emails": st.lists(email, max_size=2),
    'emails[type eq "work"].value': text,
    'emails[type eq "home"]': email,
    "emails.primary": st.booleans(),
    'phoneNumbers[type eq "mobile"].value': text,
    f"{ENT}:department": text | st.just(""),
    f"{ENT}:manager": text | st.just("") | st.builds(lambda v: {"value": v}, text),
    ENT: st.fixed_dictionaries({}, optional={"division": text, "costCenter": text}),
}
typed_operations = st.sampled_from(sorted(TYPED)).flatmap(
    lambda path: st.builds(
        lambda op, value: {"op": op, "path": path, "value": value},
        st.sampled_from(["add", "Replace"]),
        TYPED[path],
    )
) | st.sampled_from(sorted(TYPED)).map(lambda path: {"op": "remove", "path": path})


@settings(max_examples=300, deadline=None)
@given(st.lists(typed_operations, min_size=1, max_size=6))
def test_well_typed_operation_lists_give_canonical_results(ops: list[dict[str, Any]]) -> None:
    result = _run(USER_RESOURCE, USER, {"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
    if result is not None:
        assert validate_document(USER_RESOURCE, result) == result
        assert sum(1 for e in result.get("emails", []) if e.get("primary") is True) <= 1


def _run(rtype: Any, doc: dict[str, Any], request: object) -> dict[str, Any] | None:
    before = copy.deepcopy(doc)
    try:
        result = apply_patch(rtype, doc, request)
    except ScimError:
        result = None
    assert doc == before, "apply_patch modified its input"
    return result


@settings(max_examples=400, deadline=None)
@given(st.lists(operations, min_size=1, max_size=6))
def test_realistic_operation_lists(ops: list[dict[str, Any]]) -> None:
    result = _run(USER_RESOURCE, USER, {"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
    if result is not None:
        assert validate_document(USER_RESOURCE, result) == result
        assert result["id"] == USER["id"]
        assert result["meta"] == USER["meta"]
        assert result["groups"] == USER["groups"]
        assert result["userName"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(["op", "path", "value", "Op"]), json_values), max_size=4
    )
)
def test_arbitrary_operation_objects(ops: list[dict[str, Any]]) -> None:
    _run(USER_RESOURCE, USER, {"schemas": [PATCH_OP_SCHEMA], "Operations": ops})


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"op": st.sampled_from(["add", "replace", "remove"]), "path": st.text(max_size=30)},
            optional={"value": json_values},
        ),
        min_size=1,
        max_size=3,
    )
)
def test_arbitrary_path_text(ops: list[dict[str, Any]]) -> None:
    _run(USER_RESOURCE, USER, {"schemas": [PATCH_OP_SCHEMA], "Operations": ops})


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_arbitrary_request_body(body: object) -> None:
    _run(USER_RESOURCE, USER, body)
    _run(GROUP_RESOURCE, {"schemas": [GROUP_SCHEMA], "id": "g", "displayName": "G"}, body)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from([*PATHS, "schemas", "emails", ENT]), json_values, max_size=6)
)
def test_canonicalize_raises_only_scim_errors_and_is_a_fixed_point(body: dict[str, Any]) -> None:
    body = {"schemas": [USER_SCHEMA], "userName": "bob", **body}
    try:
        doc = canonicalize(USER_RESOURCE, body)
    except ScimError:
        return
    assert validate_document(USER_RESOURCE, doc) == doc
    assert canonicalize(USER_RESOURCE, doc) == doc


# -- members: set operations agree with the generic engine --------------------------
member_ids = st.sampled_from(["a", "b", "c", "d"])
member_ops = st.one_of(
    st.builds(
        lambda op, ids: {"op": op, "path": "members", "value": [{"value": i} for i in ids]},
        st.sampled_from(["add", "replace"]),
        st.lists(member_ids, max_size=3),
    ),
    st.builds(lambda i: {"op": "remove", "path": f'members[value eq "{i}"]'}, member_ids),
    st.builds(
        lambda ids: {"op": "remove", "path": "members", "value": [{"value": i} for i in ids]},
        st.lists(member_ids, min_size=1, max_size=3),
    ),
    st.just({"op": "remove", "path": "members"}),
    st.builds(
        lambda ids: {"op": "add", "value": {"members": list(ids)}}, st.lists(member_ids, max_size=2)
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.sets(member_ids), st.lists(member_ops, min_size=1, max_size=6))
def test_split_member_ops_agrees_with_apply_patch(
    start: set[str], ops: list[dict[str, Any]]
) -> None:
    group: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": "g", "displayName": "G"}
    if start:
        group["members"] = [{"value": i} for i in sorted(start)]
    request = {"schemas": [PATCH_OP_SCHEMA], "Operations": ops}
    expected = {m["value"] for m in apply_patch(GROUP_RESOURCE, group, request).get("members", [])}
    changes, other = split_member_ops(request)
    assert other == []
    if changes.remove_all:
        got: set[str] = set()
    elif changes.replace_all is not None:
        got = set(changes.replace_all)
    else:
        got = (start - set(changes.remove)) | set(changes.add)
    assert got == expected
