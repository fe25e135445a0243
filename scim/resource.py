"""Canonical resource documents: in from POST/PUT, out through projection.

A canonical document is a plain dict: core and common attributes at the top
level under their RFC spelling, extension attributes nested under the
canonical extension URN, multi-valued attributes as lists of dicts, and
`schemas` listing the core schema plus each extension present. Nothing
unassigned is stored (no null, "", [] or {}). Value rules live in
`scim.values`; names are resolved by `scim.names`.

Decisions:
- `schemas` missing, not a list, or without the core schema URN is
  `invalidSyntax` (RFC 7643 §3 makes it REQUIRED; §3.12 "did not conform to
  the request schema"). Other URNs in it are ignored: Entra adds
  "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group".
  SCIM 1.1's core URN stands for the core schema (OneLogin's Core Schema
  app; `quirks.normalise_schemas`).
- unknown attributes are dropped (Entra sends extras); readOnly ones (id, meta,
  groups) are dropped silently (RFC 7643 §2.2). A known attribute of the wrong
  JSON type is `invalidValue` naming it.
- an attribute given twice (e.g. "userName" and "USERNAME") is `invalidValue`.
- Group `members` keep only `value` and `type` (`display` and `$ref` are
  derived); a member needs a string `value`, and `type`, when given, must be
  "User": the bridge has no nested groups. Members have no count limit.
- `for_replace` exists so PUT and POST call sites read alike; the rules that
  differ for PUT (immutable, kept readOnly and writeOnly values) are applied by
  `merge_for_replace`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from scim.errors import InvalidSyntax, InvalidValue, Mutability
from scim.names import Target, all_attributes, resolve_name
from scim.quirks import (
    normalise_manager_value,
    normalise_member_values,
    normalise_schemas,
    short,
)
from scim.schema import ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, Attribute, ResourceType
from scim.values import JSON_CONTAINERS, check_simple, check_value, is_unassigned

Document = dict[str, Any]


def copy_json(value: Any) -> Any:
    """A deep copy of JSON-shaped data: new dicts and lists, shared scalars.

    Documents are JSON data only, so this does what `copy.deepcopy` would at a
    fraction of the cost (no memo, no dispatch on type). Other objects are
    shared, not copied.
    """
    # Scalars are taken as they are, without a call each: most values are scalars.
    if isinstance(value, dict):
        return {k: copy_json(v) if isinstance(v, JSON_CONTAINERS) else v for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) if isinstance(v, JSON_CONTAINERS) else v for v in value]
    return value


def attribute_value(
    rtype: ResourceType,
    container: str | None,
    attr: Attribute,
    value: object,
    *,
    drop_read_only: bool = True,
) -> object | None:
    """A whole attribute's value in canonical form, or None when unassigned.

    Applies the attribute-specific quirks (Entra's bare-string manager, bare
    member ids) before the generic checks of `scim.values.check_value`.
    """
    label = attr.name if container is None else f"{container}:{attr.name}"
    value = attribute_quirks(rtype, container, attr, value)
    if _is_members(rtype, container, attr):
        # readOnly `display` is kept for the check, so a member without an id is refused
        # rather than silently dropped; canonical_members keeps only value and type, and
        # one member per id (members have no `primary`, so duplicates change nothing else).
        checked = check_value(
            attr, value, label, drop_read_only=False, max_items=None, dedupe=False
        )
        return canonical_members(checked)
    return check_value(attr, value, label, drop_read_only=drop_read_only)


def attribute_quirks(
    rtype: ResourceType, container: str | None, attr: Attribute, value: object
) -> object:
    """The IdP repairs that belong to one attribute (scim.quirks), applied before any check."""
    if container == ENTERPRISE_USER_SCHEMA and attr.name == "manager":
        return normalise_manager_value(value)
    if _is_members(rtype, container, attr):
        return normalise_member_values(value)
    return value


def canonical_members(value: object) -> list[dict[str, str]] | None:
    """Checked Group members reduced to `{"value": id[, "type": "User"]}`."""
    if value is None:
        return None
    assert isinstance(value, list)
    members: list[dict[str, str]] = []
    seen: set[str] = set()
    for item in value:
        member_id = item.get("value")
        if not isinstance(member_id, str) or not member_id:
            raise InvalidValue(f"each member needs a string value, not {short(item)}")
        member = {"value": member_id}
        if "type" in item:
            if item["type"].lower() != "user":
                raise InvalidValue(f"members can only be Users, not {short(item['type'])}")
            member["type"] = "User"
        if member_id not in seen:
            seen.add(member_id)
            members.append(member)
    return members


def _is_members(rtype: ResourceType, container: str | None, attr: Attribute) -> bool:
    return container is None and rtype.schema.id == GROUP_SCHEMA and attr.name == "members"


def canonicalize(rtype: ResourceType, body: object, *, for_replace: bool = False) -> Document:
    """A client's POST (RFC 7644 §3.3) or PUT (§3.5.1) body as a canonical document."""
    del for_replace  # same rules; see module docstring
    if not isinstance(body, dict):
        raise InvalidSyntax("the request body must be a JSON object")
    schemas = normalise_schemas(rtype.schema.id, _field(body, "schemas"))
    if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
        raise InvalidSyntax('"schemas" must be a list of schema URNs')
    if rtype.schema.id.lower() not in {s.lower() for s in schemas}:
        raise InvalidSyntax(f'"schemas" must contain {rtype.schema.id}')
    return _build(rtype, body, drop_read_only=True)


def validate_document(rtype: ResourceType, doc: object) -> Document:
    """Re-check a stored or patched document by `canonicalize`'s rules, keeping readOnly values.

    The PATCH engine runs every result through this, so no sequence of
    operations can store what a POST would have refused.
    """
    if not isinstance(doc, dict):
        raise InvalidSyntax("a resource must be a JSON object")
    return _build(rtype, doc, drop_read_only=False)


def _field(body: dict[str, Any], name: str) -> object:
    for key, value in body.items():
        if isinstance(key, str) and key.lower() == name.lower():
            return value
    return None


def _build(rtype: ResourceType, body: dict[str, Any], *, drop_read_only: bool) -> Document:
    out: Document = {}
    urns = rtype.urns_by_name
    for key, raw in body.items():
        if not isinstance(key, str):
            continue
        lowered = key.lower()
        if lowered == "schemas":
            continue
        urn = urns.get(lowered)
        if urn is not None:
            if is_unassigned(raw):
                continue
            if not isinstance(raw, dict):
                raise InvalidValue(f"{urn} must be an object, not {short(raw)}")
            for sub_key, sub_raw in raw.items():
                target = resolve_name(rtype, f"{urn}:{sub_key}")
                _assign(rtype, out, target, sub_raw, drop_read_only=drop_read_only)
            continue
        _assign(rtype, out, resolve_name(rtype, key), raw, drop_read_only=drop_read_only)
    for container, name in _layout(rtype).required:
        holder = out if container is None else out.get(container, {})
        if name not in holder:
            raise InvalidValue(f"{name} is required and must not be empty")
    return finish(rtype, out)


def _assign(
    rtype: ResourceType,
    out: Document,
    target: Target | None,
    raw: object,
    *,
    drop_read_only: bool,
) -> None:
    if target is None or target.attribute is None:
        return  # unknown names are dropped (module docstring)
    attr, sub = target.attribute, target.sub
    if drop_read_only and (
        attr.mutability == "readOnly" or (sub is not None and sub.mutability == "readOnly")
    ):
        return
    holder = out if target.container is None else out.setdefault(target.container, {})
    if sub is None:
        value = attribute_value(rtype, target.container, attr, raw, drop_read_only=drop_read_only)
        previous = holder.get(attr.name)
        if isinstance(previous, dict) and isinstance(value, dict) and not previous.keys() & value:
            previous.update(value)  # {"name.givenName": ..} then {"name": {..}}
        elif attr.name in holder:
            raise InvalidValue(f"{attr.name} is given more than once")
        elif value is not None:
            holder[attr.name] = value
        return
    if attr.multi_valued:
        return  # "emails.value" as a body key names no single place; dropped like unknowns
    checked = check_simple(sub, raw, f"{attr.name}.{sub.name}")
    complex_value = holder.setdefault(attr.name, {})
    if sub.name in complex_value:
        raise InvalidValue(f"{attr.name}.{sub.name} is given more than once")
    if checked is not None:
        complex_value[sub.name] = checked


class _Layout(NamedTuple):
    """What `_build` and `finish` need of a resource type, computed once per type."""

    required: tuple[tuple[str | None, str], ...]  # (container, attribute name)
    extension_ids: tuple[str, ...]
    order: tuple[str, ...]  # top-level keys in output order, after "schemas"


@functools.cache
def _layout(rtype: ResourceType) -> _Layout:
    extension_ids = tuple(ext.id for ext in rtype.extensions)
    return _Layout(
        required=tuple(
            (container, attr.name) for container, attr in all_attributes(rtype) if attr.required
        ),
        extension_ids=extension_ids,
        order=(
            "id",
            "externalId",
            *(a.name for a in rtype.schema.attributes),
            "meta",
            rtype.schema.id,
            *extension_ids,
        ),
    )


def finish(rtype: ResourceType, doc: Document) -> Document:
    """Drop empty extension objects and put `schemas` (core + present extensions) first.

    Then come id, externalId, the core attributes in schema order, meta, the
    extensions, and any other key in the order given.
    """
    layout = _layout(rtype)
    extension_ids = layout.extension_ids
    body: Document = {}
    for key, value in doc.items():
        if key == "schemas":
            continue
        if key in extension_ids and isinstance(value, dict):
            value = {k: v for k, v in value.items() if not is_unassigned(v)}
        if not is_unassigned(value):
            body[key] = value
    schemas = [rtype.schema.id, *(urn for urn in extension_ids if urn in body)]
    out: Document = {"schemas": schemas}
    for key in layout.order:
        if key in body:
            out[key] = body[key]
    if len(out) <= len(body):  # some keys have no place in `order`: they follow, as given
        for key, value in body.items():
            if key not in out:
                out[key] = value
    return out


def merge_for_replace(rtype: ResourceType, old: Document, new: Document) -> Document:
    """PUT (RFC 7644 §3.5.1): `new` replaces every writable attribute of `old`.

    `new` is a canonicalized body. From `old` we keep id, meta and every
    readOnly attribute (clients cannot set them), and writeOnly ones the body
    leaves out: `password` is never returned, so a client that GETs, edits and
    PUTs could not send it back, and clearing it would be a surprise. An
    immutable attribute may be set once: a different new value is
    `mutability`, an omitted one keeps the old value.
    """
    result = copy_json({k: v for k, v in new.items() if k != "schemas"})
    for container, attr in all_attributes(rtype):
        old_holder = old if container is None else old.get(container) or {}
        old_value = old_holder.get(attr.name)
        new_holder = result if container is None else result.setdefault(container, {})
        new_value = new_holder.get(attr.name)
        keep_old = False
        if attr.mutability == "readOnly":
            new_holder.pop(attr.name, None)
            keep_old = True
        elif attr.mutability == "immutable" and old_value is not None:
            if new_value is not None and new_value != old_value:
                raise Mutability(f"{attr.name} is immutable")
            keep_old = True
        elif attr.mutability == "writeOnly" and new_value is None:
            keep_old = True
        if keep_old and old_value is not None:
            new_holder[attr.name] = copy_json(old_value)
    return finish(rtype, result)


def project(
    doc: Document,
    rtype: ResourceType,
    attributes: list[str] | None = None,
    excluded: list[str] | None = None,
) -> Document:
    """The document as returned to a client (RFC 7644 §3.4.2.5, §3.9; RFC 7643 §7 `returned`).

    `attributes` keeps only the named attributes plus those `returned: always`
    (id) and `schemas`; `excluded` removes the named ones but never an
    always-returned one; `returned: never` (password) never leaves; names may
    be URN-qualified or dotted (`name.givenName`, `emails.value`) and unknown
    names are ignored. When both lists are given, the selection is made first
    and the exclusion applied to it.
    """
    if not attributes and not excluded:
        hidden = _hidden(rtype)
        if not hidden.intersection(doc):
            return doc
        return {k: v for k, v in doc.items() if k not in hidden}
    wanted = _targets(rtype, attributes)
    if attributes:
        result: Document = {}
        for container, attr in all_attributes(rtype):
            if attr.returned == "always":
                _copy(doc, result, container, attr, None)
        for container, attr, subs in wanted:
            _copy(doc, result, container, attr, subs)
    else:
        result = copy_json({k: v for k, v in doc.items() if k != "schemas"})
        for container, attr in all_attributes(rtype):
            if attr.returned == "request":
                _drop(result, container, attr, None)
    for container, attr in all_attributes(rtype):
        if attr.returned == "never":
            _drop(result, container, attr, None)
        never = {s.name for s in attr.sub_attributes if s.returned == "never"}
        if never:
            _drop(result, container, attr, never)
    for container, attr, subs in _targets(rtype, excluded):
        if attr.returned != "always":
            _drop(result, container, attr, subs)
    return finish(rtype, result)


_Selection = list[tuple[str | None, Attribute, set[str] | None]]
_HIDDEN: dict[str, frozenset[str]] = {}


def _hidden(rtype: ResourceType) -> frozenset[str]:
    """Top-level names never returned by default (password): the fast path of
    `project` for the common request that names no attributes."""
    hidden = _HIDDEN.get(rtype.id)
    if hidden is None:
        hidden = frozenset(
            attr.name
            for container, attr in all_attributes(rtype)
            if container is None and attr.returned in ("never", "request")
        )
        nested = any(
            attr.returned in ("never", "request")
            or any(sub.returned in ("never", "request") for sub in attr.sub_attributes)
            for container, attr in all_attributes(rtype)
            if container is not None or attr.returned not in ("never", "request")
        )
        if nested:
            raise AssertionError(f"{rtype.id}: hidden nested attributes need the slow path")
        _HIDDEN[rtype.id] = hidden
    return hidden


def _targets(rtype: ResourceType, names: list[str] | None) -> _Selection:
    """Resolved names as (container, attribute, sub-attribute names or None for all)."""
    found: dict[tuple[str | None, str], tuple[str | None, Attribute, set[str] | None]] = {}
    for name in names or []:
        target = resolve_name(rtype, name.strip()) if isinstance(name, str) else None
        if target is None:
            continue
        if target.attribute is None:
            ext = rtype.extension(target.container or "")
            pairs: _Selection = [(target.container, a, None) for a in ext.attributes] if ext else []
        else:
            subs = {target.sub.name} if target.sub is not None else None
            pairs = [(target.container, target.attribute, subs)]
        for container, attr, subs in pairs:
            key = (container, attr.name)
            if key in found:
                previous = found[key][2]
                subs = None if previous is None or subs is None else previous | subs
            found[key] = (container, attr, subs)
    return list(found.values())


def _copy(
    doc: Document, out: Document, container: str | None, attr: Attribute, subs: set[str] | None
) -> None:
    source = doc if container is None else doc.get(container)
    if not isinstance(source, dict) or attr.name not in source:
        return
    value = copy_json(source[attr.name])
    if subs is not None:
        value = _only_subs(value, subs)
    holder = out if container is None else out.setdefault(container, {})
    if value is not None:
        holder[attr.name] = value


def _only_subs(value: object, subs: set[str]) -> object | None:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k in subs} or None
    if isinstance(value, list):
        items = [{k: v for k, v in e.items() if k in subs} for e in value if isinstance(e, dict)]
        return [e for e in items if e] or None
    return None


def _drop(doc: Document, container: str | None, attr: Attribute, subs: set[str] | None) -> None:
    holder = doc if container is None else doc.get(container)
    if not isinstance(holder, dict) or attr.name not in holder:
        return
    if subs is None:
        del holder[attr.name]
        return
    value = holder[attr.name]
    if isinstance(value, dict):
        kept: object = {k: v for k, v in value.items() if k not in subs}
    elif isinstance(value, list):
        items = [
            {k: v for k, v in e.items() if k not in subs} for e in value if isinstance(e, dict)
        ]
        kept = [e for e in items if e]
    else:
        kept = value
    if is_unassigned(kept):
        del holder[attr.name]
    else:
        holder[attr.name] = kept
