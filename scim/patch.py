"""The PATCH engine (RFC 7644 §3.5.2): a PatchOp request applied to a canonical document.

Pure: `apply_patch` works on a deep copy and returns it; the input is never
modified, and any failing operation raises a ScimError so the caller keeps
the old document (§3.5.2: "the entire PATCH request is applied atomically").
The result is re-validated with `canonicalize`'s rules (`validate_document`),
so no sequence of operations can store what a POST would refuse.

Decisions:
- `schemas` must contain the PatchOp URN and `Operations` must be a non-empty
  list, else `invalidSyntax`; more than MAX_PATCH_OPERATIONS operations is
  `invalidValue` (§3.12 lists it for "not compatible with the operation";
  tooMany is defined for filters that match too much).
- `op` in any letter case (`quirks.normalise_op_name`).
- add/replace with a null, "" or [] value unassigns the target (RFC 7643 §2.5;
  Entra clears with "" or null), including values chosen by a filter;
  adding an empty value to a multi-valued attribute adds nothing.
- add or replace through a value filter that matches nothing creates the
  element from the filter's `eq` terms plus the value (Entra's
  `emails[type eq "work"].value` on a user without a work email). §3.5.2.3
  says noTarget; we follow what Entra needs, and answer noTarget only when
  the filter is not a plain `and` of `eq` terms.
- a complex attribute is merged sub-attribute by sub-attribute by add and by
  replace (§3.5.2.3: "Sub-attributes that are not specified ... are left
  unchanged"); a multi-valued add appends values not already present, a
  multi-valued replace without a filter replaces the whole list.
- setting `primary: true` on a value sets it to false on the others (§3.5.2).
- an explicit path to an unknown attribute is `invalidPath`; a path to a
  readOnly attribute or sub-attribute, changing an assigned immutable one, or
  removing a required one, is `mutability` (§3.5.2, §3.5.2.2). Unknown and
  readOnly keys inside a path-less value object are ignored as in POST (Okta
  echoes the Group `id` there).
- remove needs a path (`noTarget`); removing what is absent is not an error;
  remove with a value on a multi-valued attribute removes only the values
  matching it (Entra's member removal without `aadOptscim062020`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from scim.ast import PatchPath
from scim.errors import InvalidPath, InvalidSyntax, InvalidValue, Mutability, NoTarget, ScimError
from scim.filter import parse_patch_path
from scim.names import Target, resolve_path
from scim.patch_multi import (
    Where,
    guard,
    recheck,
    remove_values,
    set_sub,
    store,
    sub_attribute,
    write_multi,
)
from scim.quirks import OpName, expand_value_keys, normalise_op_name, short
from scim.resource import (
    Document,
    attribute_quirks,
    attribute_value,
    copy_json,
    validate_document,
)
from scim.schema import PATCH_OP_SCHEMA, ResourceType
from scim.values import is_unassigned

MAX_PATCH_OPERATIONS = 1000


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class PatchOperation(NamedTuple):
    """One validated operation; `path` is None and `value` MISSING when absent."""

    op: OpName
    path: str | None
    value: object

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"op": self.op}
        if self.path is not None:
            body["path"] = self.path
        if self.value is not MISSING:
            body["value"] = self.value
        return body


def _fields(body: dict[str, Any]) -> dict[str, object]:
    """Message attributes by lower-cased name (RFC 7643 §2.1); the first spelling given wins."""
    found: dict[str, object] = {}
    for key, value in body.items():
        if isinstance(key, str):
            found.setdefault(key.lower(), value)
    return found


def read_operations(request: object) -> list[PatchOperation]:
    """Validate a PatchOp message (RFC 7644 §3.5.2) and return its operations."""
    if not isinstance(request, dict):
        raise InvalidSyntax("a PATCH body must be a JSON object")
    message = _fields(request)
    schemas = message.get("schemas", MISSING)
    if not isinstance(schemas, list) or PATCH_OP_SCHEMA.lower() not in {
        s.lower() for s in schemas if isinstance(s, str)
    }:
        raise InvalidSyntax(f'"schemas" must contain {PATCH_OP_SCHEMA}')
    raw_ops = message.get("operations", MISSING)
    if not isinstance(raw_ops, list) or not raw_ops:
        raise InvalidSyntax('"Operations" must be a non-empty list')
    if len(raw_ops) > MAX_PATCH_OPERATIONS:
        raise InvalidValue(f"at most {MAX_PATCH_OPERATIONS} operations per PATCH request")
    ops: list[PatchOperation] = []
    for index, raw in enumerate(raw_ops, start=1):
        if not isinstance(raw, dict):
            raise InvalidSyntax(f"operation {index} must be an object")
        fields = _fields(raw)
        op = normalise_op_name(fields.get("op", MISSING))
        path = fields.get("path", MISSING)
        if path is MISSING or path is None or (isinstance(path, str) and not path.strip()):
            path = None
        elif not isinstance(path, str):
            raise InvalidPath(f'operation {index}: "path" must be a string, not {short(path)}')
        ops.append(PatchOperation(op, path, fields.get("value", MISSING)))
    return ops


def apply_patch(rtype: ResourceType, doc: dict[str, Any], request: object) -> Document:
    """Apply a PatchOp request to a copy of `doc` and return the validated result."""
    ops = read_operations(request)
    work = copy_json(doc)
    for index, op in enumerate(ops, start=1):
        try:
            _apply(rtype, work, op)
        except ScimError as exc:
            raise type(exc)(f"operation {index}: {exc.detail}", status=exc.status) from exc
    return validate_document(rtype, work)


def _apply(rtype: ResourceType, doc: Document, op: PatchOperation) -> None:
    if op.path is None:
        if op.op == "remove":
            raise NoTarget("remove needs a path (RFC 7644 §3.5.2.2)")
        if not isinstance(op.value, dict):
            raise InvalidValue(
                f"{op.op} without a path needs an object value, not {short(op.value)}"
            )
        _write_object(rtype, doc, op.op, op.value)
        return
    where = _resolve(rtype, parse_patch_path(op.path), op.path)
    if op.op == "remove":
        _remove(rtype, doc, where, op.value)
        return
    if op.value is MISSING:
        raise InvalidValue(f"{op.op} needs a value")
    if where.target.attribute is None:  # a whole extension: its attributes, one by one
        if is_unassigned(op.value):
            doc.pop(where.target.container or "", None)
            return
        if not isinstance(op.value, dict):
            raise InvalidValue(f"{where.label} must be an object, not {short(op.value)}")
        _write_object(rtype, doc, op.op, {where.label: op.value})
        return
    _write(rtype, doc, op.op, where, op.value)


def _resolve(rtype: ResourceType, path: PatchPath, text: str) -> Where:
    """The PATCH path as a schema target; mutability checks that need no value."""
    target = resolve_path(rtype, path.attr)
    if target is None:
        raise InvalidPath(f"{short(text)} names no attribute of a {rtype.id}")
    attr = target.attribute
    if attr is None:
        if path.value_filter is not None or path.sub_attr is not None:
            raise InvalidPath(f"{short(text)}: a schema URN takes no filter")
        return Where(target, None, target.container or "")
    sub = target.sub
    if path.value_filter is not None:
        if not (attr.multi_valued and attr.type == "complex"):
            raise InvalidPath(f"{attr.name} is not multi-valued: it takes no [filter]")
        if path.sub_attr is not None:
            sub = attr.sub(path.sub_attr)
            if sub is None:
                raise InvalidPath(f"{attr.name} has no sub-attribute {short(path.sub_attr)}")
    label = attr.name if sub is None else f"{attr.name}.{sub.name}"
    if attr.mutability == "readOnly" or (sub is not None and sub.mutability == "readOnly"):
        raise Mutability(f"{label} is read-only")
    return Where(Target(target.container, attr, sub), path.value_filter, label)


def _write_object(rtype: ResourceType, doc: Document, op: OpName, value: dict[str, Any]) -> None:
    """Path-less add/replace (§3.5.2.1, §3.5.2.3): each key as its own target."""
    for attr_path, item in expand_value_keys(rtype, value):
        target = resolve_path(rtype, attr_path)
        if target is None or target.attribute is None:
            if target is not None and not is_unassigned(item):
                raise InvalidValue(f"{target.container} must be an object, not {short(item)}")
            if target is not None:
                doc.pop(target.container or "", None)
            continue  # unknown keys are ignored (module docstring)
        attr, sub = target.attribute, target.sub
        if attr.mutability == "readOnly" or (sub is not None and sub.mutability == "readOnly"):
            continue
        if sub is not None and attr.multi_valued:
            continue  # "emails.value" names no single place; ignored like unknown keys
        label = attr.name if sub is None else f"{attr.name}.{sub.name}"
        _write(rtype, doc, op, Where(target, None, label), item)


def _holder(doc: Document, container: str | None, *, create: bool) -> dict[str, Any] | None:
    if container is None:
        return doc
    found = doc.get(container)
    if isinstance(found, dict):
        return found
    if not create:
        return None
    doc[container] = {}
    result: dict[str, Any] = doc[container]
    return result


def _write(rtype: ResourceType, doc: Document, op: OpName, where: Where, value: object) -> None:
    container, attr, sub = where.target
    assert attr is not None
    holder = _holder(doc, container, create=True)
    assert holder is not None
    if sub is None:
        value = attribute_quirks(rtype, container, attr, value)
    if attr.multi_valued:
        write_multi(rtype, holder, op, where, value)
    elif sub is not None:
        current = holder.get(attr.name)
        complex_value = dict(current) if isinstance(current, dict) else {}
        set_sub(complex_value, sub, value, where.label)
        store(holder, attr, recheck(rtype, container, attr, complex_value))
    elif attr.type == "complex" and isinstance(value, dict):
        current = holder.get(attr.name)
        merged = dict(current) if isinstance(current, dict) else {}
        new = attribute_value(rtype, container, attr, value)
        assert isinstance(new, dict) or new is None
        for key, item in (new or {}).items():
            set_sub(merged, sub_attribute(attr, key), item, f"{attr.name}.{key}")
        for key, raw in value.items():  # explicit nulls and "" clear sub-attributes
            sub_attr = attr.sub(key) if isinstance(key, str) else None
            if sub_attr is not None and sub_attr.mutability != "readOnly" and is_unassigned(raw):
                set_sub(merged, sub_attr, None, f"{attr.name}.{sub_attr.name}")
        store(holder, attr, merged or None)
    else:
        new = attribute_value(rtype, container, attr, value)
        guard(attr, holder.get(attr.name), new, where.label)
        store(holder, attr, new)


def _remove(rtype: ResourceType, doc: Document, where: Where, value: object) -> None:
    """§3.5.2.2 remove; absent targets are not an error."""
    container, attr, sub = where.target
    holder = _holder(doc, container, create=False)
    if holder is None:
        return
    if attr is None:
        doc.pop(container or "", None)
        return
    current = holder.get(attr.name)
    if current is None:
        return
    if not attr.multi_valued:
        if sub is None:
            guard(attr, current, None, where.label)
            holder.pop(attr.name, None)
        elif isinstance(current, dict):
            remaining = dict(current)
            set_sub(remaining, sub, None, where.label)
            store(holder, attr, remaining or None)
        return
    remove_values(rtype, holder, where, value, has_value=value is not MISSING)
