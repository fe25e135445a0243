"""Syntax trees for SCIM filters and attribute paths (RFC 7644 §3.4.2.2, §3.5.2).

Plain frozen Structs so the parser, the printer, the evaluator and the PATCH
engine share one vocabulary and none of them does I/O.
"""

from __future__ import annotations

from typing import Literal

import msgspec

CompareOp = Literal["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
Literal_ = str | int | float | bool | None


class AttrPath(msgspec.Struct, frozen=True):
    """`[urn:]attr[.subAttr]` as written by the client (names not yet canonical).

    `urn` is the schema URN prefix when the path was URN-qualified;
    `attr` is "" when the path names a whole extension (PATCH only).
    """

    attr: str
    sub_attr: str | None = None
    urn: str | None = None


class Compare(msgspec.Struct, frozen=True, tag="compare"):
    path: AttrPath
    op: CompareOp
    value: Literal_


class Present(msgspec.Struct, frozen=True, tag="present"):
    path: AttrPath


class And(msgspec.Struct, frozen=True, tag="and"):
    left: Filter
    right: Filter


class Or(msgspec.Struct, frozen=True, tag="or"):
    left: Filter
    right: Filter


class Not(msgspec.Struct, frozen=True, tag="not"):
    inner: Filter


class ValuePath(msgspec.Struct, frozen=True, tag="valuePath"):
    """`emails[type eq "work" and value co "@"]`: `filter`'s paths are relative
    to the elements of the multi-valued attribute named by `path`."""

    path: AttrPath
    filter: Filter


Filter = Compare | Present | And | Or | Not | ValuePath


class PatchPath(msgspec.Struct, frozen=True):
    """A PATCH `path` (RFC 7644 §3.5.2): `attr`, `attr.sub`, `urn:...:attr`,
    `attr[filter]`, `attr[filter].sub`, or a whole extension URN."""

    attr: AttrPath
    value_filter: Filter | None = None
    sub_attr: str | None = None
