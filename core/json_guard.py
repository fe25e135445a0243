"""The one size and nesting guard for every JSON body the bridge reads.

msgspec (like any recursive decoder) raises `RecursionError` on JSON nested
about a thousand levels deep, and a big body costs memory before it is
refused. So every body (SCIM requests, admin API requests, JSON typed into
the admin page) passes `json_problem` first; each protocol then answers in
its own error shape (a SCIM Error, the admin API's `{"error","detail"}`, an
admin page message). The limits are published in docs/operations.md and in
the SCIM ServiceProviderConfig.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["MAX_JSON_DEPTH", "JsonProblem", "depth_ok", "json_problem"]

#: Deepest nesting of objects and arrays a body may have (the body itself is one).
MAX_JSON_DEPTH = 64


class JsonProblem(msgspec.Struct, frozen=True):
    """Why a body is refused: `too_large` (HTTP 413) or `too_deep` (400)."""

    kind: Literal["too_large", "too_deep"]
    detail: str

    @property
    def status(self) -> int:
        return 413 if self.kind == "too_large" else 400


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


def json_problem(raw: bytes, max_bytes: int | None) -> JsonProblem | None:
    """Why `raw` must not be decoded, or None when it may be. `max_bytes`
    None: the server has bounded the body already (Litestar's
    `request_max_body_size`, which answers 413 itself)."""
    if max_bytes is not None and len(raw) > max_bytes:
        return JsonProblem("too_large", f"request body over the {max_bytes}-byte limit")
    if not depth_ok(raw):
        return JsonProblem("too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return None
