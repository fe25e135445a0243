"""A user's provisioning log in plain words.

The worker logs events by code (`job_started`, `lms` with `call` and
`status`, `held`, ...; worker/sync.py). The page shows each as a sentence,
coloured by what it means, with the recorded details (field names, status
codes, ids: never personal values) kept for support under it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["describe_event", "event_tone"]

_TITLES = {
    "scim_create": "Created in Entra",
    "scim_update": "Changed in Entra",
    "scim_delete": "Deleted in Entra",
    "job_started": "Sync started",
    "synced": "Synced to the LMS",
    "failed": "Sync failed",
    "pending": "Waiting to sync",
    "held": "Deactivation held by the breaker",
    "breaker_released": "Deactivation approved",
    "breaker_cancelled": "Deactivation cancelled: the learner stays active",
    "deferred": "Sync put off for a moment",
    "newer_version": "A newer change arrived; syncing that instead",
    "no_learner": "No learner needed (the user is inactive)",
    "replayed": "Queued again",
    "requeued": "Queued again",
    "up_to_date": "Already up to date in the LMS",
    "adopted": "Linked to a learner already in the LMS",
    "email_released": "Email address handed over to another learner",
    "reconcile_repair": "Repaired after a reconcile found a difference",
}
_CALLS = {
    "POST /learners": "Learner created in the LMS",
    "PATCH /learners/{id}": "Learner updated in the LMS",
    "GET /learners/{id}": "Learner looked up in the LMS",
    "POST /learners/{id}/deactivate": "Learner deactivated in the LMS",
    "POST /learners/{id}/reactivate": "Learner reactivated in the LMS",
}
_SHOWN_APART = ("id", "at", "event")


def event_tone(event: dict[str, str]) -> str:
    """The colour of a log line: what went wrong stands out."""
    name, status = event.get("event", ""), event.get("status", "")
    if name == "failed" or (name == "lms" and status != "deferred" and not status.startswith("2")):
        return "bad"
    if name in ("held", "breaker_cancelled", "deferred") or status == "deferred":
        return "warn"
    if name in ("synced", "adopted") or (name == "lms" and status.startswith("2")):
        return "good"
    return "plain"


def _title(event: dict[str, str]) -> str:
    name = event.get("event", "")
    if name != "lms":
        return _TITLES.get(name, name.replace("_", " ").capitalize())
    call, status = event.get("call", ""), event.get("status", "")
    if status == "deferred":
        return f"LMS call put off by pacing ({call})"
    if status.startswith("2"):
        return _CALLS.get(call, f"LMS call {call}")
    return f"The LMS refused {call} ({status})"


def describe_event(event: dict[str, str]) -> dict[str, Any]:
    details = [(k, v) for k, v in event.items() if k not in _SHOWN_APART]
    return {
        "at": event.get("at", ""),
        "title": _title(event),
        "code": event.get("event", ""),
        "tone": event_tone(event),
        "details": details,
    }
