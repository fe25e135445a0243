"""Group membership changes as set operations, split out of a PATCH request.

A group can have tens of thousands of members, and Entra changes them one
PATCH at a time. `split_member_ops` turns every member operation of a request
into one `MemberChanges` the store applies to its member set, and returns the
other operations for `apply_patch`, so the member list is never loaded.

Shapes covered (RFC 7644 §3.5.2 and what Entra and Okta send): add members
with a value list; remove `members[value eq "id"]` (also `or`-ed ids); remove
members with a value list (Entra without `aadOptscim062020`); replace members
with a list; remove members without a value (all of them); a path-less
add/replace whose value object has a "members" key.
"""

from __future__ import annotations

from typing import Any

import msgspec

from scim.ast import AttrPath, Compare, Filter, Or, PatchPath
from scim.errors import InvalidFilter, InvalidValue, Mutability, NoTarget, ScimError
from scim.filter import parse_patch_path
from scim.patch import MISSING, PatchOperation, read_operations
from scim.quirks import normalise_members_remove
from scim.resource import attribute_value
from scim.schema import GROUP_RESOURCE, GROUP_SCHEMA


class MemberChanges(msgspec.Struct, frozen=True):
    """The net membership change of one request, in exactly one of three forms.

    Apply it as::

        if changes.remove_all: members = set()
        elif changes.replace_all is not None: members = set(changes.replace_all)
        else: members = (members - set(changes.remove)) | set(changes.add)

    `add` and `remove` are disjoint and only used in the third form. Run
    `apply_patch` on the other operations first: if it fails, change nothing.
    """

    add: list[str] = msgspec.field(default_factory=list)
    remove: list[str] = msgspec.field(default_factory=list)
    replace_all: list[str] | None = None
    remove_all: bool = False

    @property
    def empty(self) -> bool:
        """True when the request changes no membership."""
        return not (self.add or self.remove or self.remove_all or self.replace_all is not None)


class _Net:
    """Member operations folded in order into one net change."""

    def __init__(self) -> None:
        self.reset = False  # the stored members are discarded
        self.add: dict[str, None] = {}  # ordered set
        self.remove: dict[str, None] = {}

    def added(self, ids: list[str]) -> None:
        for member_id in ids:
            self.remove.pop(member_id, None)
            self.add[member_id] = None

    def removed(self, ids: list[str]) -> None:
        for member_id in ids:
            self.add.pop(member_id, None)
            if not self.reset:
                self.remove[member_id] = None

    def replaced(self, ids: list[str]) -> None:
        self.reset, self.add, self.remove = True, dict.fromkeys(ids), {}

    def result(self) -> MemberChanges:
        if self.reset and not self.add:
            return MemberChanges(remove_all=True)
        if self.reset:
            return MemberChanges(replace_all=list(self.add))
        return MemberChanges(add=list(self.add), remove=list(self.remove))


def member_ids(value: object) -> list[str]:
    """The user ids of a members value (bare strings, one object or a list; RFC 7643 §4.2)."""
    members_attr = GROUP_RESOURCE.schema.attribute("members")
    assert members_attr is not None
    members = attribute_value(GROUP_RESOURCE, None, members_attr, value)
    return [m["value"] for m in members] if isinstance(members, list) else []


def _is_members(path: AttrPath) -> bool:
    core = path.urn is None or path.urn.lower() == GROUP_SCHEMA.lower()
    return core and path.attr.lower() == "members"


def _filter_ids(flt: Filter) -> list[str]:
    """`value eq "a" or value eq "b"` as ["a", "b"]; other member filters are refused."""
    if isinstance(flt, Or):
        return _filter_ids(flt.left) + _filter_ids(flt.right)
    if (
        isinstance(flt, Compare)
        and flt.op == "eq"
        and flt.path.attr.lower() == "value"
        and flt.path.sub_attr is None
        and isinstance(flt.value, str)
        and flt.value
    ):
        return [flt.value]
    raise InvalidFilter('a members filter must be value eq "<id>" (or several joined by or)')


def split_member_ops(request: object) -> tuple[MemberChanges, list[dict[str, Any]]]:
    """(net member change, the other operations in order) of a Group PatchOp request.

    The other operations keep their order and are returned as plain dicts; wrap
    them as `{"schemas": [PATCH_OP_SCHEMA], "Operations": other}` for
    `apply_patch` when there are any. Errors name the operation like
    `apply_patch` does.
    """
    net = _Net()
    other: list[dict[str, Any]] = []
    for index, op in enumerate(read_operations(request), start=1):
        try:
            rest = _fold(net, op)
        except ScimError as exc:
            raise type(exc)(f"operation {index}: {exc.detail}", status=exc.status) from exc
        if rest is not None:
            other.append(rest)
    return net.result(), other


def _fold(net: _Net, op: PatchOperation) -> dict[str, Any] | None:
    """Fold one operation into `net`; return what is left of it for apply_patch."""
    if op.path is None:
        if op.op == "remove":
            raise NoTarget("remove needs a path (RFC 7644 §3.5.2.2)")
        if not isinstance(op.value, dict):
            raise InvalidValue(f"{op.op} without a path needs an object value")
        rest = {k: v for k, v in op.value.items() if not _is_members_key(k)}
        for key, value in op.value.items():
            if _is_members_key(key):
                _add_or_replace(net, op.op, member_ids(value))
        return {"op": op.op, "value": rest} if rest else None
    path: PatchPath = parse_patch_path(op.path)
    if not _is_members(path.attr):
        return op.as_dict()
    if path.attr.sub_attr is not None or path.sub_attr is not None:
        raise Mutability("member sub-attributes (value, type, display) cannot be changed")
    if path.value_filter is not None:
        ids = _filter_ids(path.value_filter)
        if op.op == "remove":
            net.removed(ids)
            return None
        given = [] if op.value is MISSING else member_ids(op.value)
        if any(member_id not in ids for member_id in given):
            raise Mutability("a member's value is immutable")
        net.added(ids)
        return None
    if op.op == "remove":
        if op.value is MISSING or op.value is None:
            net.replaced([])
        else:
            net.removed(normalise_members_remove(op.value))
        return None
    if op.value is MISSING:
        raise InvalidValue(f"{op.op} members needs a value")
    _add_or_replace(net, op.op, member_ids(op.value))
    return None


def _add_or_replace(net: _Net, op: str, ids: list[str]) -> None:
    if op == "replace":
        net.replaced(ids)
    else:
        net.added(ids)


def _is_members_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    lowered = key.lower()
    return lowered in ("members", f"{GROUP_SCHEMA.lower()}:members")
