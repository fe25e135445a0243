"""Users as people: the userName, display name and email the page shows
wherever a user appears (never a bare UUID), and the search by userName or
email.

Names come from the shadow copy of what Entra sent (shadow/resources.py),
read for a whole page of users in one round trip.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shadow.resources import ResourceStore

__all__ = ["SEARCH_LIMIT", "SEARCH_SCAN", "Person", "people", "person_of", "search"]

#: Matches a search shows at most.
SEARCH_LIMIT = 25
#: Users a search by part of a name or email reads before it stops (a search
#: by exact userName is one index lookup whatever the tenant's size).
SEARCH_SCAN = 20_000


class Person(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    user_name: str = ""
    display_name: str = ""
    email: str = ""
    active: bool = True

    @property
    def label(self) -> str:
        """How a button or link names this user (unique within a tenant)."""
        return self.user_name or self.email or self.user_id


def _primary_email(doc: dict[str, Any]) -> str:
    emails = [e for e in doc.get("emails") or [] if isinstance(e, dict)]
    chosen = next((e for e in emails if e.get("primary")), emails[0] if emails else {})
    value = chosen.get("value")
    return value if isinstance(value, str) else ""


def _display_name(doc: dict[str, Any]) -> str:
    shown = doc.get("displayName")
    if isinstance(shown, str) and shown.strip():
        return shown.strip()
    name = doc.get("name")
    if isinstance(name, dict):
        formatted = name.get("formatted")
        if isinstance(formatted, str) and formatted.strip():
            return formatted.strip()
        parts = [name.get("givenName"), name.get("familyName")]
        return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return ""


def person_of(user_id: str, doc: dict[str, Any] | None) -> Person:
    if not doc:
        return Person(user_id=user_id)
    user_name = doc.get("userName")
    return Person(
        user_id=user_id,
        user_name=user_name if isinstance(user_name, str) else "",
        display_name=_display_name(doc),
        email=_primary_email(doc),
        active=doc.get("active") is not False,
    )


async def people(store: ResourceStore, tenant: str, user_ids: list[str]) -> dict[str, Person]:
    """The people behind these ids (an id whose user is gone stays an id)."""
    found = {s.id: person_of(s.id, s.doc) for s in await store.get_many(tenant, "u", user_ids)}
    return {uid: found.get(uid) or Person(user_id=uid) for uid in user_ids}


async def search(store: ResourceStore, tenant: str, query: str) -> tuple[list[Person], bool]:
    """Users whose userName or email is `query` or contains it (case
    apart), and whether the search stopped before reading every user."""
    needle = query.strip().lower()
    if not needle:
        return [], False
    exact = await store.get_by_user_name(tenant, needle)
    matches = [person_of(exact.id, exact.doc)] if exact else []
    seen = {p.user_id for p in matches}
    read = 0
    async for stored in store.scan(tenant, "u"):
        read += 1
        if stored.id not in seen:
            person = person_of(stored.id, stored.doc)
            fields = (person.user_name, person.email, person.display_name)
            if any(needle in f.lower() for f in fields):
                matches.append(person)
                seen.add(stored.id)
        if len(matches) >= SEARCH_LIMIT or read >= SEARCH_SCAN:
            return matches, True
    return matches, False
