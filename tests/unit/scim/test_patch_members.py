"""split_member_ops: Group membership changes as set operations (scim/members.py)."""

from __future__ import annotations

from typing import Any

import pytest

from scim.errors import (
    InvalidFilter,
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    Mutability,
    NoTarget,
)
from scim.members import MemberChanges, split_member_ops
from scim.schema import GROUP_SCHEMA, PATCH_OP_SCHEMA


def split(*ops: dict[str, Any]) -> tuple[MemberChanges, list[dict[str, Any]]]:
    return split_member_ops({"schemas": [PATCH_OP_SCHEMA], "Operations": list(ops)})


def apply(changes: MemberChanges, members: set[str]) -> set[str]:
    if changes.remove_all:
        return set()
    if changes.replace_all is not None:
        return set(changes.replace_all)
    return (members - set(changes.remove)) | set(changes.add)


@pytest.mark.parametrize(
    "value",
    [
        [{"value": "a"}, {"value": "b", "display": "B"}],
        ["a", "b"],
        [{"value": "a", "$ref": None}, "b", "a"],
    ],
)
def test_add_members(value: object) -> None:
    assert split({"op": "Add", "path": "members", "value": value}) == (
        MemberChanges(add=["a", "b"]),
        [],
    )


def test_add_single_member_object() -> None:
    assert split({"op": "add", "path": "members", "value": {"value": "a"}})[0] == MemberChanges(
        add=["a"]
    )


def test_remove_by_filter_and_or_filter() -> None:
    changes, _ = split({"op": "remove", "path": 'members[value eq "a" or value eq "b"]'})
    assert changes == MemberChanges(remove=["a", "b"])


def test_remove_with_value_list() -> None:
    changes, _ = split(
        {"op": "Remove", "path": "members", "value": [{"value": "a"}, {"value": "b"}]}
    )
    assert changes == MemberChanges(remove=["a", "b"])


def test_remove_without_value_removes_all() -> None:
    assert split({"op": "remove", "path": "members"})[0] == MemberChanges(remove_all=True)
    assert split({"op": "remove", "path": "members", "value": None})[0].remove_all


def test_replace_members() -> None:
    changes, _ = split({"op": "replace", "path": "members", "value": [{"value": "a"}]})
    assert changes == MemberChanges(replace_all=["a"])
    assert split({"op": "replace", "path": "members", "value": []})[0] == MemberChanges(
        remove_all=True
    )


def test_urn_qualified_members_path() -> None:
    changes, _ = split({"op": "add", "path": f"{GROUP_SCHEMA}:members", "value": ["a"]})
    assert changes == MemberChanges(add=["a"])


def test_pathless_add_and_replace_with_members_key() -> None:
    changes, other = split(
        {"op": "add", "value": {"members": [{"value": "a"}], "displayName": "G"}}
    )
    assert changes == MemberChanges(add=["a"])
    assert other == [{"op": "add", "value": {"displayName": "G"}}]
    changes, other = split({"op": "replace", "value": {f"{GROUP_SCHEMA}:members": ["b"]}})
    assert changes == MemberChanges(replace_all=["b"])
    assert other == []


def test_other_operations_keep_their_order_and_normalised_op() -> None:
    changes, other = split(
        {"op": "Replace", "path": "displayName", "value": "A"},
        {"op": "Add", "path": "members", "value": ["a"]},
        {"op": "Replace", "path": "externalId", "value": "e"},
    )
    assert changes == MemberChanges(add=["a"])
    assert other == [
        {"op": "replace", "path": "displayName", "value": "A"},
        {"op": "replace", "path": "externalId", "value": "e"},
    ]


@pytest.mark.parametrize(
    ("ops", "start", "expected"),
    [
        ([("remove_all",), ("add", "a")], {"x"}, {"a"}),
        ([("add", "a"), ("remove", "a")], {"a", "x"}, {"x"}),
        ([("remove", "a"), ("add", "a")], {"x"}, {"a", "x"}),
        ([("replace", "a", "b"), ("remove", "a")], {"x"}, {"b"}),
        ([("replace", "a"), ("remove", "a")], {"x"}, set()),
        ([("add", "a"), ("remove_all",)], {"x"}, set()),
        ([("remove", "x"), ("replace", "y"), ("add", "z")], {"x"}, {"y", "z"}),
    ],
)
def test_sequences_fold_into_one_net_change(
    ops: list[tuple[str, ...]], start: set[str], expected: set[str]
) -> None:
    raw: list[dict[str, Any]] = []
    for kind, *ids in ops:
        if kind == "remove_all":
            raw.append({"op": "remove", "path": "members"})
        elif kind == "remove":
            raw.append({"op": "remove", "path": f'members[value eq "{ids[0]}"]'})
        else:
            raw.append({"op": kind, "path": "members", "value": [{"value": i} for i in ids]})
    changes, _ = split(*raw)
    assert apply(changes, start) == expected
    assert not (set(changes.add) & set(changes.remove))


def test_add_through_matching_filter_adds_the_id() -> None:
    assert split({"op": "add", "path": 'members[value eq "a"]'})[0] == MemberChanges(add=["a"])
    changes, _ = split({"op": "replace", "path": 'members[value eq "a"]', "value": {"value": "a"}})
    assert changes == MemberChanges(add=["a"])


def test_changing_a_member_id_is_mutability() -> None:
    with pytest.raises(Mutability, match="operation 1"):
        split({"op": "replace", "path": 'members[value eq "a"]', "value": {"value": "b"}})


@pytest.mark.parametrize("path", ["members.value", 'members[value eq "a"].display', "members.type"])
def test_member_sub_attribute_paths_are_mutability(path: str) -> None:
    with pytest.raises(Mutability):
        split({"op": "replace", "path": path, "value": "x"})


@pytest.mark.parametrize(
    "path",
    [
        'members[type eq "User"]',
        'members[value ne "a"]',
        'members[value eq "a" and type eq "User"]',
    ],
)
def test_other_member_filters_are_invalid_filter(path: str) -> None:
    with pytest.raises(InvalidFilter):
        split({"op": "remove", "path": path})


@pytest.mark.parametrize(
    ("op", "error"),
    [
        ({"op": "add", "path": "members"}, InvalidValue),
        ({"op": "add", "path": "members", "value": [{"display": "x"}]}, InvalidValue),
        (
            {"op": "add", "path": "members", "value": [{"value": "g", "type": "Group"}]},
            InvalidValue,
        ),
        ({"op": "remove", "path": "members", "value": [{"value": 5}]}, InvalidValue),
        ({"op": "remove"}, NoTarget),
        ({"op": "add", "value": "x"}, InvalidValue),
        ({"op": "add", "path": "members[", "value": "x"}, InvalidFilter),
        ({"op": "add", "path": "9", "value": "x"}, InvalidPath),
        ({"op": "move", "path": "members"}, InvalidSyntax),
    ],
)
def test_errors(op: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        split(op)


def test_envelope_is_checked() -> None:
    with pytest.raises(InvalidSyntax):
        split_member_ops({"Operations": [{"op": "add", "path": "members", "value": ["a"]}]})


def test_empty_property() -> None:
    assert MemberChanges().empty
    assert not MemberChanges(replace_all=[]).empty
    assert not MemberChanges(remove_all=True).empty
