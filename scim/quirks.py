"""Named repairs for what real identity providers send (docs/architecture.md, "Conventions").

Each function takes one raw JSON fragment as the client sent it and returns the
shape RFC 7643/7644 describes, so the PATCH engine and `canonicalize` only ever
see standard input. Every quirk is small, pure and has its own tests
(tests/unit/scim/test_quirks.py); the docstring names the client that needs it.
"""

from __future__ import annotations

from typing import Literal

from scim.ast import AttrPath
from scim.errors import InvalidSyntax, InvalidValue
from scim.names import split_attr_name
from scim.schema import ResourceType

OpName = Literal["add", "replace", "remove"]
_OP_NAMES: dict[str, OpName] = {"add": "add", "replace": "replace", "remove": "remove"}


def short(value: object, limit: int = 80) -> str:
    """A bounded repr of client input for error details (never echo a megabyte back)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def normalise_op_name(op: object) -> OpName:
    """Map a PatchOp `op` to its RFC 7644 §3.5.2 spelling, in any letter case.

    Entra sends "Add", "Replace" and "Remove" (capitalised) unless the tenant URL
    carries `aadOptscim062020`; Microsoft's own guidance is to compare
    case-insensitively. Anything else is `invalidSyntax` (§3.12).
    """
    if isinstance(op, str):
        name = _OP_NAMES.get(op.lower())
        if name is not None:
            return name
    raise InvalidSyntax(f'"op" must be "add", "replace" or "remove", not {short(op)}')


def coerce_boolean(value: object) -> object:
    """Turn the strings "True"/"False" (any case) into booleans; leave the rest alone.

    Entra without `aadOptscim062020` sends `"value": "False"` to disable a user,
    and its validator posts `"active": "True"`. Only exact true/false words are
    coerced, so "yes" or "1" still fail the boolean type check (RFC 7643 §2.3.2).
    """
    if isinstance(value, str):
        lowered = value.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
    return value


def normalise_manager_value(value: object) -> object:
    """Give the enterprise `manager` (RFC 7643 §4.3, a complex attribute) its object shape.

    Entra sends the manager as a bare id string (`"value": "26118915-..."`),
    `""` to clear it, `{"value": "id"}`, or null. A bare id becomes
    `{"value": id}`; `""`, null and `{"value": ""}` mean "no manager" (None).
    Other shapes are returned untouched for the type check to reject.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return {"value": value}
    if isinstance(value, dict):
        value = _manager_id_as_value(value)
        inner = [v for k, v in value.items() if isinstance(k, str) and k.lower() == "value"]
        if inner and (inner[0] is None or inner[0] == ""):
            return None
    return value


def _manager_id_as_value(manager: dict[str, object]) -> dict[str, object]:
    """OneLogin's SCIM JSON template for its "SCIM Provisioner with SAML (SCIM v2
    Enterprise)" app, as integrators publish it, writes the manager's id as
    `"manager": {"managerId": "{$parameters.external_manager_id}"}`: a SCIM
    1.1-era name for RFC 7643 §4.3's `manager.value`. It becomes `value`,
    unless the object also has a `value` (then `managerId` is left for the
    unknown-attribute rules, never guessed between)."""
    keys = {k.lower(): k for k in manager if isinstance(k, str)}
    if "managerid" not in keys or "value" in keys:
        return manager
    renamed = {k: v for k, v in manager.items() if k != keys["managerid"]}
    renamed["value"] = manager[keys["managerid"]]
    return renamed


#: The SCIM 1.1 core schema URN (draft-scim-core-schema-01 §10), for Users and Groups alike.
SCIM_1_CORE_SCHEMA = "urn:scim:schemas:core:1.0"


def normalise_schemas(core_schema: str, schemas: object) -> object:
    """`schemas` of a POST or PUT body, with SCIM 1.1's core URN read as the
    resource type's SCIM 2.0 core schema.

    OneLogin's "SCIM Provisioner with SAML (Core Schema)" app sends the JSON
    template its admins paste, and the published one writes
    `"schemas": ["urn:scim:schemas:core:1.0"]` to a SCIM 2.0 base URL. The
    endpoint (RFC 7644 §3.3) already says which resource type the body is,
    and the attributes such a template carries (userName, name, emails,
    displayName, members) mean the same in both versions; so the 1.1 URN
    stands for the core schema. Any other schema list is returned untouched.
    """
    if not isinstance(schemas, list) or SCIM_1_CORE_SCHEMA not in schemas:
        return schemas
    fixed = [core_schema if s == SCIM_1_CORE_SCHEMA else s for s in schemas]
    return list(dict.fromkeys(fixed))


def normalise_member_values(value: object) -> object:
    """Give Group `members` values the list-of-objects shape of RFC 7643 §4.2.

    Entra's SCIM validator adds a member as a bare id string
    (`"value": "string id 1"`) and some clients send one object instead of a
    list. Strings become `{"value": id}`, a single object or string is wrapped
    in a list; anything else is returned untouched for the type check.
    """
    if isinstance(value, str):
        return [{"value": value}] if value else None
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [{"value": item} if isinstance(item, str) else item for item in value]
    return value


def normalise_members_remove(value: object) -> list[str]:
    """The member ids of Entra's non-standard "remove members with a value" op.

    Without `aadOptscim062020` Entra removes one member with
    `{"op": "Remove", "path": "members", "value": [{"value": "id"}]}`, which
    read literally (RFC 7644 §3.5.2.2 ignores `value` on remove) would empty
    the group. Returns the ids to remove; an explicitly empty list removes
    nobody (never wipe a group on an ambiguous request).
    """
    items = normalise_member_values(value)
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidValue(f"members to remove must be a list of objects, not {short(value)}")
    ids: list[str] = []
    for item in items:
        member_id = None
        if isinstance(item, dict):
            found = [v for k, v in item.items() if isinstance(k, str) and k.lower() == "value"]
            member_id = found[0] if found else None
        if not isinstance(member_id, str) or not member_id:
            raise InvalidValue(f"each member to remove needs a string value, not {short(item)}")
        if member_id not in ids:
            ids.append(member_id)
    return ids


def expand_value_keys(
    rtype: ResourceType, value: dict[str, object]
) -> list[tuple[AttrPath, object]]:
    """Split a path-less PATCH value object into (attribute path, value) pairs.

    RFC 7644 §3.5.2.1/§3.5.2.3 key a path-less value by attribute name, with
    extension attributes nested under their schema URN. Entra with
    `aadOptscim062020` instead keys one replace by paths:
    `{"name.givenName": "Kkom", "urn:...:enterprise:2.0:User:employeeNumber": "Aklq"}`.
    Both shapes come out as one pair per attribute or sub-attribute, so a
    dotted key touches only that sub-attribute. A whole-extension key whose
    value is not an object yields `AttrPath(attr="", urn=...)` for the caller
    to judge. Names are not checked here.
    """
    pairs: list[tuple[AttrPath, object]] = []
    for key, item in value.items():
        urn = rtype.canonical_urn(key)
        if urn is not None:
            if isinstance(item, dict):
                pairs.extend((split_attr_name(rtype, f"{urn}:{k}"), v) for k, v in item.items())
            else:
                pairs.append((AttrPath(attr="", urn=urn), item))
            continue
        pairs.append((split_attr_name(rtype, key), item))
    return pairs


_OVERRIDABLE = frozenset({"PUT", "PATCH", "DELETE"})


def method_override(method: str, header: str | None) -> str | None:
    """The method a `POST .../<id>` with `X-HTTP-Method-Override` stands for.

    PingFederate's SCIM documentation has clients that cannot send PUT or
    DELETE update, disable or delete a user with a POST to the user's URL and
    `X-HTTP-Method-Override: PUT` (or `DELETE`), after SCIM 1.1 §3.2's method
    overloading; PATCH is taken the same way. A POST to a resource's own URL
    has no other meaning in RFC 7644 (it would be a 405), so reading it as
    the named method changes none. Returns None for anything else.
    """
    if method != "POST" or header is None:
        return None
    wanted = header.strip().upper()
    return wanted if wanted in _OVERRIDABLE else None
