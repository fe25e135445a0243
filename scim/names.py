"""Attribute names to schema definitions (RFC 7644 §3.10, RFC 7643 §2.1).

Names are case-insensitive and may be URN-qualified (`urn:...:User:department`)
or dotted (`name.givenName`). Everything that takes a name from a client, a
`?attributes=` list, a PATCH value key, a PATCH path, goes through here so
all of them agree on what a name means.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from scim.ast import AttrPath
from scim.schema import COMMON_ATTRIBUTES, Attribute, ResourceType


class Target(NamedTuple):
    """Where a name points in a canonical document.

    `container` is None for core/common attributes and the extension URN
    otherwise; `attribute` None means the whole extension object; `sub` is the
    sub-attribute of a complex attribute, when the name had one.
    """

    container: str | None
    attribute: Attribute | None
    sub: Attribute | None = None


def split_attr_name(rtype: ResourceType, name: str) -> AttrPath:
    """`[urn:]attr[.sub]` to an AttrPath, recognising only this resource type's URNs.

    A URN has colons and dots of its own ("...:2.0:User"), so the prefix is
    matched against the schemas we serve (RFC 7644 §3.10) rather than parsed.
    """
    urn: str | None = None
    rest = name
    if ":" in name:  # every URN prefix has colons; plain names skip the search
        lowered = name.lower()
        for prefix, schema_id in rtype.urn_prefixes:
            if lowered.startswith(prefix):
                urn, rest = schema_id, name[len(schema_id) + 1 :]
                break
    attr, _, sub = rest.partition(".")
    return AttrPath(attr=attr, sub_attr=sub or None, urn=urn)


def resolve_path(rtype: ResourceType, path: AttrPath) -> Target | None:
    """The Target an AttrPath names, or None when this resource type has no such attribute."""
    if not path.attr:
        if path.urn is None or path.sub_attr is not None:
            return None
        ext = rtype.extension(path.urn)
        return Target(ext.id, None) if ext is not None else None
    ref = rtype.lookup(path.attr, path.urn)
    if ref is None:
        return None
    if path.sub_attr is None:
        return Target(ref.container, ref.attribute)
    sub = ref.attribute.sub(path.sub_attr) if ref.attribute.type == "complex" else None
    return Target(ref.container, ref.attribute, sub) if sub is not None else None


# Longer names are resolved without the cache, so hostile keys cannot pin megabytes in it;
# every name we serve is far shorter.
_MAX_CACHED_NAME = 200


def resolve_name(rtype: ResourceType, name: str) -> Target | None:
    """The Target a textual name (`userName`, `name.givenName`, a URN...) points at.

    Cached: every key of every POST, PUT and patched document is resolved, and
    clients send the same few dozen names over and over.
    """
    if len(name) > _MAX_CACHED_NAME:
        return _resolve_name(rtype, name)
    return _cached_resolve_name(rtype, name)


def _resolve_name(rtype: ResourceType, name: str) -> Target | None:
    ext = rtype.extension(name)
    if ext is not None:
        return Target(ext.id, None)
    return resolve_path(rtype, split_attr_name(rtype, name))


_cached_resolve_name = functools.lru_cache(maxsize=4096)(_resolve_name)


def all_attributes(rtype: ResourceType) -> list[tuple[str | None, Attribute]]:
    """Every top-level attribute of the resource type with its container."""
    found: list[tuple[str | None, Attribute]] = [(None, a) for a in COMMON_ATTRIBUTES]
    found.extend((None, a) for a in rtype.schema.attributes)
    for ext in rtype.extensions:
        found.extend((ext.id, a) for a in ext.attributes)
    return found
