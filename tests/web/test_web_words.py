"""What the admin page says, as pure functions: a failure's reason in plain
words (and whether a retry can help), a log line's title, who a user is."""

from __future__ import annotations

import pytest

from api.web.events import describe_event
from api.web.pages import breaker_badge, safe_next
from api.web.people import person_of
from api.web.reasons import explain


@pytest.mark.parametrize(
    ("raw", "fix", "retry", "words"),
    [
        (
            'email: not an address (needs one "@" with text on both sides)',
            "entra",
            False,
            "email address in Entra is not a valid email address",
        ),
        (
            "last_name: required, but no source has a value (tried name.familyName)",
            "entra",
            False,
            "Entra sent no last name",
        ),
        ("first_name: 120 characters, over the limit of 100", "entra", False, "longer than"),
        (
            "LMS 422: email: invalid; first_name: too_long",
            "entra",
            False,
            "refused this user's email address, first name",
        ),
        (
            "LMS 409 email_taken: the address is held by learner 7 of user u-1; tried again "
            "when user u-1 changes or goes",
            "wait",
            False,
            "Another user of this tenant",
        ),
        ("LMS 409 email_taken: held by learner 9", "lms", True, "Another learner in the LMS"),
        ("LMS 401: unauthorized (check the tenant's LMS API key)", "key", False, "API key"),
        ("LMS 503: service unavailable", "retry", True, "(503)"),
        ("unexpected error: TimeoutError: read timed out", "retry", True, "unexpected error"),
        ("user deactivated; not synced: LMS 422: email: invalid", "entra", False, "refused"),
    ],
)
def test_each_reason_in_plain_words(raw: str, fix: str, retry: bool, words: str) -> None:
    reason = explain(raw)
    assert reason is not None
    assert (reason.fix, reason.retry) == (fix, retry)
    assert words in reason.summary
    assert reason.action
    assert reason.raw == raw
    assert "_" not in reason.summary.replace(raw, "")  # no developer terms


def test_no_reason_is_none() -> None:
    assert explain("") is None
    assert explain(None) is None


def test_log_lines_read_as_sentences() -> None:
    assert describe_event({"event": "job_started", "job_try": "1"})["title"] == "Sync started"
    lms = {"event": "lms", "call": "POST /learners/{id}/deactivate", "status": "200"}
    assert describe_event(lms)["title"] == "Learner deactivated in the LMS"
    refused = describe_event({"event": "lms", "call": "POST /learners", "status": "422"})
    assert (refused["title"], refused["tone"]) == ("The LMS refused POST /learners (422)", "bad")
    assert describe_event({"event": "something_new"})["title"] == "Something new"


def test_a_person_is_named_by_display_name_and_user_name() -> None:
    doc = {
        "userName": "ada@entra.example",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": "x@example.com"}, {"value": "ada@example.com", "primary": True}],
    }
    person = person_of("id-1", doc)
    assert (person.display_name, person.user_name, person.email, person.label) == (
        "Ada Lovelace",
        "ada@entra.example",
        "ada@example.com",
        "ada@entra.example",
    )
    assert person_of("id-2", {"displayName": " Grace ", "userName": "g"}).display_name == "Grace"
    assert person_of("id-3", None).label == "id-3"


def test_the_breaker_badge_tells_the_true_state() -> None:
    on = {"tripped": False, "config": {"enabled": True}}
    assert breaker_badge(on) == ("on", "good")
    assert breaker_badge({**on, "config": {"enabled": False}}) == ("off", "warn")
    approved = {**on, "approved_until": "2026-01-02T10:30:00.000Z"}
    assert breaker_badge(approved) == ("approved until 10:30 UTC", "warn")
    assert breaker_badge({**on, "tripped": True, "held": 3}) == ("tripped: 3 held", "bad")
    # Held users still waiting for a decision, the trip itself over: still tripped.
    assert breaker_badge({**on, "mode": "tripped", "held": 2}) == ("tripped: 2 held", "bad")


def test_safe_next_takes_only_pages_of_this_site() -> None:
    assert safe_next("/admin/tenants/acme?q=a#x") == "/admin/tenants/acme?q=a#x"
    assert safe_next("/admin") == "/admin"
    for bad in ("//x", "/adminx", "/admin/../x", "/admin/v1/x", "/admin\\x", "http://x/admin", ""):
        assert safe_next(bad) is None, bad
