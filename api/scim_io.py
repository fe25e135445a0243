"""Decoding SCIM requests and encoding SCIM responses.

Kept apart from the handlers so every route accepts the same media types,
enforces the same limits and answers the same `application/scim+json`.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response

from scim.errors import InvalidSyntax, PayloadTooLarge, PreconditionFailed, UnsupportedMediaType

SCIM_MEDIA_TYPE = "application/scim+json"
_ACCEPTED_TYPES = ("application/scim+json", "application/json")
MAX_JSON_DEPTH = 64

_encoder = msgspec.json.Encoder()


def encode(body: object) -> bytes:
    return _encoder.encode(body)


def scim_response(
    body: object,
    status: int = 200,
    *,
    etag: str | None = None,
    location: str | None = None,
) -> Response[bytes]:
    headers: dict[str, str] = {}
    if etag:
        headers["ETag"] = etag
    if location:
        headers["Location"] = location
    return Response(
        content=encode(body), status_code=status, media_type=SCIM_MEDIA_TYPE, headers=headers
    )


def empty_response(status: int = 204, *, etag: str | None = None) -> Response[bytes]:
    headers = {"ETag": etag} if etag else {}
    return Response(content=b"", status_code=status, headers=headers, media_type=SCIM_MEDIA_TYPE)


def header(request: Request[Any, Any, Any], name: bytes) -> str | None:
    """A request header read straight from the ASGI scope (no header mapping
    built on the hot path); repeated fields are joined with ", " as HTTP
    allows for list-valued ones (RFC 9110 §5.3). `name` is lower-case."""
    found: str | None = None
    for key, value in request.scope["headers"]:
        if key.lower() == name:
            text = value.decode("latin-1")
            found = text if found is None else f"{found}, {text}"
    return found


def depth_ok(raw: bytes) -> bool:
    """Cheap nesting guard before decoding: brackets outside strings."""
    if raw.count(b"{") + raw.count(b"[") <= MAX_JSON_DEPTH:
        return True  # too few brackets to nest that deep, wherever they are
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return False
        elif byte in (0x7D, 0x5D):
            depth -= 1
    return True


async def read_json_object(request: Request[Any, Any, Any], max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object, or a SCIM error (415, 413, 400 invalidSyntax)."""
    content_type = header(request, b"content-type") or ""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in _ACCEPTED_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type must be {SCIM_MEDIA_TYPE} or application/json, "
            f"not {media_type or 'missing'}"
        )
    declared = header(request, b"content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body over the {max_bytes}-byte limit")
    raw = await request.body()
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"request body over the {max_bytes}-byte limit")
    if not depth_ok(raw):
        raise InvalidSyntax(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidSyntax(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidSyntax("request body must be a JSON object")
    return body


def etag_of(version: int) -> str:
    """Weak entity tag (RFC 7644 §3.14): the shadow's version counter."""
    return f'W/"{version}"'


def _tags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


def _same(tag: str, version: int) -> bool:
    bare = tag[2:] if tag.startswith(("W/", "w/")) else tag
    return bare == f'"{version}"'


def version_matches(request: Request[Any, Any, Any], current: int) -> bool:
    """True unless an If-Match header names only other versions."""
    value = header(request, b"if-match")
    if value is None:
        return True
    tags = _tags(value)
    return "*" in tags or any(_same(t, current) for t in tags)


def expected_version(request: Request[Any, Any, Any], current: int) -> None:
    """Honour If-Match on writes: 412 when no listed tag matches the current version."""
    if not version_matches(request, current):
        raise PreconditionFailed(f"If-Match does not match the current version {etag_of(current)}")


def not_modified(request: Request[Any, Any, Any], current: int) -> bool:
    """If-None-Match on reads: True when the client's copy is current (answer 304)."""
    value = header(request, b"if-none-match")
    if value is None:
        return False
    tags = _tags(value)
    return "*" in tags or any(_same(t, current) for t in tags)
