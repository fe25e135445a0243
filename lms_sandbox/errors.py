"""The LMS's error answers (docs/lms-contract.md, "Errors") as exceptions, and the one
handler that renders them.

Handlers and validation raise; `exception_handlers()` turns every error,
Litestar's own 404/405/500 included, into the LMS's terse `{"error": ...}`
body, so no framework error page or traceback ever reaches a caller.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

__all__ = [
    "Conflict",
    "LmsError",
    "UnsupportedMediaType",
    "ValidationFailed",
    "exception_handlers",
    "not_found",
]

FieldErrors = dict[str, list[str]]

_log = logging.getLogger("lms_sandbox")

_SLUGS = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class LmsError(Exception):
    """An answer other than success: status, JSON body and extra headers."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {body.get('error')}")
        self.status = status
        self.body = body
        self.headers = headers or {}


class ValidationFailed(LmsError):
    """422: names every bad field with its reasons (docs/lms-contract.md)."""

    def __init__(self, fields: FieldErrors) -> None:
        super().__init__(422, {"error": "validation_failed", "fields": fields})
        self.fields = fields


class Conflict(LmsError):
    """409: `email_taken` or `external_ref_taken`, naming the learner that holds the key."""

    def __init__(self, error: str, learner_id: int) -> None:
        super().__init__(409, {"error": error, "learner_id": learner_id})
        self.error = error
        self.learner_id = learner_id


class UnsupportedMediaType(LmsError):
    """415: a body whose Content-Type is not JSON."""

    def __init__(self) -> None:
        super().__init__(415, {"error": "unsupported_media_type"})


def not_found() -> LmsError:
    """404 for an unknown organisation, learner or path."""
    return LmsError(404, {"error": "not_found"})


def _render_lms_error(_: Request[Any, Any, Any], exc: LmsError) -> Response[dict[str, Any]]:
    return Response(exc.body, status_code=exc.status, headers=exc.headers)


def _render_http_exception(
    _: Request[Any, Any, Any], exc: HTTPException
) -> Response[dict[str, Any]]:
    # Litestar's own errors (unknown path, wrong method, body too large) in the LMS's shape;
    # its `Allow` header on 405 is kept because callers may read it.
    slug = _SLUGS.get(exc.status_code, "error")
    return Response({"error": slug}, status_code=exc.status_code, headers=exc.headers)


def _render_crash(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    _log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response({"error": "internal_error"}, status_code=500)


def exception_handlers() -> ExceptionHandlersMap:
    """The app-wide handlers: LMS errors, Litestar's HTTP errors, then anything else as 500."""
    return {
        LmsError: _render_lms_error,
        HTTPException: _render_http_exception,
        500: _render_crash,
    }
