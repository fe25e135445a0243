"""Evaluate a parsed SCIM filter against one canonical resource (RFC 7644 §3.4.2.2).

The resource is the canonical document: core attributes at the top level
under their canonical names, extension attributes nested under their
canonical schema URN, multi-valued attributes as lists. Attribute types and
`caseExact` come from `scim.schema`, so what `/Schemas` advertises is how
filters compare.

Decisions the RFC leaves open:
- An unknown but well-formed attribute name is an attribute no resource has:
  `eq`, `pr` and ordering are false, `ne` is true. Lenient, and Entra only
  filters on userName, externalId, id and displayName anyway. A schema URN
  that is not one of the resource type's schemas is an InvalidFilter.
- Multi-valued attributes match when any value matches, `ne` included
  ("any value differs"); an absent attribute is `ne` anything.
- `eq null` matches an absent attribute and `ne null` a present one.
- Booleans compare by their JSON spelling, case-insensitively, so
  `active eq "True"` matches; a number against a string attribute compares
  as its JSON text.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from scim.ast import (
    And,
    AttrPath,
    Compare,
    CompareOp,
    Filter,
    Literal_,
    Not,
    Or,
    Present,
    ValuePath,
)
from scim.errors import InvalidFilter
from scim.schema import Attribute, ResourceType

__all__ = ["matches", "matches_element", "validate_filter"]

# `schemas` is defined by RFC 7643 §3 for every resource but is not a schema attribute.
_SCHEMAS = Attribute(name="schemas", type="reference", multi_valued=True)

_Slot = tuple[Attribute | None, list[Any]]  # the leaf attribute (None: unknown) and its values
_Resolver = Callable[[AttrPath], _Slot]

_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne,
    "gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le,
}  # fmt: skip
_SUBSTRING: dict[str, Callable[[str, str], bool]] = {
    "co": lambda value, target: target in value,
    "sw": str.startswith,
    "ew": str.endswith,
}


def matches(f: Filter, resource: dict[str, Any], rtype: ResourceType) -> bool:
    """True when `resource` satisfies `f`. Raises InvalidFilter for
    combinations RFC 7644 §3.4.2.2 forbids (ordering on booleans, a complex
    attribute without a sub-attribute, an unknown schema URN); call
    `validate_filter` once first so an empty result set still reports them."""
    return _eval(f, lambda path: _resolve(path, resource, rtype))


def matches_element(f: Filter, element: dict[str, Any], parent: Attribute) -> bool:
    """True when one value of the complex attribute `parent` satisfies the
    `[...]` filter `f` (for PATCH paths such as `emails[type eq "work"]`)."""
    return _eval(f, lambda path: _resolve_sub(path, element, parent))


def validate_filter(f: Filter, rtype: ResourceType) -> None:
    """Raise InvalidFilter for what `matches` would refuse on some resource,
    checking every branch (evaluation short-circuits)."""
    _check(f, lambda path: _resolve(path, {}, rtype))


def _eval(f: Filter, resolve: _Resolver) -> bool:
    if isinstance(f, And):
        return _eval(f.left, resolve) and _eval(f.right, resolve)
    if isinstance(f, Or):
        return _eval(f.left, resolve) or _eval(f.right, resolve)
    if isinstance(f, Not):
        return not _eval(f.inner, resolve)
    if isinstance(f, Present):
        return any(_has_value(value) for value in resolve(f.path)[1])
    if isinstance(f, Compare):
        attr, values = resolve(f.path)
        return _compare(attr, values, f.op, f.value)
    parent, values = _value_path_parent(f, resolve)
    if parent is None:
        return False
    return any(
        matches_element(f.filter, element, parent)
        for element in values
        if isinstance(element, dict)
    )


def _check(f: Filter, resolve: _Resolver) -> None:
    if isinstance(f, And | Or):
        _check(f.left, resolve)
        _check(f.right, resolve)
    elif isinstance(f, Not):
        _check(f.inner, resolve)
    elif isinstance(f, Present):
        resolve(f.path)
    elif isinstance(f, Compare):
        attr = resolve(f.path)[0]
        if attr is not None:
            _predicate(_comparable(attr, [])[0], f.op, f.value)
    else:
        parent = _value_path_parent(f, resolve)[0]
        if parent is not None:
            _check(f.filter, lambda path: _resolve_sub(path, {}, parent))


# -- paths ----------------------------------------------------------------
def _resolve(path: AttrPath, resource: dict[str, Any], rtype: ResourceType) -> _Slot:
    """A top-level path: `[urn:]attr[.sub]`, the URN picking the extension."""
    if path.urn is not None and rtype.canonical_urn(path.urn) is None:
        raise InvalidFilter(f"{path.urn!r} is not a schema of {rtype.id} resources")
    ref = rtype.lookup(path.attr, path.urn)
    if ref is None:
        if path.urn is None and path.sub_attr is None and path.attr.lower() == "schemas":
            return _SCHEMAS, _flat(resource.get("schemas"))
        return None, []
    holder = resource if ref.container is None else resource.get(ref.container)
    raw = holder.get(ref.attribute.name) if isinstance(holder, dict) else None
    if path.sub_attr is None:
        return ref.attribute, _flat(raw)
    return _descend(ref.attribute, _flat(raw), path.sub_attr)


def _resolve_sub(path: AttrPath, element: dict[str, Any], parent: Attribute) -> _Slot:
    """A path inside `parent[...]`: a plain sub-attribute name (Figure 1 valFilter)."""
    if path.urn is not None or path.sub_attr is not None:
        raise InvalidFilter(f"Inside {parent.name}[...] name a sub-attribute of {parent.name}")
    sub = parent.sub(path.attr)
    if sub is None:
        return None, []
    return sub, _flat(element.get(sub.name))


def _descend(attr: Attribute, values: list[Any], sub_name: str) -> _Slot:
    """`attr.sub` over every value of `attr` (any-match for multi-valued, §3.4.2.2)."""
    sub = attr.sub(sub_name) if attr.type == "complex" else None
    if sub is None:
        return None, []
    found: list[Any] = []
    for element in values:
        if isinstance(element, dict):
            found += _flat(element.get(sub.name))
    return sub, found


def _value_path_parent(f: ValuePath, resolve: _Resolver) -> _Slot:
    attr, values = resolve(f.path)
    if attr is not None and attr.type != "complex":
        raise InvalidFilter(f"{attr.name}[...] needs a complex attribute; {attr.name} is not")
    return attr, values


def _flat(raw: Any) -> list[Any]:
    if raw is None:
        return []
    if isinstance(raw, list):
        return [value for value in raw if value is not None]
    return [raw]


def _has_value(value: Any) -> bool:
    """`pr` (RFC 7644 §3.4.2.2, RFC 7643 §2.5): null, "", [] and {} are unassigned."""
    if isinstance(value, dict):
        return any(_has_value(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_value(item) for item in value)
    return value is not None and value != ""


# -- comparison -----------------------------------------------------------
def _comparable(attr: Attribute, values: list[Any]) -> tuple[Attribute, list[Any]]:
    """A complex attribute compares through its `value` sub-attribute when it
    is multi-valued (`emails co "x"`, RFC 7644 §3.4.2.2 example); otherwise
    RFC 7644 §3.4.2.2 requires a sub-attribute."""
    if attr.type != "complex":
        return attr, values
    value_attr = attr.sub("value") if attr.multi_valued else None
    if value_attr is not None:
        return value_attr, _descend(attr, values, "value")[1]
    names = ", ".join(f"{attr.name}.{sub.name}" for sub in attr.sub_attributes[:3])
    raise InvalidFilter(f"{attr.name} is complex: compare one of its sub-attributes ({names})")


def _compare(attr: Attribute | None, values: list[Any], op: CompareOp, literal: Literal_) -> bool:
    if attr is None:  # unknown attribute: never present
        return op == "ne"
    attr, values = _comparable(attr, values)
    test = _predicate(attr, op, literal)
    if literal is None:
        return not values if op == "eq" else bool(values)
    if op == "ne" and not values:
        return True
    return any(test(value) for value in values)


def _predicate(attr: Attribute, op: CompareOp, literal: Literal_) -> Callable[[Any], bool]:
    """How one stored value is tested, by attribute type; raises for the
    combinations RFC 7644 §3.4.2.2 rejects."""
    ordering = op in ("gt", "ge", "lt", "le")
    if attr.type == "complex":  # a sub-attribute of a complex attribute; not in RFC 7643
        raise InvalidFilter(f"{attr.name} is complex and cannot be compared")
    if literal is None:
        if op not in ("eq", "ne"):
            raise InvalidFilter(f"null can only be compared with eq or ne, not {op}")
        return lambda value: True
    if attr.type == "boolean":
        if op not in ("eq", "ne"):
            raise InvalidFilter(f"{attr.name} is a boolean: only eq and ne apply, not {op}")
        target = _text(literal).casefold()
        return lambda value: _ORDERING[op](_text(value).casefold(), target)
    if attr.type == "binary" and ordering:
        raise InvalidFilter(f"{attr.name} is binary: {op} does not apply")
    if attr.type == "dateTime" and op in _ORDERING:
        moment = _datetime(literal)
        if moment is None:
            raise InvalidFilter(f"{attr.name} is a dateTime: compare with an RFC 3339 string")
        return _typed(_datetime, op, moment)
    if attr.type in ("integer", "decimal") and op in _ORDERING:
        number = _number(literal)
        if number is None:
            raise InvalidFilter(f"{attr.name} is a number: compare with a number")
        return _typed(_number, op, number)
    fold: Callable[[str], str] = (lambda s: s) if attr.case_exact else str.casefold
    text = fold(_text(literal))
    compare = _ORDERING[op] if op in _ORDERING else _SUBSTRING[op]
    return lambda value: compare(fold(_text(value)), text)


def _typed(convert: Callable[[Any], Any], op: CompareOp, target: Any) -> Callable[[Any], bool]:
    """Compare as dateTime or number; a stored value that does not convert never matches."""
    compare = _ORDERING[op]

    def test(value: Any) -> bool:
        parsed = convert(value)
        return parsed is not None and compare(parsed, target)

    return test


def _text(value: Any) -> str:
    """The JSON spelling of a scalar, so `true`, 1 and "1" compare as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _datetime(value: Any) -> datetime | None:
    """RFC 3339 (RFC 7643 §2.3.5); a timestamp without offset is taken as UTC."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None
