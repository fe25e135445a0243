"""One attribute value checked against its definition (RFC 7643 §2.3-§2.5).

Used by `canonicalize` for POST/PUT bodies, by the PATCH engine for each
operation's value, and to re-validate a patched document, so a value is
judged the same way whichever way it arrives.

Decisions, each applied everywhere:
- null, "", [] and {} are "unassigned" (RFC 7643 §2.5 for null and empty
  arrays; Entra clears an attribute by sending "" or null, see Microsoft's
  "Clear attribute values"): such a value is dropped, never stored.
- booleans sent as "True"/"False" strings are coerced (`quirks.coerce_boolean`).
- a string longer than MAX_STRING_LENGTH, or more than MAX_MULTI_VALUES values
  of one multi-valued attribute, is `invalidValue` (limits, not RFC).
- a single object sent for a multi-valued complex attribute is wrapped into a
  one-element list (RFC 7644 §3.5.2.1 lets PATCH add a single value; we accept
  the same shape everywhere rather than fail on it).
- identical values of a multi-valued attribute are kept once; more than one
  `primary: true` is `invalidValue` (RFC 7643 §2.4 "MUST appear no more than once").
- unknown sub-attributes are dropped, as unknown attributes are (Entra sends
  extras); readOnly sub-attributes are dropped from client input (§2.2 "ignore").
"""

from __future__ import annotations

from typing import Any

from scim.errors import InvalidValue
from scim.quirks import coerce_boolean, short
from scim.schema import Attribute

MAX_STRING_LENGTH = 4096
MAX_MULTI_VALUES = 100


_NOT_STRINGS = frozenset({"boolean", "integer", "decimal", "complex"})  # other types are strings
JSON_CONTAINERS = (dict, list)  # the only mutable JSON values
_SIZED = (str, list, dict)  # a tuple: `str | list | dict` would build a union on every call


def is_unassigned(value: object) -> bool:
    """RFC 7643 §2.5: null and empty arrays mean "no value"; so do "" and {} here."""
    return value is None or (isinstance(value, _SIZED) and len(value) == 0)


def check_simple(attr: Attribute, value: object, label: str) -> object | None:
    """A simple (non-complex) value in canonical form, or None when unassigned."""
    kind = attr.type
    # string, reference, binary and dateTime all travel as JSON strings (§2.3): the common case.
    if isinstance(value, str) and kind not in _NOT_STRINGS:
        if len(value) > MAX_STRING_LENGTH:
            raise InvalidValue(f"{label} is longer than {MAX_STRING_LENGTH} characters")
        return value or None  # "" is unassigned
    if is_unassigned(value):
        return None
    if kind == "boolean":
        coerced = coerce_boolean(value)
        if isinstance(coerced, bool):
            return coerced
        raise InvalidValue(f"{label} must be a boolean, not {short(value)}")
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise InvalidValue(f"{label} must be an integer, not {short(value)}")
    if kind == "decimal":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        raise InvalidValue(f"{label} must be a number, not {short(value)}")
    if kind == "complex":
        raise InvalidValue(f"{label} must be an object, not {short(value)}")
    raise InvalidValue(f"{label} must be a string, not {short(value)}")


def check_complex(
    attr: Attribute, value: object, label: str, *, drop_read_only: bool
) -> dict[str, Any] | None:
    """A complex value with canonical sub-attribute names, or None when unassigned."""
    if not isinstance(value, dict):
        if is_unassigned(value):
            return None
        raise InvalidValue(f"{label} must be an object, not {short(value)}")
    subs = attr.subs_by_name  # {} falls through to `out or None` below: unassigned
    out: dict[str, Any] = {}
    for key, raw in value.items():
        sub = subs.get(key.lower()) if isinstance(key, str) else None
        if sub is None or (drop_read_only and sub.mutability == "readOnly"):
            continue
        checked = check_simple(sub, raw, f"{label}.{sub.name}")
        if checked is None:
            continue
        if sub.name in out:
            raise InvalidValue(f"{label}.{sub.name} is given more than once")
        out[sub.name] = checked
    return out or None


def freeze(element: object) -> object:
    """A hashable stand-in for a checked value, to find identical values fast."""
    if isinstance(element, dict):
        # A loop rather than a comprehension, and checked values are flat dicts of
        # scalars, so those are frozen inline: this runs for every element of every list.
        items = []
        for key, item in element.items():
            if isinstance(item, JSON_CONTAINERS):
                items.append((key, freeze(item)))
            else:
                items.append((key, (type(item).__name__, item)))
        items.sort()
        return tuple(items)
    if isinstance(element, list):
        return tuple([freeze(item) for item in element])
    return (type(element).__name__, element)


def check_value(
    attr: Attribute,
    value: object,
    label: str,
    *,
    drop_read_only: bool = True,
    max_items: int | None = MAX_MULTI_VALUES,
    dedupe: bool = True,
) -> object | None:
    """Any value of `attr` in canonical form, or None when unassigned (see module doc).

    `dedupe=False` keeps identical values, for a caller that removes duplicates
    itself by a coarser key (Group members, by id).
    """
    if not attr.multi_valued:
        if attr.type == "complex":
            return check_complex(attr, value, label, drop_read_only=drop_read_only)
        return check_simple(attr, value, label)
    if is_unassigned(value):
        return None
    if isinstance(value, dict) and attr.type == "complex":
        value = [value]
    if not isinstance(value, list):
        raise InvalidValue(f"{label} must be a list, not {short(value)}")
    out: list[Any] = []
    seen: set[object] = set()
    find_duplicates = dedupe and len(value) > 1  # one value has none: spare freezing it
    is_complex = attr.type == "complex"
    for index, item in enumerate(value):
        item_label = f"{label}[{index}]"
        if is_complex:
            checked: object = check_complex(attr, item, item_label, drop_read_only=drop_read_only)
        else:
            checked = check_simple(attr, item, item_label)
        if checked is None:
            continue
        if find_duplicates:
            key = freeze(checked)
            if key in seen:
                continue
            seen.add(key)
        out.append(checked)
    if not out:
        return None
    if max_items is not None and len(out) > max_items:
        raise InvalidValue(f"{label} has more than {max_items} values")
    primaries = sum(1 for item in out if isinstance(item, dict) and item.get("primary") is True)
    if primaries > 1:
        raise InvalidValue(f'{label} has more than one value with "primary": true')
    return out
