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
from litestar.dto import MsgspecDTO
from litestar.typing import FieldDefinition
from msgspec import UNSET, UnsetType

from api.admin.errors import AdminError

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
    "json_body",
    "set_fields",
]

T = TypeVar("T")


class TenantCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    slug: str
    lms_url: str
    lms_api_key: str
    name: str = ""
    lms_rate: float = 20.0
    lms_burst: int = 40
    enabled: bool = True


class TenantUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Any subset of a tenant's settings. `lms_api_key` is write-only."""

    name: str | UnsetType = UNSET
    lms_url: str | UnsetType = UNSET
    lms_api_key: str | UnsetType = UNSET
    lms_rate: float | UnsetType = UNSET
    lms_burst: int | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    scim_rate: float | UnsetType = UNSET
    scim_burst: int | UnsetType = UNSET


class KeyIssue(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of a token or admin-key issue (optional)."""

    label: str = ""


class TokenIssue(KeyIssue, kw_only=True, forbid_unknown_fields=True):
    """Body of a SCIM token issue (optional): it may expire."""

    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


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


def decode_body(body: bytes, kind: type[T], *, empty_ok: bool = False) -> T:
    """Decode a JSON body into `kind`; a 400 naming the problem otherwise."""
    if not body.strip():
        if empty_ok:
            return msgspec.convert({}, kind)
        raise AdminError(400, "a JSON object body is required")
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
