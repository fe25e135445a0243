"""The LMS's learner as msgspec Structs (docs/lms-contract.md, "The learner").

Field names are the LMS's own snake_case, so no renames are needed. Decoders
and the encoder are built once at import: building them per call is the
costly part of msgspec (its perf tips say so).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

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


#: A learner id as the LMS must send it: a positive integer. Anything else is
#: refused at decoding, so no odd value reaches a link or a log line.
LearnerId = Annotated[int, msgspec.Meta(ge=1)]
#: `external_ref` within the LMS's own limit (docs/lms-contract.md): a longer one is
#: not an answer this contract allows.
ExternalRef = Annotated[str, msgspec.Meta(max_length=255)]


class Learner(msgspec.Struct, frozen=True, kw_only=True):
    """One learner as the LMS answers it; unknown fields are ignored.

    The LMS is outside the bridge's trust (docs/architecture.md, invariant
    10): its values are typed and bounded here, and `external_ref` is checked
    again (`shadow.keys.is_resource_id`) before it names anything in Redis.
    """

    id: LearnerId
    email: str
    first_name: str
    last_name: str
    job_role: str | None
    company: str | None
    business_unit: str | None
    team: str | None
    external_ref: ExternalRef | None
    status: LearnerStatus
    created_at: datetime
    updated_at: datetime


class LearnerPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of the list endpoint; `next` is the next page number or None.

    `invalid` counts the page's entries that are not learners as the
    contract describes them: they are left out, so one bad row does not
    stop a scan of the whole organisation.
    """

    results: list[Learner]
    next: int | None
    invalid: int = 0


class _RawPage(msgspec.Struct, frozen=True, kw_only=True):
    results: list[msgspec.Raw]
    next: Annotated[int, msgspec.Meta(ge=1)] | None


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
_page_decoder = msgspec.json.Decoder(_RawPage)
_encoder = msgspec.json.Encoder()


def decode_learner(body: bytes) -> Learner:
    """Decode one learner; raises msgspec.DecodeError/ValidationError on bad input."""
    return _learner_decoder.decode(body)


def decode_page(body: bytes) -> LearnerPage:
    """Decode one list page, leaving out (and counting) entries that are not
    learners; raises msgspec.DecodeError/ValidationError when the page itself
    is malformed."""
    raw = _page_decoder.decode(body)
    learners: list[Learner] = []
    for row in raw.results:
        try:
            learners.append(_learner_decoder.decode(row))
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
    return LearnerPage(results=learners, next=raw.next, invalid=len(raw.results) - len(learners))


def encode_write(write: LearnerWrite) -> bytes:
    """Encode a write body as JSON, leaving UNSET fields out."""
    return _encoder.encode(write)
