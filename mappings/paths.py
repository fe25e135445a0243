"""A small SCIM attribute path language for mapping sources.

Deliberately self-contained (no dependency on the `scim` package) and much
smaller than RFC 7644 §3.10 / §3.5.2 filters: a mapping source only ever
needs to *read* one attribute of one user. Grammar::

    source  := path ["|email"]
    path    := [schema-urn ":"] attr [ "[" sub SP "eq" SP value "]" ] ["." sub]
    attr    := ALPHA *(ALPHA / DIGIT / "_" / "-")  ; or "$ref"
    value   := JSON string / "true" / "false"

Examples: ``name.givenName``, ``emails[type eq "work"].value``,
``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value``,
``userName|email``. The ``|email`` suffix accepts a value only when it is an
address (one "@" with text on both sides, the LMS's own test); that is how
the default rule falls back to ``userName`` only when it looks like a mail
address.

Attribute names and schema URNs are compared case-insensitively (RFC 7643
§2.1), so tenant-written paths need not match the SCIM layer's canonical
casing. Paths are parsed once, when rules are built, and resolved per user.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

CORE_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"

_NAME = r"(?:\$ref|[A-Za-z][A-Za-z0-9_-]*)"
_PATH_RE = re.compile(
    rf"""
    (?P<attr>{_NAME})
    (?:\[\s*
        (?P<fattr>{_NAME})\s+eq\s+
        (?P<fval>"(?:[^"\\]|\\.)*"|true|false)
    \s*\])?
    (?:\.(?P<sub>{_NAME}))?
    """,
    re.VERBOSE | re.IGNORECASE,
)
# An RFC 8141 URN with at least a namespace and one more segment.
_URN_RE = re.compile(r'urn(?::[^\s:\[\]"]+){2,}', re.IGNORECASE)
_EMAIL_SUFFIX = "|email"


class PathError(ValueError):
    """A source path the parser rejects; the message says why."""


class ValueFilter(msgspec.Struct, frozen=True):
    """``[attr eq value]`` on the elements of a multi-valued attribute."""

    attr: str
    value: str | bool


class SourcePath(msgspec.Struct, frozen=True):
    """A parsed source; `text` keeps what the tenant wrote, for messages."""

    text: str
    attr: str
    schema: str | None = None
    filter: ValueFilter | None = None
    sub: str | None = None
    require_address: bool = False


def parse_path(text: str) -> SourcePath:
    """Parse one source path, raising `PathError` with a reason."""
    body = text.strip()
    require_address = False
    if body.lower().endswith(_EMAIL_SUFFIX):
        require_address = True
        body = body[: -len(_EMAIL_SUFFIX)]
    if not body:
        raise PathError(f"empty source path {text!r}")

    schema: str | None = None
    if body[:4].lower() == "urn:":
        bracket = body.find("[")
        head = body if bracket < 0 else body[:bracket]
        colon = head.rfind(":")
        schema, body = body[:colon], body[colon + 1 :]
        if not _URN_RE.fullmatch(schema):
            raise PathError(f"source path {text!r}: {schema!r} is not a schema URN")
        if not body:
            raise PathError(f"source path {text!r}: no attribute after the schema URN")
        if schema.lower() == CORE_USER_SCHEMA.lower():
            schema = None  # the core schema's attributes live at the top level

    match = _PATH_RE.fullmatch(body)
    if match is None:
        raise PathError(
            f"source path {text!r} is not of the form attr, attr.sub or "
            '`attr[sub eq "value"].sub`, optionally prefixed by "<schema urn>:"'
        )
    value_filter: ValueFilter | None = None
    if match["fattr"] is not None:
        raw = match["fval"]
        value: str | bool
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            try:
                value = msgspec.json.decode(raw, type=str)
            except msgspec.DecodeError as exc:
                raise PathError(f"source path {text!r}: bad string {raw}") from exc
        value_filter = ValueFilter(attr=match["fattr"], value=value)
    return SourcePath(
        text=text,
        attr=match["attr"],
        schema=schema,
        filter=value_filter,
        sub=match["sub"],
        require_address=require_address,
    )


def is_address(value: str) -> bool:
    """The LMS's test for an email: exactly one "@", with text on both sides."""
    local, at, domain = value.partition("@")
    return bool(at) and "@" not in domain and bool(local.strip()) and bool(domain.strip())


def scim_bool(value: object) -> bool | None:
    """A SCIM boolean, or None when `value` is not one.

    Entra sends booleans as the strings "True"/"False" in some PATCH bodies;
    accepting them here keeps a stray string from flipping a user's status
    or hiding the primary email.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    return None


def resolve(path: SourcePath, user: Mapping[str, object]) -> list[object]:
    """Every value `path` reaches in `user`, in document order.

    A multi-valued attribute yields one candidate per element, so the caller
    can take the first that has a value. Never raises on odd shapes: a
    scalar where an object is expected simply yields nothing.
    """
    container: object = user
    if path.schema is not None:
        container = _get(user, path.schema)
    value = _get(container, path.attr)
    if value is None:
        return []

    elements: list[object]
    if path.filter is not None or path.sub is not None:
        elements = list(value) if isinstance(value, list) else [value]
        if path.filter is not None:
            elements = [e for e in elements if _matches(path.filter, e)]
        if path.sub is not None:
            elements = [_get(e, path.sub) for e in elements]
    else:
        elements = list(value) if isinstance(value, list) else [value]
    return elements


def _matches(value_filter: ValueFilter, element: object) -> bool:
    actual = _get(element, value_filter.attr)
    expected = value_filter.value
    if isinstance(expected, bool):
        return scim_bool(actual) is expected
    # The attributes such filters select on (type, display, ...) are
    # caseExact=false in RFC 7643, so compare case-insensitively.
    return isinstance(actual, str) and actual.casefold() == expected.casefold()


def _get(container: object, name: str) -> object:
    """`container[name]` with a case-insensitive key, or None."""
    if not isinstance(container, Mapping):
        return None
    if name in container:
        return container[name]
    folded = name.casefold()
    for key, value in container.items():
        if isinstance(key, str) and key.casefold() == folded:
            return value
    return None
