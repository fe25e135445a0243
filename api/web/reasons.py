"""A failed user's reason in plain words, and what will cure it.

The worker records reasons for operators and logs ("email: not an address
(needs one "@" ...)", "LMS 422: email: invalid", "LMS 409 email_taken: ...",
"unexpected error: ..."). The page shows each as a sentence a customer's
admin can act on, and says who can fix it: a data problem only a change in
Entra cures (a retry would fail the same way, so the page offers none), a
conflict that clears by itself, the tenant's LMS key, or a fault a retry
may get past (docs/admin-page.md).
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

__all__ = ["Reason", "explain"]

Fix = Literal["entra", "wait", "lms", "key", "retry"]

_FIELD_NAMES = {
    "email": "email address",
    "first_name": "first name",
    "last_name": "last name",
    "external_ref": "user id",
    "active": "active flag",
}
_LMS_STATUS = re.compile(r"^LMS (\d{3})\b:? ?(.*)$", re.S)


class Reason(msgspec.Struct, frozen=True, kw_only=True):
    #: What went wrong, in a sentence.
    summary: str
    #: What to do about it, in a sentence.
    action: str
    fix: Fix
    #: Whether a Retry button can help (never for data only Entra can fix).
    retry: bool
    #: The reason as the worker recorded it, for the operator and support.
    raw: str


def _field(text: str) -> str:
    name = text.split(":", 1)[0].strip()
    return _FIELD_NAMES.get(name, name.replace("_", " "))


def _data(raw: str, summary: str) -> Reason:
    return Reason(
        summary=summary,
        action="Fix this user in Entra; the next change Entra sends is synced by itself.",
        fix="entra",
        retry=False,
        raw=raw,
    )


def explain(raw: str | None) -> Reason | None:
    """The plain-words reason of a recorded failure, or None without one."""
    if not raw:
        return None
    text = raw.split("; not synced: ", 1)[-1].strip()
    lms = _LMS_STATUS.match(text)
    if lms is None:
        if text.startswith("unexpected error"):
            return Reason(
                summary="The bridge hit an unexpected error while syncing this user.",
                action="Retry; if it fails again, tell the operator (the error is logged).",
                fix="retry",
                retry=True,
                raw=raw,
            )
        if "not an address" in text:
            return _data(raw, f"The {_field(text)} in Entra is not a valid email address.")
        if "required, but no source has a value" in text:
            return _data(raw, f"Entra sent no {_field(text)}, and the LMS needs one.")
        if "over the limit" in text:
            return _data(raw, f"The {_field(text)} in Entra is longer than the LMS accepts.")
        if ": " in text:
            return _data(
                raw, f"The {_field(text)} in Entra cannot be used: {text.split(': ', 1)[1]}."
            )
        return Reason(summary=text, action="Retry.", fix="retry", retry=True, raw=raw)
    status, rest = int(lms[1]), lms[2]
    if status in (400, 422):
        fields = sorted({_field(part) for part in rest.split(";") if ":" in part})
        what = ", ".join(fields) if fields else "data"
        return _data(raw, f"The LMS refused this user's {what} as invalid.")
    if status == 409:
        if "tried again when user" in rest:
            return Reason(
                summary="Another user of this tenant still has this email address in the LMS.",
                action="Nothing to do: it syncs by itself once that user changes or goes.",
                fix="wait",
                retry=False,
                raw=raw,
            )
        return Reason(
            summary="Another learner in the LMS, not one of this tenant's users, has this email.",
            action="Change the address in Entra, or free it in the LMS, then retry.",
            fix="lms",
            retry=True,
            raw=raw,
        )
    if status in (401, 403):
        return Reason(
            summary="The LMS refuses the tenant's API key.",
            action="Change the LMS key under Settings; waiting users are then sent by themselves.",
            fix="key",
            retry=False,
            raw=raw,
        )
    return Reason(
        summary=f"The LMS answered with an error ({status}).",
        action="Retry; if it keeps failing, the LMS may be down.",
        fix="retry",
        retry=True,
        raw=raw,
    )
