"""Multi-valued attributes and sub-attributes for the PATCH engine (RFC 7644 §3.5.2).

Split from `scim.patch` (which documents the decisions) to keep modules small:
writing through value filters, creating the element an unmatched filter
names, keeping one primary value, and removing values.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from scim.ast import And, Compare, Filter
from scim.errors import InvalidValue, Mutability, NoTarget
from scim.evaluate import matches_element
from scim.names import Target
from scim.quirks import OpName, short
from scim.resource import attribute_value
from scim.schema import Attribute, ResourceType
from scim.values import check_simple, freeze, is_unassigned


class Where(NamedTuple):
    """A resolved PATCH target: schema target, optional value filter, name for errors."""

    target: Target
    value_filter: Filter | None
    label: str


def recheck(rtype: ResourceType, container: str | None, attr: Attribute, value: object) -> object:
    """Stored plus new values, checked whole (limits, one primary); stored readOnly parts kept."""
    return attribute_value(rtype, container, attr, value, drop_read_only=False)


def sub_attribute(attr: Attribute, name: str) -> Attribute:
    """A sub-attribute known to exist (names come from an already checked value)."""
    found = attr.sub(name)
    assert found is not None
    return found


def guard(attr: Attribute, current: object, new: object, label: str) -> None:
    """§3.5.2: immutable values may be added once, never changed; required ones never removed."""
    if attr.mutability == "immutable" and current is not None and new != current:
        raise Mutability(f"{label} is immutable")
    if attr.required and new is None and current is not None:
        raise Mutability(f"{label} is required and cannot be removed")


def set_sub(element: dict[str, Any], sub: Attribute, raw: object, label: str) -> None:
    """Set (or, for an unassigned value, remove) one sub-attribute, minding mutability."""
    new = check_simple(sub, raw, label)
    guard(sub, element.get(sub.name), new, label)
    if new is None:
        element.pop(sub.name, None)
    else:
        element[sub.name] = new


def store(holder: dict[str, Any], attr: Attribute, value: object) -> None:
    """Store a checked value; None removes the attribute (nothing unassigned is kept)."""
    if value is None:
        holder.pop(attr.name, None)
    else:
        holder[attr.name] = value


def write_multi(
    rtype: ResourceType, holder: dict[str, Any], op: OpName, where: Where, value: object
) -> None:
    """add/replace on a multi-valued attribute (§3.5.2.1, §3.5.2.3): the whole list,
    filtered values, or a sub-attribute of them; unmatched filters create a value."""
    container, attr, sub = where.target
    assert attr is not None
    current = holder.get(attr.name)
    elements: list[Any] = [dict(e) for e in current] if isinstance(current, list) else []
    touched: list[dict[str, Any]] = []
    if where.value_filter is None and sub is None:
        new = attribute_value(rtype, container, attr, value)
        new_items = new if isinstance(new, list) else []
        if op == "replace":
            elements = [dict(e) for e in new_items]
            touched = elements
        else:
            seen = {freeze(e) for e in elements}
            for item in new_items:
                if freeze(item) not in seen:
                    seen.add(freeze(item))
                    elements.append(dict(item))
                    touched.append(elements[-1])
    else:
        if where.value_filter is None:
            chosen = elements
        else:
            flt = where.value_filter
            chosen = [e for e in elements if matches_element(flt, e, attr)]
        if sub is None and op == "replace" and is_unassigned(value):
            gone = {id(e) for e in chosen}  # replacing values with null unassigns them
            elements, chosen = [e for e in elements if id(e) not in gone], []
        if not chosen:
            created = create_element(attr, where, value)
            if created is not None:
                elements.append(created)
                touched.append(created)
        for element in chosen:
            if sub is not None:
                set_sub(element, sub, value, where.label)
            else:
                update_element(rtype, container, attr, element, op, value, where.label)
            touched.append(element)
    demote_other_primaries(elements, touched)
    store(holder, attr, recheck(rtype, container, attr, elements))


def update_element(
    rtype: ResourceType,
    container: str | None,
    attr: Attribute,
    element: dict[str, Any],
    op: OpName,
    value: object,
    label: str,
) -> None:
    """add merges into a filtered element, replace swaps it (§3.5.2.1, §3.5.2.3)."""
    if is_unassigned(value):
        return
    if not isinstance(value, dict):
        raise InvalidValue(f"{label} must be an object, not {short(value)}")
    new = attribute_value(rtype, container, attr, [value])
    new_element = new[0] if isinstance(new, list) and new else {}
    if op == "replace":
        for sub_attr in attr.sub_attributes:
            if sub_attr.name not in new_element and sub_attr.mutability != "readOnly":
                set_sub(element, sub_attr, None, f"{attr.name}.{sub_attr.name}")
    for key, item in new_element.items():
        set_sub(element, sub_attribute(attr, key), item, f"{attr.name}.{key}")


def create_element(attr: Attribute, where: Where, value: object) -> dict[str, Any] | None:
    """The element an add/replace through an unmatched filter creates (module docstring)."""
    if is_unassigned(value):
        return None
    element: dict[str, Any] = {}
    if where.value_filter is not None:
        seeded = element_from_filter(attr, where.value_filter)
        if seeded is None:
            raise NoTarget(f"no value of {attr.name} matches the filter")
        element.update(seeded)
    if where.target.sub is not None:
        set_sub(element, where.target.sub, value, where.label)
    elif isinstance(value, dict):
        for key, raw in value.items():
            sub_attr = attr.sub(key) if isinstance(key, str) else None
            if sub_attr is not None and sub_attr.mutability != "readOnly":
                set_sub(element, sub_attr, raw, f"{attr.name}.{sub_attr.name}")
    else:
        raise InvalidValue(f"{where.label} must be an object, not {short(value)}")
    return element


def element_from_filter(attr: Attribute, flt: Filter) -> dict[str, Any] | None:
    """`type eq "work" and primary eq true` as {"type": "work", "primary": True}."""
    if isinstance(flt, And):
        left = element_from_filter(attr, flt.left)
        right = element_from_filter(attr, flt.right)
        if left is None or right is None or any(left[k] != right[k] for k in left.keys() & right):
            return None
        return {**left, **right}
    if not isinstance(flt, Compare) or flt.op != "eq" or flt.path.sub_attr or flt.path.urn:
        return None
    sub = attr.sub(flt.path.attr)
    if sub is None or sub.mutability == "readOnly":
        return None
    checked = check_simple(sub, flt.value, f"{attr.name}.{sub.name}")
    return {sub.name: checked} if checked is not None else None


def demote_other_primaries(elements: list[Any], touched: list[dict[str, Any]]) -> None:
    """§3.5.2: a value set to primary makes every other value non-primary."""
    promoted = {id(e) for e in touched if isinstance(e, dict) and e.get("primary") is True}
    if not promoted:
        return
    for element in elements:
        if id(element) not in promoted and element.get("primary") is True:
            element["primary"] = False


def remove_values(
    rtype: ResourceType, holder: dict[str, Any], where: Where, value: object, *, has_value: bool
) -> None:
    """§3.5.2.2 remove on a multi-valued attribute: all of it, filtered values, a
    sub-attribute of them, or (Entra) the values matching `value`."""
    container, attr, sub = where.target
    assert attr is not None
    current = holder.get(attr.name)
    elements: list[Any] = [dict(e) for e in current] if isinstance(current, list) else []
    if where.value_filter is None and sub is None:
        if not has_value or value is None:
            guard(attr, current, None, where.label)
            holder.pop(attr.name, None)
            return
        selectors = attribute_value(rtype, container, attr, value)
        chosen = [e for e in elements if selected(e, selectors)]
    elif where.value_filter is None:
        chosen = elements
    else:
        flt = where.value_filter
        chosen = [e for e in elements if matches_element(flt, e, attr)]
    chosen_ids = {id(e) for e in chosen}
    if sub is None:
        elements = [e for e in elements if id(e) not in chosen_ids]
    else:
        for element in chosen:
            set_sub(element, sub, None, where.label)
        elements = [e for e in elements if e]
    store(holder, attr, recheck(rtype, container, attr, elements))


def selected(element: dict[str, Any], selectors: object) -> bool:
    """An element matches a remove value when it has every sub-attribute the value gives."""
    if not isinstance(selectors, list):
        return False
    return any(
        isinstance(s, dict) and s and all(element.get(k) == v for k, v in s.items())
        for s in selectors
    )
