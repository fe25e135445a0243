"""The sandbox's data: organisations and their learners, in memory.

Ids are assigned from 1 per organisation and learners are never deleted
(docs/lms-contract.md: no DELETE), so a learner lives at `list[id - 1]`: reads by
id and pages are slices, and lookups by email or external_ref go through
dict indexes, never scans. The store enforces uniqueness itself so the
indexes cannot disagree with the data, whoever writes (the API or the
control API). Everything here is synchronous: one write is atomic on the
event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import msgspec

from .errors import Conflict
from .validation import LearnerInput

__all__ = ["Learner", "LearnerStatus", "Organisation", "Store", "utc_now"]

LearnerStatus = Literal["active", "deactivated"]


def utc_now() -> str:
    """Now as RFC 3339 UTC with microseconds, so two writes in a row get different stamps."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Learner(msgspec.Struct, kw_only=True):
    """One learner exactly as the LMS answers it."""

    id: int
    email: str
    first_name: str
    last_name: str
    job_role: str | None = None
    company: str | None = None
    business_unit: str | None = None
    team: str | None = None
    external_ref: str | None = None
    status: LearnerStatus = "active"
    created_at: str
    updated_at: str


class Organisation:
    """One LMS organisation: its API key, its learners and their unique-key indexes.

    Methods return copies, so a caller can never change stored data by accident.
    """

    def __init__(self, name: str, api_key: str, clock: Callable[[], str]) -> None:
        self.name = name
        self.api_key = api_key
        self._clock = clock
        self._learners: list[Learner] = []
        self._by_email: dict[str, int] = {}
        self._by_ref: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._learners)

    def get(self, learner_id: int) -> Learner | None:
        stored = self._stored(learner_id)
        return None if stored is None else _copy(stored)

    def find_by_email(self, email: str) -> Learner | None:
        """Exact match after lower-casing both sides."""
        learner_id = self._by_email.get(email.lower())
        return None if learner_id is None else self.get(learner_id)

    def find_by_external_ref(self, external_ref: str) -> Learner | None:
        learner_id = self._by_ref.get(external_ref)
        return None if learner_id is None else self.get(learner_id)

    def page(self, page: int, page_size: int) -> tuple[list[Learner], bool]:
        """Learners of one page by id, and whether a later page has any."""
        start = (page - 1) * page_size
        chunk = self._learners[start : start + page_size]
        return [_copy(learner) for learner in chunk], start + page_size < len(self._learners)

    def all(self) -> list[Learner]:
        return [_copy(learner) for learner in self._learners]

    def create(self, fields: LearnerInput, status: LearnerStatus = "active") -> Learner:
        """Add a learner; `fields` must hold email, first_name and last_name (validated)."""
        email, external_ref = str(fields["email"]), fields.get("external_ref")
        self._check_unique(email, external_ref, own_id=None)
        now = self._clock()
        learner = msgspec.convert(
            {
                **fields,
                "id": len(self._learners) + 1,
                "status": status,
                "created_at": now,
                "updated_at": now,
            },
            Learner,
        )
        self._learners.append(learner)
        self._by_email[email.lower()] = learner.id
        if external_ref is not None:
            self._by_ref[external_ref] = learner.id
        return _copy(learner)

    def update(
        self, learner_id: int, fields: LearnerInput, status: LearnerStatus | None = None
    ) -> Learner | None:
        """Change the given fields (and status, when given); None when there is no such learner.

        A write that changes nothing leaves `updated_at` as it was (docs/lms-contract.md).
        """
        learner = self._stored(learner_id)
        if learner is None:
            return None
        self._check_unique(fields.get("email"), fields.get("external_ref"), own_id=learner_id)
        changes: dict[str, object] = {
            name: value for name, value in fields.items() if getattr(learner, name) != value
        }
        if status is not None and status != learner.status:
            changes["status"] = status
        if not changes:
            return _copy(learner)
        if "email" in changes:
            del self._by_email[learner.email.lower()]
            self._by_email[str(changes["email"]).lower()] = learner_id
        if "external_ref" in changes:
            if learner.external_ref is not None:
                del self._by_ref[learner.external_ref]
            if changes["external_ref"] is not None:
                self._by_ref[str(changes["external_ref"])] = learner_id
        for name, value in changes.items():
            setattr(learner, name, value)
        learner.updated_at = self._clock()
        return _copy(learner)

    def clear(self) -> None:
        """Forget every learner; ids start again from 1."""
        self._learners.clear()
        self._by_email.clear()
        self._by_ref.clear()

    def _stored(self, learner_id: int) -> Learner | None:
        if 1 <= learner_id <= len(self._learners):
            return self._learners[learner_id - 1]
        return None

    def _check_unique(
        self, email: str | None, external_ref: str | None, own_id: int | None
    ) -> None:
        # email_taken is checked first: it wins when both keys are taken (docs/lms-contract.md).
        if email is not None:
            holder = self._by_email.get(email.lower())
            if holder is not None and holder != own_id:
                raise Conflict("email_taken", holder)
        if external_ref is not None:
            holder = self._by_ref.get(external_ref)
            if holder is not None and holder != own_id:
                raise Conflict("external_ref_taken", holder)


class Store:
    """All organisations of one sandbox, by name."""

    def __init__(self, clock: Callable[[], str] = utc_now) -> None:
        self._clock = clock
        self._orgs: dict[str, Organisation] = {}

    def get(self, name: str) -> Organisation | None:
        return self._orgs.get(name)

    def add(self, name: str, api_key: str) -> tuple[Organisation, bool]:
        """Create `name`, or set its key if it exists (idempotent); True when it was created."""
        org = self._orgs.get(name)
        if org is not None:
            org.api_key = api_key
            return org, False
        org = self._orgs[name] = Organisation(name, api_key, self._clock)
        return org, True

    def names(self) -> list[str]:
        return list(self._orgs)

    def clear_learners(self) -> None:
        for org in self._orgs.values():
            org.clear()


def _copy(learner: Learner) -> Learner:
    return msgspec.structs.replace(learner)
