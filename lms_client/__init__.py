"""Typed async client for the legacy LMS REST API (see docs/lms-contract.md).

Knows nothing about SCIM. Public names are re-exported here; the error tree
is documented in `lms_client.errors`.
"""

from .client import DEFAULT_TIMEOUT, Limiter, LmsClient, OnCall
from .deadline import call_deadline, time_left
from .errors import (
    ConflictCode,
    LmsConflict,
    LmsDeferred,
    LmsError,
    LmsNoAnswer,
    LmsNotFound,
    LmsRateLimited,
    LmsRejected,
    LmsTransientError,
    LmsUnauthorized,
    LmsUnexpectedResponse,
    LmsUnsupported,
    LmsValidationError,
)
from .models import Learner, LearnerPage, LearnerStatus, LearnerWrite
from .retry import MAX_RETRY_AFTER_S, RetryPolicy, Sleep, build_retrying, parse_retry_after

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_RETRY_AFTER_S",
    "ConflictCode",
    "Learner",
    "LearnerPage",
    "LearnerStatus",
    "LearnerWrite",
    "Limiter",
    "LmsClient",
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
    "OnCall",
    "RetryPolicy",
    "Sleep",
    "build_retrying",
    "call_deadline",
    "parse_retry_after",
    "time_left",
]
