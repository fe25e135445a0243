"""Every error the LMS client raises, documented in one place.

    LmsError                      base of everything below
    ├── LmsTransientError         a fault, not an answer: retried inside the call
    │   ├── LmsRateLimited        429
    │   ├── LmsNoAnswer           no answer at all: a timeout or a failed connection
    │   └── LmsDeferred           a Retry-After too long to wait out in one call
    └── LmsRejected               an answer: never retried, a retry gets the same
        ├── LmsValidationError    422, with the LMS's reasons per field
        ├── LmsConflict           409 email_taken / external_ref_taken, with learner_id
        ├── LmsNotFound           404 (unknown learner or organisation)
        ├── LmsUnauthorized       401 (missing or wrong API key)
        ├── LmsUnsupported        415 (content type)
        └── LmsUnexpectedResponse any other status, or a body that is not what
                                  docs/lms-contract.md promises

LmsTransientError covers transport errors and timeouts (status None), 429,
502, 503 and 504 (docs/lms-contract.md, "Limits and failures"). Messages name the
method, path, status, the LMS's error code and field reasons so that ops can
act on them; they never carry headers (the API key), query strings (emails)
or bodies, and a value the request sent that a reason echoes is written as
`<value>`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from lms_client.models import LearnerId

__all__ = [
    "ConflictCode",
    "LmsConflict",
    "LmsDeferred",
    "LmsError",
    "LmsNoAnswer",
    "LmsNotFound",
    "LmsRateLimited",
    "LmsRejected",
    "LmsTransientError",
    "LmsUnauthorized",
    "LmsUnexpectedResponse",
    "LmsUnsupported",
    "LmsValidationError",
    "error_for_response",
]

ConflictCode = Literal["email_taken", "external_ref_taken"]

TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


def _rebuild(cls: type[LmsError], args: tuple[Any, ...], state: dict[str, Any]) -> LmsError:
    exc = cls.__new__(cls, *args)
    Exception.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


class LmsError(Exception):
    """Base of every error the LMS client raises.

    `status` is the HTTP status, or None when no answer came; `error_code` is
    the LMS's `error` field when its body had one.
    """

    def __init__(
        self, message: str, *, status: int | None = None, error_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors break Exception's default pickling, and
        # arq pickles the exceptions that end a job.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class LmsTransientError(LmsError):
    """A fault worth retrying: no answer, 429, 502, 503 or 504.

    `retry_after` is the server's Retry-After in seconds, when it sent a
    usable one. Raised out of a call only once the retry policy gave up.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, error_code=error_code)
        self.retry_after = retry_after


class LmsNoAnswer(LmsTransientError):
    """No answer at all (status None): a timeout, a refused or dropped
    connection. An LMS that keeps giving none is paused (worker/sync.py)."""


class LmsRateLimited(LmsTransientError):
    """429: over the organisation's rate limit."""


class LmsDeferred(LmsTransientError):
    """The LMS asked for a wait longer than one call may spend.

    Raised at once, without waiting, so that the caller (an arq job) can
    defer itself by `retry_after` seconds and free the worker.
    """

    retry_after: float

    def __init__(
        self, retry_after: float, message: str | None = None, *, status: int | None = None
    ) -> None:
        super().__init__(
            message or f"LMS asked to retry after {retry_after:g}s; deferring",
            status=status,
            retry_after=retry_after,
        )


class LmsRejected(LmsError):
    """An answer from the LMS, not a fault: retrying would get the same answer."""

    status: int

    def __init__(self, message: str, *, status: int, error_code: str | None = None) -> None:
        super().__init__(message, status=status, error_code=error_code)


class LmsValidationError(LmsRejected):
    """422: `fields` maps each bad field to the LMS's reasons."""

    def __init__(self, message: str, *, fields: dict[str, list[str]]) -> None:
        super().__init__(message, status=422, error_code="validation_failed")
        self.fields = fields


class LmsConflict(LmsRejected):
    """409: the email or external_ref belongs to learner `learner_id`.

    On create this means "the learner may already exist" (perhaps created by
    this very call before its answer was lost): read that learner and adopt
    or report it, never create a second one.
    """

    error: ConflictCode

    def __init__(self, message: str, *, error: ConflictCode, learner_id: int) -> None:
        super().__init__(message, status=409, error_code=error)
        self.error = error
        self.learner_id = learner_id


class LmsNotFound(LmsRejected):
    """404: no such learner, or no such organisation at this base URL."""


class LmsUnauthorized(LmsRejected):
    """401: the API key is missing or wrong for this organisation."""


class LmsUnsupported(LmsRejected):
    """415: the LMS refused the content type (a client bug, not bad data)."""


class LmsUnexpectedResponse(LmsRejected):
    """Any status docs/lms-contract.md does not name, or a body that does not decode."""


class _ErrorBody(msgspec.Struct):
    error: str | None = None
    learner_id: LearnerId | None = None
    fields: dict[str, list[str]] | None = None


_error_decoder = msgspec.json.Decoder(_ErrorBody)


def _decode_error_body(body: bytes) -> _ErrorBody:
    """Decode an error body; proxies answer with nothing or HTML, so never fail."""
    try:
        return _error_decoder.decode(body)
    except msgspec.DecodeError:  # ValidationError is a DecodeError too
        return _ErrorBody()


def _format_fields(fields: dict[str, list[str]]) -> str:
    return "; ".join(f"{name}: {', '.join(reasons)}" for name, reasons in sorted(fields.items()))


def _sent_values(sent: bytes | None) -> list[str]:
    """The text values of the request body, longest first."""
    if not sent:
        return []
    try:
        body = msgspec.json.decode(sent)
    except msgspec.DecodeError:
        return []
    values = body.values() if isinstance(body, dict) else []
    return sorted({v for v in values if isinstance(v, str) and v.strip()}, key=len, reverse=True)


def _redacted(fields: dict[str, list[str]], sent: bytes | None) -> dict[str, list[str]]:
    """The LMS's reasons without the values we sent (an LMS may echo what it
    refused, and a reason ends up in the user's status and log)."""
    values = _sent_values(sent)
    if not values:
        return fields
    pattern = re.compile("|".join(re.escape(v) for v in values), re.IGNORECASE)
    return {
        name: [pattern.sub("<value>", reason) for reason in reasons]
        for name, reasons in fields.items()
    }


def error_for_response(
    method: str,
    path: str,
    status: int,
    body: bytes,
    retry_after: float | None,
    sent: bytes | None = None,
) -> LmsError:
    """Map a non-2xx answer to its exception; `path` must carry no query
    string; `sent` (the request body) is kept out of the LMS's reasons."""
    parsed = _decode_error_body(body)
    code = parsed.error
    where = f"{method} {path}: LMS answered {status}"
    said = f"{where} {code}" if code else where
    if status in TRANSIENT_STATUSES:
        wait = f" (retry after {retry_after:g}s)" if retry_after is not None else ""
        cls = LmsRateLimited if status == 429 else LmsTransientError
        return cls(f"{said}{wait}", status=status, error_code=code, retry_after=retry_after)
    if status == 422:
        fields = _redacted(parsed.fields or {}, sent)
        detail = f": {_format_fields(fields)}" if fields else ""
        return LmsValidationError(f"{said}{detail}", fields=fields)
    if (
        status == 409
        and code in ("email_taken", "external_ref_taken")
        and parsed.learner_id is not None
    ):
        return LmsConflict(
            f"{said} (learner {parsed.learner_id})",
            error="email_taken" if code == "email_taken" else "external_ref_taken",
            learner_id=parsed.learner_id,
        )
    simple: dict[int, type[LmsRejected]] = {
        404: LmsNotFound,
        401: LmsUnauthorized,
        415: LmsUnsupported,
    }
    return simple.get(status, LmsUnexpectedResponse)(said, status=status, error_code=code)
