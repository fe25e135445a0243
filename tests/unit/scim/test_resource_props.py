"""canonicalize, validate_document, merge_for_replace and project on
arbitrary JSON (hypothesis), for Users and Groups.

test_patch_props.py feeds canonicalize dictionaries keyed by known paths;
here the body is any JSON value, with keys in any letter case, extension
URNs holding junk and sub-attributes of the wrong shape, and the output of
canonicalize is pushed through the other functions the API applies to a
stored document (PUT merge, projection with any `attributes` and
`excludedAttributes` text).
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scim.errors import ScimError
from scim.members import member_ids
from scim.resource import canonicalize, merge_for_replace, project, validate_document
from scim.schema import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE,
    GROUP_SCHEMA,
    LMS_USER_SCHEMA,
    USER_RESOURCE,
    USER_SCHEMA,
    ResourceType,
)

SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
NAMES = [
    "schemas", "SCHEMAS", "id", "meta", "externalId", "userName", "USERNAME", "name",
    "displayName", "title", "active", "Active", "password", "emails", "phoneNumbers", "addresses",
    "groups", "roles", "x509Certificates", "members", "givenName", "familyName", "value", "type",
    "primary", "display",
    "$ref", "department", "manager", "team", ENTERPRISE_USER_SCHEMA, LMS_USER_SCHEMA,
    ENTERPRISE_USER_SCHEMA.upper(), "urn:ietf:params:scim:schemas:extension:other:2.0:User",
]  # fmt: skip
keys = st.sampled_from(NAMES) | st.text(max_size=10)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["True", "false", "User", "Group", "work", "", " "])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=20,
)
text = st.text(min_size=1, max_size=8)
element = st.fixed_dictionaries(
    {"value": text | json_values},
    optional={
        "type": st.sampled_from(["work", "home", "User", "Group"]) | json_values,
        "primary": st.booleans() | st.sampled_from(["True", "no"]),
        "display": text,
    },
)
# Well-formed values for the attributes a client sends, to mix with junk.
REALISTIC: dict[str, st.SearchStrategy[Any]] = {
    "externalId": text,
    "displayName": text,
    "title": text | st.just(""),
    "active": st.booleans() | st.sampled_from(["True", "False"]),
    "password": text,
    "name": st.fixed_dictionaries({}, optional={"givenName": text, "familyName": text}),
    "emails": st.lists(element, max_size=3) | element,
    "phoneNumbers": st.lists(element, max_size=2),
    "addresses": st.lists(
        st.fixed_dictionaries({}, optional={"locality": text, "primary": st.booleans()}),
        max_size=2,
    ),
    "members": st.lists(element | text, max_size=3) | text,
    ENTERPRISE_USER_SCHEMA: st.fixed_dictionaries(
        {}, optional={"department": text, "manager": text | st.fixed_dictionaries({"value": text})}
    ),
    LMS_USER_SCHEMA: st.fixed_dictionaries({}, optional={"team": text}),
}
BASES = {
    USER_RESOURCE.id: {"schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA], "userName": "bob"},
    GROUP_RESOURCE.id: {"schemas": [GROUP_SCHEMA], "displayName": "Team"},
}
attribute_values = st.sampled_from(sorted(REALISTIC)).flatmap(
    lambda name: st.tuples(st.just(name), REALISTIC[name])
) | st.tuples(keys, json_values)


def bodies_for(rtype: ResourceType) -> st.SearchStrategy[object]:
    """Mostly a valid base with a few attributes, well-formed or junk; sometimes any JSON."""
    return st.one_of(
        json_values,
        st.lists(attribute_values, max_size=4).map(
            lambda pairs: {**BASES[rtype.id], **dict(pairs)}
        ),
    )


RTYPES = st.sampled_from([USER_RESOURCE, GROUP_RESOURCE])
typed_bodies = RTYPES.flatmap(lambda rtype: st.tuples(st.just(rtype), bodies_for(rtype)))
selections = st.none() | st.lists(
    st.sampled_from(
        [
            "userName", "name.givenName", "EMAILS.value", "emails", "password", "id", "meta",
            "members", "members.value", "displayName", ENTERPRISE_USER_SCHEMA,
            f"{ENTERPRISE_USER_SCHEMA}:manager.value", f"{ENTERPRISE_USER_SCHEMA}:nope", "groups",
            "", " ", ".", ":", "a.b.c",
        ]
    )
    | st.text(max_size=15),
    max_size=4,
)  # fmt: skip


def canonical_or_none(rtype: ResourceType, body: object) -> dict[str, Any] | None:
    before = copy.deepcopy(body)
    try:
        doc = canonicalize(rtype, body)
    except ScimError:
        doc = None
    assert body == before or body != body, "canonicalize modified its input"  # NaN != NaN
    return doc


@SETTINGS
@given(typed_bodies)
def test_canonicalize_answers_a_canonical_document_or_a_scim_error(
    case: tuple[ResourceType, object],
) -> None:
    rtype, body = case
    doc = canonical_or_none(rtype, body)
    if doc is None:
        return
    assert doc["schemas"][0] == rtype.schema.id
    assert "id" not in doc  # readOnly: never taken from a client
    assert "meta" not in doc
    assert validate_document(rtype, doc) == doc
    assert canonicalize(rtype, doc) == doc


@SETTINGS
@given(typed_bodies)
def test_validate_document_answers_a_document_or_a_scim_error(
    case: tuple[ResourceType, object],
) -> None:
    rtype, body = case
    try:
        doc = validate_document(rtype, body)
    except ScimError:
        return
    assert validate_document(rtype, doc) == doc


@SETTINGS
@given(RTYPES.flatmap(lambda r: st.tuples(st.just(r), bodies_for(r), bodies_for(r))))
def test_merge_for_replace_answers_a_document_or_mutability(
    case: tuple[ResourceType, object, object],
) -> None:
    rtype, old_body, new_body = case
    old, new = canonical_or_none(rtype, old_body), canonical_or_none(rtype, new_body)
    if old is None or new is None:
        return
    old = {**old, "id": "kept"}
    try:
        merged = merge_for_replace(rtype, old, new)
    except ScimError as exc:
        refusal = exc.scim_type
        assert refusal == "mutability"
        return
    assert merged["id"] == "kept"
    assert validate_document(rtype, merged) == merged


@SETTINGS
@given(typed_bodies, selections, selections)
def test_project_never_raises_never_shows_a_password_and_keeps_id(
    case: tuple[ResourceType, object], attributes: list[str] | None, excluded: list[str] | None
) -> None:
    rtype, body = case
    doc = canonical_or_none(rtype, body)
    if doc is None:
        return
    doc = {**doc, "id": "the-id", "meta": {"resourceType": rtype.id}}
    before = copy.deepcopy(doc)
    shown = project(doc, rtype, attributes, excluded)
    assert doc == before, "project modified its input"
    assert "password" not in shown
    assert shown["id"] == "the-id"
    assert shown["schemas"]


@SETTINGS
@given(json_values)
def test_member_ids_answers_ids_or_a_scim_error(value: object) -> None:
    try:
        ids = member_ids(value)
    except ScimError:
        return
    assert all(isinstance(i, str) and i for i in ids)
    assert len(ids) == len(set(ids))
