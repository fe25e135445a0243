"""The helpers that keep the document logic fast: `copy_json`, the cached name and
path lookups, the schema lookup tables, and `finish`'s key order.

Each is checked against what it replaces (a linear search, `copy.deepcopy`, an
uncached call), so the speed-ups change no answer.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from scim.errors import InvalidFilter, InvalidPath
from scim.filter import parse_patch_path
from scim.names import resolve_name, resolve_path, split_attr_name
from scim.patch import read_operations
from scim.resource import copy_json, finish
from scim.schema import (
    COMMON_ATTRIBUTES,
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE,
    LMS_USER_SCHEMA,
    PATCH_OP_SCHEMA,
    SCHEMAS,
    USER_RESOURCE,
    USER_SCHEMA,
    Attribute,
    ResourceType,
    Schema,
)
from scim.values import check_value, freeze

ENT = ENTERPRISE_USER_SCHEMA


# -- copy_json -------------------------------------------------------------------
DOC: dict[str, Any] = {
    "schemas": [USER_SCHEMA, ENT],
    "id": "u1",
    "userName": "bob",
    "name": {"givenName": "Bob", "familyName": "Jensen"},
    "active": True,
    "emails": [{"value": "b@x", "type": "work", "primary": True}, {"value": "h@x"}],
    "nested": [[1, 2.5, None], {"deep": {"deeper": ["x"]}}],
    ENT: {"department": "Eng", "manager": {"value": "m1"}},
}


def _containers(value: object) -> list[int]:
    """ids of every dict and list in `value`."""
    if isinstance(value, dict):
        return [id(value), *(i for v in value.values() for i in _containers(v))]
    if isinstance(value, list):
        return [id(value), *(i for v in value for i in _containers(v))]
    return []


def test_copy_json_equals_deepcopy_with_the_same_key_order() -> None:
    copied = copy_json(DOC)
    assert copied == copy.deepcopy(DOC)
    assert repr(copied) == repr(DOC)  # key order and scalar types (True, 2.5) kept


def test_copy_json_shares_no_dict_or_list_with_its_input() -> None:
    copied = copy_json(DOC)
    assert not set(_containers(copied)) & set(_containers(DOC))
    copied["emails"][0]["value"] = "changed"
    copied[ENT]["manager"]["value"] = "changed"
    copied["nested"][0].append(3)
    assert DOC["emails"][0]["value"] == "b@x"
    assert DOC[ENT]["manager"]["value"] == "m1"
    assert DOC["nested"][0] == [1, 2.5, None]


@pytest.mark.parametrize("scalar", ["text", 7, 2.5, True, None])
def test_copy_json_returns_scalars_as_they_are(scalar: object) -> None:
    assert copy_json(scalar) is scalar


def test_copy_json_shares_what_is_not_json() -> None:
    marker = ("a", "tuple")
    assert copy_json({"k": marker})["k"] is marker


# -- schema lookup tables ----------------------------------------------------------
def _linear(attributes: tuple[Attribute, ...], name: str) -> Attribute | None:
    """The search the tables replace: the first attribute of that name, any case."""
    return next((a for a in attributes if a.name.lower() == name.lower()), None)


ALL_ATTRIBUTES = [a for schema in SCHEMAS for a in schema.attributes] + list(COMMON_ATTRIBUTES)
SUB_NAMES = sorted({s.name for a in ALL_ATTRIBUTES for s in a.sub_attributes})


@pytest.mark.parametrize("attr", ALL_ATTRIBUTES, ids=lambda a: a.name)
def test_sub_finds_what_a_linear_search_finds(attr: Attribute) -> None:
    for name in [*SUB_NAMES, "VALUE", "GivenName", "nope", ""]:
        assert attr.sub(name) is _linear(attr.sub_attributes, name)
        assert attr.subs_by_name.get(name.lower()) is _linear(attr.sub_attributes, name)


def test_schema_attribute_finds_what_a_linear_search_finds() -> None:
    for schema in SCHEMAS:
        for name in ["userName", "USERNAME", "manager", "members", "team", "nope"]:
            assert schema.attribute(name) is _linear(schema.attributes, name)


def test_first_of_two_equal_names_wins_as_in_a_search() -> None:
    first, second = Attribute(name="code"), Attribute(name="CODE", type="integer")
    attr = Attribute(name="thing", type="complex", sub_attributes=(first, second))
    assert attr.sub("Code") is first


def test_resource_type_tables_answer_like_the_definitions() -> None:
    rtype = USER_RESOURCE
    assert rtype.schema_ids == (USER_SCHEMA, ENT, LMS_USER_SCHEMA)
    assert rtype.canonical_urn(USER_SCHEMA.upper()) == USER_SCHEMA
    assert rtype.canonical_urn(ENT.lower()) == ENT
    assert rtype.canonical_urn("urn:x:y") is None
    assert rtype.canonical_urn("userName") is None
    assert dict(rtype.urns_by_name) == {u.lower(): u for u in rtype.schema_ids}
    assert rtype.extension(ENT.upper()) is rtype.extensions[0]
    assert rtype.extension(USER_SCHEMA) is None  # the core schema is not an extension
    assert rtype.urn_prefixes[0] == (USER_SCHEMA.lower() + ":", USER_SCHEMA)


@pytest.mark.parametrize(
    ("name", "urn", "expected"),
    [
        ("username", None, (None, "userName")),
        ("ID", None, (None, "id")),
        ("meta", USER_SCHEMA.upper(), (None, "meta")),  # the core URN searches the core
        ("DEPARTMENT", ENT, (ENT, "department")),
        ("department", None, None),
        ("userName", ENT, None),
        ("team", "urn:x:y", None),
    ],
)
def test_lookup(name: str, urn: str | None, expected: tuple[str | None, str] | None) -> None:
    ref = USER_RESOURCE.lookup(name, urn)
    assert (None if ref is None else (ref.container, ref.attribute.name)) == expected


def test_lookup_tables_are_not_serialised() -> None:
    """/Schemas and /ResourceTypes show only the RFC 7643 fields, tables or not."""
    USER_RESOURCE.lookup("userName")
    attr = USER_RESOURCE.schema.attribute("name")
    assert attr is not None
    attr.sub("givenName")
    assert set(msgspec.to_builtins(attr)) == {
        "name", "type", "multiValued", "description", "required", "caseExact", "mutability",
        "returned", "uniqueness", "subAttributes", "canonicalValues", "referenceTypes",
    }  # fmt: skip
    assert set(msgspec.to_builtins(USER_RESOURCE)) == {
        "id", "endpoint", "description", "schema", "extensions",
    }  # fmt: skip


def test_a_resource_type_of_its_own_gets_its_own_tables() -> None:
    schema = Schema(
        id="urn:example:Thing", name="Thing", description="", attributes=(Attribute(name="code"),)
    )
    rtype = ResourceType(id="Thing", endpoint="/Things", description="", schema=schema)
    target = resolve_name(rtype, "CODE")
    assert target is not None
    assert target.attribute is schema.attributes[0]
    assert resolve_name(rtype, "userName") is None
    assert resolve_name(USER_RESOURCE, "code") is None


# -- cached name and path resolution ---------------------------------------------
NAMES = [
    "userName", "USERNAME", "name.givenName", "NAME.GIVENNAME", "emails.value", "name.nope",
    "title.x", ENT, ENT.upper(), f"{ENT}:department", f"{ENT.upper()}:manager.value",
    f"{USER_SCHEMA}:userName", USER_SCHEMA, f"{LMS_USER_SCHEMA}:team", "urn:x:y:z", ":", "",
    "members", f"{ENT}:", "a" * 250, f"{ENT}:{'d' * 250}", "name." + "g" * 250,
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_resolve_name_answers_like_its_parts_every_time(name: str) -> None:
    """Cached (short names) or not (long ones), the answer is the uncached one."""
    for rtype in (USER_RESOURCE, GROUP_RESOURCE):
        ext = rtype.extension(name)
        expected = (
            (ext.id, None, None)
            if ext is not None
            else resolve_path(rtype, split_attr_name(rtype, name))
        )
        assert resolve_name(rtype, name) == expected
        assert resolve_name(rtype, name) == expected


def test_split_attr_name_keeps_the_client_spelling_after_the_urn() -> None:
    path = split_attr_name(USER_RESOURCE, f"{ENT.upper()}:Manager.Value")
    assert (path.urn, path.attr, path.sub_attr) == (ENT, "Manager", "Value")
    assert split_attr_name(USER_RESOURCE, "name.givenName").urn is None


@pytest.mark.parametrize(
    "text",
    [
        "title",
        'emails[type eq "work"].value',
        f"{ENT}:manager",
        ENT,
        'members[value eq "' + "u" * 300 + '"]',  # too long to be cached
    ],
)
def test_parse_patch_path_gives_the_same_tree_every_time(text: str) -> None:
    first = parse_patch_path(text)
    assert parse_patch_path(text) == first
    assert parse_patch_path(f" {text} ") == first


@pytest.mark.parametrize(
    ("text", "error"), [("", InvalidPath), ("9x", InvalidPath), ("emails[type eq", InvalidFilter)]
)
def test_parse_patch_path_raises_every_time(text: str, error: type[Exception]) -> None:
    for _ in range(2):  # failures are not cached into successes
        with pytest.raises(error):
            parse_patch_path(text)


def test_read_operations_takes_the_first_spelling_of_a_name() -> None:
    request = {
        "SCHEMAS": [PATCH_OP_SCHEMA],
        "operations": [{"Op": "add", "op": "remove", "PATH": "title", "Value": "x", "value": "y"}],
        "Operations": [],
    }
    [op] = read_operations(request)
    assert (op.op, op.path, op.value) == ("add", "title", "x")


# -- values: duplicates and freeze -----------------------------------------------
EMAILS = USER_RESOURCE.schema.attribute("emails")
MEMBERS = GROUP_RESOURCE.schema.attribute("members")


def test_identical_values_are_kept_once_unless_dedupe_is_off() -> None:
    assert EMAILS is not None
    assert MEMBERS is not None
    twice = [{"value": "a@x", "type": "work"}, {"type": "work", "value": "a@x"}]
    assert check_value(EMAILS, twice, "emails") == [twice[0]]
    assert check_value(MEMBERS, twice, "members", dedupe=False) == twice
    assert check_value(EMAILS, twice[:1], "emails") == twice[:1]


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"value": "a", "type": "work"}, {"type": "work", "value": "a"}),
        ({"v": [1, {"x": "y"}]}, {"v": [1, {"x": "y"}]}),
        ("text", "text"),
    ],
)
def test_freeze_is_equal_for_equal_values(left: object, right: object) -> None:
    assert freeze(left) == freeze(right)
    assert hash(freeze(left)) == hash(freeze(right))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"primary": True}, {"primary": 1}),
        ({"n": 1}, {"n": 1.0}),
        ({"value": "a"}, {"value": "a", "type": "work"}),
        ({"v": [1, 2]}, {"v": [2, 1]}),
        ({"v": "1"}, {"v": 1}),
    ],
)
def test_freeze_tells_apart_values_of_another_type_or_content(left: object, right: object) -> None:
    assert freeze(left) != freeze(right)


# -- finish: key order -------------------------------------------------------------
def test_finish_orders_keys_and_lists_present_extensions() -> None:
    doc = {
        "zUnknown": 1,
        LMS_USER_SCHEMA: {"team": "t"},
        "meta": {"resourceType": "User"},
        "active": True,
        "userName": "bob",
        "schemas": ["whatever"],
        ENT: {"department": "", "division": None},  # empty once cleaned: dropped
        "id": "u1",
        "aUnknown": 2,
        "title": "",
        "externalId": "e1",
    }
    out = finish(USER_RESOURCE, doc)
    assert list(out) == [
        "schemas", "id", "externalId", "userName", "active", "meta", LMS_USER_SCHEMA,
        "zUnknown", "aUnknown",
    ]  # fmt: skip
    assert out["schemas"] == [USER_SCHEMA, LMS_USER_SCHEMA]
    assert out[LMS_USER_SCHEMA] is not doc[LMS_USER_SCHEMA]  # extension objects are rebuilt


def test_finish_puts_the_core_urn_key_between_meta_and_the_extensions() -> None:
    doc = {ENT: {"department": "d"}, USER_SCHEMA: {"x": 1}, "meta": {"a": 1}, "userName": "b"}
    assert list(finish(USER_RESOURCE, doc)) == ["schemas", "userName", "meta", USER_SCHEMA, ENT]
