"""Evaluate a parsed SCIM filter against one canonical resource (RFC 7644 §3.4.2.2).

The resource is the canonical document: core attributes at the top level
under their canonical names, extension attributes nested under their
canonical schema URN, multi-valued attributes as lists. Attribute types and
`caseExact` come from `scim.schema`, so what `/Schemas` advertises is how
filters compare.

`compile_filter` turns a filter into a test of one resource: attribute names
are resolved, literals prepared and every branch checked once, so a list
request validates and then tests each candidate without doing that work
again. `matches` and `validate_filter` are its one-off uses.

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
)
from scim.errors import InvalidFilter
from scim.schema import Attribute, ResourceType

__all__ = ["Predicate", "compile_filter", "matches", "matches_element", "validate_filter"]

# `schemas` is defined by RFC 7643 §3 for every resource but is not a schema attribute.
_SCHEMAS = Attribute(name="schemas", type="reference", multi_valued=True)

Predicate = Callable[[dict[str, Any]], bool]
_Values = Callable[[dict[str, Any]], list[Any]]  # the values at a path of one resource
_Slot = tuple[Attribute | None, _Values]  # the leaf attribute (None: unknown) and its values
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


def compile_filter(f: Filter, rtype: ResourceType) -> Predicate:
    """`f` as a test of one resource of `rtype`. Raises InvalidFilter at once,
    checking every branch, for what RFC 7644 §3.4.2.2 forbids (ordering on
    booleans, a complex attribute without a sub-attribute, an unknown schema
    URN), so an empty result still reports it. Names are resolved and
    literals prepared once: compile once, then test every candidate."""
    return _compile(f, lambda path: _top_level(path, rtype))


def matches(f: Filter, resource: dict[str, Any], rtype: ResourceType) -> bool:
    """True when `resource` satisfies `f` (InvalidFilter as `compile_filter`)."""
    return compile_filter(f, rtype)(resource)


def matches_element(f: Filter, element: dict[str, Any], parent: Attribute) -> bool:
    """True when one value of the complex attribute `parent` satisfies the
    `[...]` filter `f` (for PATCH paths such as `emails[type eq "work"]`)."""
    return _compile(f, lambda path: _inside(path, parent))(element)


def validate_filter(f: Filter, rtype: ResourceType) -> None:
    """Raise InvalidFilter unless `f` is a filter `rtype` resources can be tested by."""
    compile_filter(f, rtype)


def _compile(f: Filter, resolve: _Resolver) -> Predicate:
    if isinstance(f, Compare):
        attr, values = resolve(f.path)
        return _compare(attr, values, f.op, f.value)
    if isinstance(f, And):
        left, right = _compile(f.left, resolve), _compile(f.right, resolve)
        return lambda resource: left(resource) and right(resource)
    if isinstance(f, Or):
        left, right = _compile(f.left, resolve), _compile(f.right, resolve)
        return lambda resource: left(resource) or right(resource)
    if isinstance(f, Not):
        inner = _compile(f.inner, resolve)
        return lambda resource: not inner(resource)
    if isinstance(f, Present):
        present = resolve(f.path)[1]
        return lambda resource: any(_has_value(value) for value in present(resource))
    parent, elements = resolve(f.path)
    if parent is None:
        return _never
    if parent.type != "complex":
        raise InvalidFilter(f"{parent.name}[...] needs a complex attribute; {parent.name} is not")
    element_test = _compile(f.filter, lambda path: _inside(path, parent))
    return lambda resource: any(
        element_test(element) for element in elements(resource) if isinstance(element, dict)
    )


def _never(resource: dict[str, Any]) -> bool:
    return False


def _none(resource: dict[str, Any]) -> list[Any]:
    return []


# -- paths ----------------------------------------------------------------
def _top_level(path: AttrPath, rtype: ResourceType) -> _Slot:
    """A top-level path: `[urn:]attr[.sub]`, the URN picking the extension."""
    if path.urn is not None and rtype.canonical_urn(path.urn) is None:
        raise InvalidFilter(f"{path.urn!r} is not a schema of {rtype.id} resources")
    ref = rtype.lookup(path.attr, path.urn)
    if ref is None:
        if path.urn is None and path.sub_attr is None and path.attr.lower() == "schemas":
            return _SCHEMAS, lambda resource: _flat(resource.get("schemas"))
        return None, _none
    container, name = ref.container, ref.attribute.name
    if container is None:

        def raw(resource: dict[str, Any]) -> list[Any]:
            return _flat(resource.get(name))
    else:

        def raw(resource: dict[str, Any]) -> list[Any]:
            holder = resource.get(container)
            return _flat(holder.get(name)) if isinstance(holder, dict) else []

    if path.sub_attr is None:
        return ref.attribute, raw
    return _descend(ref.attribute, raw, path.sub_attr)


def _inside(path: AttrPath, parent: Attribute) -> _Slot:
    """A path inside `parent[...]`: a plain sub-attribute name (Figure 1 valFilter)."""
    if path.urn is not None or path.sub_attr is not None:
        raise InvalidFilter(f"Inside {parent.name}[...] name a sub-attribute of {parent.name}")
    sub = parent.sub(path.attr)
    if sub is None:
        return None, _none
    name = sub.name
    return sub, lambda element: _flat(element.get(name))


def _descend(attr: Attribute, values: _Values, sub_name: str) -> _Slot:
    """`attr.sub` over every value of `attr` (any-match for multi-valued, §3.4.2.2)."""
    sub = attr.sub(sub_name) if attr.type == "complex" else None
    if sub is None:
        return None, _none
    name = sub.name

    def found(resource: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for element in values(resource):
            if isinstance(element, dict):
                out += _flat(element.get(name))
        return out

    return sub, found


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
def _comparable(attr: Attribute, values: _Values) -> _Slot:
    """A complex attribute compares through its `value` sub-attribute when it
    is multi-valued (`emails co "x"`, RFC 7644 §3.4.2.2 example); otherwise
    RFC 7644 §3.4.2.2 requires a sub-attribute."""
    if attr.type != "complex":
        return attr, values
    if attr.multi_valued and attr.sub("value") is not None:
        return _descend(attr, values, "value")
    names = ", ".join(f"{attr.name}.{sub.name}" for sub in attr.sub_attributes[:3])
    raise InvalidFilter(f"{attr.name} is complex: compare one of its sub-attributes ({names})")


def _compare(
    attr: Attribute | None, values: _Values, op: CompareOp, literal: Literal_
) -> Predicate:
    if attr is None:  # unknown attribute: never present
        return _never if op != "ne" else lambda resource: True
    leaf, leaf_values = _comparable(attr, values)
    assert leaf is not None
    test = _predicate(leaf, op, literal)
    if literal is None:
        if op == "eq":
            return lambda resource: not leaf_values(resource)
        return lambda resource: bool(leaf_values(resource))
    if op == "ne":

        def differs(resource: dict[str, Any]) -> bool:
            found = leaf_values(resource)
            return not found or any(test(value) for value in found)

        return differs
    return lambda resource: any(test(value) for value in leaf_values(resource))


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
