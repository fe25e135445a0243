"""Request checks of docs/lms-contract.md as pure functions: content type, body,
learner fields, list query.

Each check collects every problem before raising, because the LMS's 422
names every bad field at once. Lengths are `len()` of a str, which counts
Unicode code points as the contract asks.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qsl

import msgspec

from .errors import FieldErrors, UnsupportedMediaType, ValidationFailed

__all__ = [
    "READ_ONLY_FIELDS",
    "REQUIRED_FIELDS",
    "WRITABLE_FIELDS",
    "LearnerInput",
    "ListQuery",
    "check_json_content_type",
    "decode_object",
    "is_address",
    "parse_list_query",
    "validate_learner",
]

LearnerInput = dict[str, str | None]
"""Validated writable fields of a POST or PATCH, only those the caller gave."""


class _Rule(NamedTuple):
    max_length: int
    min_length: int = 0
    nullable: bool = True


WRITABLE_FIELDS: dict[str, _Rule] = {
    "email": _Rule(254, nullable=False),
    "first_name": _Rule(100, min_length=1, nullable=False),
    "last_name": _Rule(100, min_length=1, nullable=False),
    "job_role": _Rule(100),
    "company": _Rule(100),
    "business_unit": _Rule(100),
    "team": _Rule(100),
    "external_ref": _Rule(255),
}
REQUIRED_FIELDS = ("email", "first_name", "last_name")
READ_ONLY_FIELDS = frozenset({"id", "status", "created_at", "updated_at"})

PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 200

_any_json = msgspec.json.Decoder()

# The list endpoint's parameters and the mode each belongs to; two modes at once is a 422.
_MODE_OF = {"email": "email", "external_ref": "external_ref", "page": "page", "page_size": "page"}


def check_json_content_type(content_type: str | None) -> None:
    """Raise 415 unless the media type is `application/json` (charset, if given, UTF-8)."""
    if content_type is None:
        raise UnsupportedMediaType()
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "application/json":
        raise UnsupportedMediaType()
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in {
            "utf-8",
            "utf8",
        }:
            raise UnsupportedMediaType()


def decode_object(body: bytes) -> dict[str, object]:
    """Decode a request body that must be one JSON object; anything else is 422 `fields.body`."""
    try:
        value = _any_json.decode(body)
    except msgspec.DecodeError:
        raise ValidationFailed({"body": ["not valid JSON"]}) from None
    if not isinstance(value, dict):
        raise ValidationFailed({"body": ["must be a JSON object"]})
    return value


def is_address(email: str) -> bool:
    """Exactly one `@` with text on both sides: the whole of the LMS's address rule."""
    local, at, domain = email.partition("@")
    return bool(at) and bool(local) and bool(domain) and "@" not in domain


def validate_learner(data: dict[str, object], *, partial: bool) -> LearnerInput:
    """Check a POST body (`partial=False`) or PATCH body (`partial=True`).

    Unknown and read-only fields (`status` included) are errors: the LMS
    changes status only through its two actions.
    """
    errors: FieldErrors = {}
    values: LearnerInput = {}
    for name, value in data.items():
        rule = WRITABLE_FIELDS.get(name)
        if rule is None:
            errors[name] = ["read-only field" if name in READ_ONLY_FIELDS else "unknown field"]
            continue
        problems = _check_field(name, value, rule)
        if problems:
            errors[name] = problems
        else:
            values[name] = value  # type: ignore[assignment]  # _check_field proved str | None
    if not partial:
        for name in REQUIRED_FIELDS:
            if name not in data:
                errors[name] = ["required"]
    if errors:
        raise ValidationFailed(errors)
    return values


def _check_field(name: str, value: object, rule: _Rule) -> list[str]:
    if value is None:
        return [] if rule.nullable else ["may not be null"]
    if not isinstance(value, str):
        return ["must be a string or null" if rule.nullable else "must be a string"]
    problems: list[str] = []
    if len(value) < rule.min_length:
        problems.append(f"at least {rule.min_length} character")
    if len(value) > rule.max_length:
        problems.append(f"at most {rule.max_length} characters")
    if name == "email" and not is_address(value):
        problems.append("not a valid address")
    return problems


class ListQuery(NamedTuple):
    """One of the list endpoint's three modes: by email, by external_ref, or a page."""

    email: str | None = None
    external_ref: str | None = None
    page: int = 1
    page_size: int = PAGE_SIZE_DEFAULT


def parse_list_query(query_string: str) -> ListQuery:
    """Parse the list endpoint's query; unknown, repeated, malformed or combined params are 422."""
    errors: FieldErrors = {}
    params: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        if key not in _MODE_OF:
            errors[key] = ["unknown parameter"]
        elif key in params:
            errors[key] = ["given more than once"]
        else:
            params[key] = value

    page = _positive_int(params, "page", errors, upper=None)
    page_size = _positive_int(params, "page_size", errors, upper=PAGE_SIZE_MAX)

    given = [name for name in _MODE_OF if name in params]
    if len({_MODE_OF[name] for name in given}) > 1:
        for name in given:
            others = ", ".join(o for o in given if _MODE_OF[o] != _MODE_OF[name])
            errors.setdefault(name, []).append(f"cannot be combined with {others}")
    if errors:
        raise ValidationFailed(errors)
    return ListQuery(
        email=params.get("email"),
        external_ref=params.get("external_ref"),
        page=page if page is not None else 1,
        page_size=page_size if page_size is not None else PAGE_SIZE_DEFAULT,
    )


def _positive_int(
    params: dict[str, str], name: str, errors: FieldErrors, *, upper: int | None
) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit():
        errors[name] = ["must be an integer"]
        return None
    value = int(raw)
    if value < 1 or (upper is not None and value > upper):
        errors[name] = [f"must be from 1 to {upper}" if upper else "must be at least 1"]
        return None
    return value
