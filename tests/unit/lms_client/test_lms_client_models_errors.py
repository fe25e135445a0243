"""Structs, the error mapping, Retry-After parsing and the policy value, without HTTP."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import msgspec
import pytest

from lms_client import (
    MAX_RETRY_AFTER_S,
    Learner,
    LearnerWrite,
    LmsConflict,
    LmsDeferred,
    LmsError,
    LmsNotFound,
    LmsRateLimited,
    LmsRejected,
    LmsTransientError,
    LmsUnauthorized,
    LmsUnexpectedResponse,
    LmsUnsupported,
    LmsValidationError,
    RetryPolicy,
    parse_retry_after,
)
from lms_client.errors import error_for_response
from lms_client.models import decode_learner, decode_page, encode_write

LEARNER = {
    "id": 7,
    "email": "Ada@Example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "job_role": None,
    "company": "Analytical",
    "business_unit": None,
    "team": "Engines",
    "external_ref": "scim-1",
    "status": "active",
    "created_at": "2024-05-01T10:00:00Z",
    "updated_at": "2024-05-02T11:30:00.123456Z",
}


def test_learner_decodes_and_ignores_unknown_fields() -> None:
    learner = decode_learner(json.dumps({**LEARNER, "avatar": "x"}).encode())
    assert learner.id == 7
    assert learner.team == "Engines"
    assert learner.job_role is None
    assert learner.created_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_learner_rejects_unknown_status() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_learner(json.dumps({**LEARNER, "status": "deleted"}).encode())


def test_page_decodes() -> None:
    page = decode_page(json.dumps({"results": [LEARNER], "next": 2}).encode())
    assert [learner.id for learner in page.results] == [7]
    assert page.next == 2
    assert isinstance(page.results[0], Learner)


def test_write_carries_only_given_fields_and_none_as_null() -> None:
    body = encode_write(LearnerWrite(email="a@b.c", team=None))
    assert json.loads(body) == {"email": "a@b.c", "team": None}
    assert b'"team":null' in body
    assert encode_write(LearnerWrite()) == b"{}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-1", None),
        ("1.5", None),
        ("\u0663", None),  # an Arabic-Indic digit: isdigit() but not a header value
    ],
)
def test_parse_retry_after_seconds_and_garbage(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
    future = format_datetime(now + timedelta(seconds=90), usegmt=True)
    past = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(future, now=now) == 90.0
    assert parse_retry_after(past, now=now) == 0.0


@pytest.mark.parametrize(
    ("status", "body", "exc_type", "code"),
    [
        (401, b'{"error": "unauthorized"}', LmsUnauthorized, "unauthorized"),
        (404, b'{"error": "not_found"}', LmsNotFound, "not_found"),
        (415, b"", LmsUnsupported, None),
        (500, b"<html>oops</html>", LmsUnexpectedResponse, None),
        (409, b'{"error": "something_else"}', LmsUnexpectedResponse, "something_else"),
        (429, b'{"error": "rate_limited"}', LmsRateLimited, "rate_limited"),
        (502, b"<html><body>Bad Gateway</body></html>", LmsTransientError, None),
        (503, b"[1, 2]", LmsTransientError, None),
        (504, b"", LmsTransientError, None),
    ],
)
def test_error_mapping(
    status: int, body: bytes, exc_type: type[LmsError], code: str | None
) -> None:
    exc = error_for_response("GET", "/org/a/api/v1/learners/7", status, body, None)
    assert type(exc) is exc_type
    assert exc.status == status
    assert exc.error_code == code
    assert str(status) in str(exc)
    assert "GET /org/a/api/v1/learners/7" in str(exc)
    assert "html" not in str(exc).lower()


def test_validation_error_names_every_field() -> None:
    body = b'{"error": "validation_failed", "fields": {"team": ["at most 100 characters"], "email": ["not a valid address"]}}'  # noqa: E501
    exc = error_for_response("POST", "/api/v1/learners", 422, body, None)
    assert isinstance(exc, LmsValidationError)
    assert isinstance(exc, LmsRejected)
    assert exc.fields == {"team": ["at most 100 characters"], "email": ["not a valid address"]}
    assert "email: not a valid address; team: at most 100 characters" in str(exc)


@pytest.mark.parametrize("code", ["email_taken", "external_ref_taken"])
def test_conflict_carries_learner_id(code: str) -> None:
    body = json.dumps({"error": code, "learner_id": 42}).encode()
    exc = error_for_response("POST", "/api/v1/learners", 409, body, None)
    assert isinstance(exc, LmsConflict)
    assert (exc.error, exc.learner_id, exc.status) == (code, 42, 409)
    assert code in str(exc)
    assert "42" in str(exc)


def test_transient_carries_retry_after() -> None:
    exc = error_for_response("GET", "/x", 503, b"", 30.0)
    assert isinstance(exc, LmsTransientError)
    assert exc.retry_after == 30.0
    assert "retry after 30s" in str(exc)


@pytest.mark.parametrize(
    "exc",
    [
        LmsConflict("m", error="email_taken", learner_id=3),
        LmsValidationError("m", fields={"email": ["bad"]}),
        LmsDeferred(120.0, status=503),
        LmsTransientError("m", status=None, retry_after=None),
        LmsNotFound("m", status=404, error_code="not_found"),
    ],
)
def test_errors_survive_pickling(exc: LmsError) -> None:
    # arq pickles the exception that ends a job.
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is type(exc)
    assert str(copy) == str(exc)
    assert copy.__dict__ == exc.__dict__


def test_deferred_is_transient_with_retry_after() -> None:
    exc = LmsDeferred(90.0)
    assert isinstance(exc, LmsTransientError)
    assert exc.retry_after == 90.0
    assert "90" in str(exc)


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"initial_backoff": -1.0}, {"total_budget": -0.1}]
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_decodes_from_settings() -> None:
    policy = msgspec.convert({"max_attempts": 3, "total_budget": 20}, RetryPolicy)
    assert policy.max_attempts == 3
    assert policy.total_budget == 20.0


def test_parse_retry_after_caps_a_huge_wait() -> None:
    now = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
    next_year = format_datetime(now + timedelta(days=365), usegmt=True)
    assert parse_retry_after("86400") == MAX_RETRY_AFTER_S
    assert parse_retry_after(next_year, now=now) == MAX_RETRY_AFTER_S
    assert parse_retry_after(str(int(MAX_RETRY_AFTER_S) - 1)) == MAX_RETRY_AFTER_S - 1
