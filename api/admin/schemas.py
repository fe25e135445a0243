"""Request bodies of the admin API, as msgspec Structs decoded once per request.

Unknown fields are refused, so a typo is an error and never a silent no-op.
Responses are plain JSON objects built by ops/views.py (shared with
the CLI's `--json` output). Routes take their body as `data` read by
`json_body(<Struct>)`, so the OpenAPI document describes it.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

import msgspec
from litestar import Request
from litestar.dto import MsgspecDTO
from litestar.typing import FieldDefinition
from msgspec import UNSET, UnsetType

from api.admin.errors import AdminError
from api.admin.policy import (
    MAX_LABEL_LENGTH,
    MAX_NAME_LENGTH,
    MAX_SECRET_LENGTH,
    MAX_URL_LENGTH,
    URL_PATTERN,
)
from core.json_guard import json_problem
from shadow.tenants import SLUG_RE

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.openapi.spec import Reference, Schema

__all__ = [
    "BreakerUpdate",
    "JsonBody",
    "KeyIssue",
    "ReconcileRequest",
    "ReplayRequest",
    "TenantCreate",
    "TenantUpdate",
    "TokenIssue",
    "decode_body",
    "guard_body",
    "guard_json",
    "json_body",
    "set_fields",
]

T = TypeVar("T")


# Bounded free text (api/admin/policy.py): too long is a 400 naming the field.
Slug = Annotated[str, msgspec.Meta(max_length=63, pattern=SLUG_RE.pattern)]
Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME_LENGTH)]
Url = Annotated[str, msgspec.Meta(max_length=MAX_URL_LENGTH, pattern=URL_PATTERN)]
Secret = Annotated[str, msgspec.Meta(max_length=MAX_SECRET_LENGTH)]
Label = Annotated[str, msgspec.Meta(max_length=MAX_LABEL_LENGTH)]


class TenantCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    slug: Slug
    lms_url: Url
    lms_api_key: Secret
    name: Name = ""
    lms_rate: float = 20.0
    lms_burst: int = 40
    enabled: bool = True


class TenantUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Any subset of a tenant's settings. `lms_api_key` is write-only."""

    name: Name | UnsetType = UNSET
    lms_url: Url | UnsetType = UNSET
    lms_api_key: Secret | UnsetType = UNSET
    lms_rate: float | UnsetType = UNSET
    lms_burst: int | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    scim_rate: float | UnsetType = UNSET
    scim_burst: int | UnsetType = UNSET


class KeyIssue(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of a SCIM token or admin key issue (optional): a label, and
    it may expire."""

    label: Label = ""
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class TokenIssue(KeyIssue, kw_only=True, forbid_unknown_fields=True):
    """Body of a SCIM token issue (optional)."""


class ReplayRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Replay one user, or (without `user_id`) every failed user."""

    user_id: str | None = None


class ReconcileRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`repair: false` only reports the differences."""

    repair: bool = True


class BreakerUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Any subset of a tenant's breaker thresholds."""

    enabled: bool | UnsetType = UNSET
    share: float | UnsetType = UNSET
    min_learners: int | UnsetType = UNSET
    window_s: int | UnsetType = UNSET


def guard_json(body: bytes) -> None:
    """The shared size and depth guard (core/json_guard.py) in the admin
    API's error shape."""
    if problem := json_problem(body, None):  # the size: Litestar's request_max_body_size
        raise AdminError(problem.status, problem.detail)


async def guard_body(request: Request[Any, Any, Any]) -> None:
    """The admin router's `before_request` hook: every body passes
    `guard_json` before Litestar decodes it into a route's `data` (the
    hook runs after the guards, before the handler's arguments are read)."""
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        guard_json(await request.body())


def decode_body(body: bytes, kind: type[T], *, empty_ok: bool = False) -> T:
    """Decode a JSON body into `kind`; a 400 naming the problem otherwise."""
    if not body.strip():
        if empty_ok:
            return msgspec.convert({}, kind)
        raise AdminError(400, "a JSON object body is required")
    guard_json(body)  # also guarded by the router's hook: a reader may be used alone
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise AdminError(400, f"invalid body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise AdminError(400, f"the body is not valid JSON: {exc}") from None


def set_fields(update: msgspec.Struct) -> dict[str, Any]:
    """The fields a partial update actually gives."""
    return {
        name: value
        for name in update.__struct_fields__
        if (value := getattr(update, name)) is not UNSET
    }


S = TypeVar("S", bound=msgspec.Struct)


class JsonBody(MsgspecDTO[S], Generic[S]):
    """How a typed admin route reads its body: strictly, as `decode_body`
    does (an unknown field or a wrong type is a 400, never coerced), and
    described by the Struct itself in the OpenAPI document
    (api/admin/openapi.py). An empty body gives the handler's default."""

    def decode_bytes(self, value: bytes) -> Any:
        return decode_body(value, self.model_type)

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        return schema_creator.for_field_definition(FieldDefinition.from_annotation(cls.model_type))


@cache
def json_body(kind: type[S]) -> type[JsonBody[S]]:
    """The body reader of a route whose `data` is a `kind` (one class per Struct)."""
    reader: type[JsonBody[S]] = JsonBody[kind]  # type: ignore[valid-type]
    return reader
