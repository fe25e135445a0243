"""The LMS's learner as msgspec Structs (lms-api.md, "The learner").

Field names are the LMS's own snake_case, so no renames are needed. Decoders
and the encoder are built once at import: building them per call is the
costly part of msgspec (its perf tips say so).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "Learner",
    "LearnerPage",
    "LearnerStatus",
    "LearnerWrite",
    "decode_learner",
    "decode_page",
    "encode_write",
]

LearnerStatus = Literal["active", "deactivated"]


class Learner(msgspec.Struct, frozen=True, kw_only=True):
    """One learner as the LMS answers it; unknown fields are ignored."""

    id: int
    email: str
    first_name: str
    last_name: str
    job_role: str | None
    company: str | None
    business_unit: str | None
    team: str | None
    external_ref: str | None
    status: LearnerStatus
    created_at: datetime
    updated_at: datetime


class LearnerPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of the list endpoint; `next` is the next page number or None."""

    results: list[Learner]
    next: int | None


class LearnerWrite(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A POST or PATCH body: only the fields that were given are sent.

    UNSET (the default) leaves a field out of the body, so a PATCH changes
    only what the caller named; None is sent as JSON null and clears an
    optional field. The LMS answers 422 to unknown fields, which is why this
    Struct lists exactly the writable ones.
    """

    email: str | UnsetType = UNSET
    first_name: str | UnsetType = UNSET
    last_name: str | UnsetType = UNSET
    job_role: str | UnsetType | None = UNSET
    company: str | UnsetType | None = UNSET
    business_unit: str | UnsetType | None = UNSET
    team: str | UnsetType | None = UNSET
    external_ref: str | UnsetType | None = UNSET


_learner_decoder = msgspec.json.Decoder(Learner)
_page_decoder = msgspec.json.Decoder(LearnerPage)
_encoder = msgspec.json.Encoder()


def decode_learner(body: bytes) -> Learner:
    """Decode one learner; raises msgspec.DecodeError/ValidationError on bad input."""
    return _learner_decoder.decode(body)


def decode_page(body: bytes) -> LearnerPage:
    """Decode one list page; raises msgspec.DecodeError/ValidationError on bad input."""
    return _page_decoder.decode(body)


def encode_write(write: LearnerWrite) -> bytes:
    """Encode a write body as JSON, leaving UNSET fields out."""
    return _encoder.encode(write)
