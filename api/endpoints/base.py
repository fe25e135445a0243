"""What /Users and /Groups share: rendering, the one write path to the
shadow store, reads, If-Match, list and filter queries.

Each operation does: validate (pure scim/ logic), one atomic write to the
shadow store, the type's follow-up, render. The HTTP handlers
(api/routes/scim.py) parse the request and hand over plain values: the
decoded body, the If-Match / If-None-Match header text, the query. Nothing
here calls the LMS. `UserEndpoint` and `GroupEndpoint` fill in the hooks.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec

from api.scim_io import (
    ScimResponse,
    empty_response,
    etag_of,
    expected_version,
    not_modified,
    scim_response,
    version_matches,
)
from api.services import Services
from scim.ast import Filter
from scim.errors import (
    InvalidFilter,
    NotFound,
    PreconditionFailed,
    ScimError,
    TooMany,
    Uniqueness,
)
from scim.evaluate import Predicate, compile_filter
from scim.filter import equality_key, parse_filter
from scim.members import MemberChanges
from scim.paging import count_and_page
from scim.patch import apply_patch
from scim.quirks import short
from scim.resource import canonicalize, merge_for_replace, project
from scim.schema import LIST_RESPONSE_SCHEMA, ResourceType
from shadow import InlineJob, StoreConflict, Stored, Tenant, WriteOutcome
from shadow.keys import Kind

__all__ = [
    "KeyedLocks",
    "ListQuery",
    "ResourceEndpoint",
    "View",
    "is_resource_id",
    "list_response",
]

_WRITE_RETRIES = 8

Json = dict[str, Any]

# Ids are issued here as lower-case UUIDs. Anything else names no resource, and
# must never reach the store: "ids" or "<id>:groups" would address its own keys.
_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_resource_id(text: str) -> bool:
    return _ID_RE.fullmatch(text) is not None


class ListQuery(msgspec.Struct, kw_only=True):
    """A list or search request (RFC 7644 §3.4.2, §3.4.3) after validation."""

    filter: str | None = None
    start_index: int = 1
    count: int | None = None
    attributes: list[str] | None = None
    excluded_attributes: list[str] | None = None

    @property
    def view(self) -> View:
        return View(attributes=self.attributes, excluded=self.excluded_attributes)


class View(msgspec.Struct, frozen=True, kw_only=True):
    """`attributes` / `excludedAttributes` of a request (RFC 7644 §3.4.2.5, §3.9)."""

    attributes: list[str] | None = None
    excluded: list[str] | None = None


def list_response(total: int, start: int, resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A ListResponse (RFC 7644 §3.4.2)."""
    return {
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def names_attribute(names: list[str] | None, attribute: str) -> bool:
    """True when a selection names `attribute` (or a sub-attribute), with or
    without its schema URN."""
    return any(a.lower().rsplit(":", 1)[-1].startswith(attribute) for a in names or ())


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it:
    concurrent PATCHes of one resource in this process queue up instead of
    racing each other through the store's version check."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._users: dict[tuple[str, str], int] = {}

    @asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]


class ResourceEndpoint:
    """The operations of one resource type for one process. A subclass sets
    `rtype` and `kind`, and overrides the hooks below where its type differs."""

    rtype: ResourceType
    kind: Kind
    #: PATCH starts from this process's recent copy of the resource (one
    #: round trip saved; the write's version check refuses a stale copy).
    patch_from_recent = False
    #: What is unique per tenant (shadow.resources.ResourceStore.write).
    unique_attribute = "userName"

    def __init__(self, services: Services) -> None:
        self.s = services
        self._locks = KeyedLocks()

    # -- hooks -------------------------------------------------------------

    def wants_related(self, view: View) -> bool:
        """Whether a view shows the type's related resources (a User's
        groups, a Group's members), which cost reads of their own."""
        return False

    async def related(self, tenant: str, stored: Stored) -> dict[str, Any]:
        """The related resources as attributes of the body (none by default)."""
        return {}

    def filter_needs_related(self, text: str | None) -> bool:
        """Whether a filter may name the related resources (then every
        candidate is matched with them)."""
        return False

    async def indexed_by(self, tenant: str, attr: str, value: str) -> list[Stored] | None:
        """Resources an `eq` on `attr` finds through an index of this type
        (beyond `id` and `externalId`); None when no index serves `attr`."""
        return None

    def inline_job(self, tenant: str, rid: str) -> InlineJob | None:
        """A job the store writes in the same Lua step as the change, if any."""
        return None

    async def written(self, tenant: Tenant, rid: str, outcome: WriteOutcome) -> None:
        """After a write of this resource was stored."""

    async def updated(self, tenant: Tenant, old: dict[str, Any], new: dict[str, Any]) -> None:
        """After an update (PUT or PATCH) was stored."""

    async def deleted(self, tenant: Tenant) -> None:
        """After a delete was stored."""

    def take_members(self, doc: dict[str, Any]) -> list[str] | None:
        """The members a create or PUT gives, removed from `doc` (kept apart
        from the document); None for a type without members."""
        return None

    def split_patch(self, body: dict[str, Any]) -> tuple[MemberChanges, dict[str, Any]]:
        """A PATCH's member operations, as one set change, and the rest."""
        return MemberChanges(), body

    async def change_members(self, tenant: Tenant, rid: str, changes: MemberChanges) -> bool:
        """Apply a net membership change; True when some membership changed."""
        return False

    async def check_unique(
        self, tenant: Tenant, rid: str, old: dict[str, Any], new: dict[str, Any]
    ) -> None:
        """Refuse an update whose unique value another resource holds before
        any part of it is stored (the write checks again, atomically)."""

    def patched(self, doc: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """The document after the PATCH operations of `body` (RFC 7644 §3.5.2)."""
        return self._storable(apply_patch(self.rtype, doc, body))

    # -- rendering ---------------------------------------------------------

    def location(self, tenant: str, rid: str) -> str:
        return f"{self.s.settings.scim_url(tenant)}{self.rtype.endpoint}/{rid}"

    async def full(self, tenant: str, stored: Stored, *, related: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": stored.doc.get("schemas", [self.rtype.schema.id])}
        body["id"] = stored.id
        body.update((k, v) for k, v in stored.doc.items() if k != "schemas")
        if related:
            body.update(await self.related(tenant, stored))
        body["meta"] = {
            "resourceType": self.rtype.id,
            "created": stored.created,
            "lastModified": stored.modified,
            "location": self.location(tenant, stored.id),
            "version": etag_of(stored.version),
        }
        return body

    async def shown(self, tenant: str, stored: Stored, view: View | None = None) -> dict[str, Any]:
        """The resource as a client may see it: `returned: never` attributes
        (password) always dropped, then the client's selection (RFC 7644 §3.9)."""
        view = view or View()
        body = await self.full(tenant, stored, related=self.wants_related(view))
        return project(body, self.rtype, view.attributes, view.excluded)

    async def render(
        self, tenant: str, stored: Stored, status: int = 200, view: View | None = None
    ) -> ScimResponse:
        """The resource as an answer."""
        body = await self.shown(tenant, stored, view)
        return scim_response(
            body,
            status,
            etag=etag_of(stored.version),
            location=self.location(tenant, stored.id) if status == 201 else None,
        )

    # -- the write path ------------------------------------------------------

    async def _write(
        self,
        tenant: Tenant,
        rid: str,
        mode: str,
        doc: dict[str, Any] | None,
        version: int | None,
    ) -> WriteOutcome:
        try:
            outcome = await self.s.resources.write(
                tenant.slug,
                self.kind,
                rid,
                mode,  # type: ignore[arg-type]
                doc,
                expected_version=version,
                interval_ms=tenant.job_interval_ms,
                job=self.inline_job(tenant.slug, rid),
            )
        except StoreConflict as exc:
            if exc.reason == "uniqueness":
                raise Uniqueness(
                    f"a {self.rtype.id} with this {self.unique_attribute} already exists"
                    if doc
                    else "uniqueness"
                ) from None
            if exc.reason == "not_found":
                raise NotFound(f"{self.rtype.id} {rid} not found") from None
            if exc.reason == "version_mismatch":
                raise PreconditionFailed(
                    f"{self.rtype.id} {rid} changed meanwhile; read it again"
                ) from None
            raise
        await self.written(tenant, rid, outcome)
        return outcome

    def _storable(self, doc: dict[str, Any]) -> dict[str, Any]:
        """What the shadow keeps: never an attribute that is never returned.

        `password` (writeOnly, returned never) has no use here: the LMS is
        not given it and /ServiceProviderConfig says changePassword is not
        supported. Okta sends it anyway, so it is dropped, not refused."""
        return project(doc, self.rtype)

    async def _existing(self, tenant: Tenant, rid: str, *, recent: bool = False) -> Stored:
        stored = (
            await self.s.resources.get(tenant.slug, self.kind, rid, recent=recent)
            if is_resource_id(rid)
            else None
        )
        if stored is None:
            raise NotFound(f"{self.rtype.id} {short(rid)} not found")
        return stored

    # -- operations ----------------------------------------------------------

    async def create(
        self, tenant: Tenant, body: dict[str, Any], view: View | None = None
    ) -> ScimResponse:
        doc = self._storable(canonicalize(self.rtype, body))
        members = self.take_members(doc)
        rid = str(uuid.uuid4())
        outcome = await self._write(tenant, rid, "create", doc, None)
        if members:
            await self.change_members(tenant, rid, MemberChanges(add=members))
        stored = Stored(
            id=rid,
            doc=doc,
            version=outcome.version,
            created=outcome.created,
            modified=outcome.modified,
        )
        return await self.render(tenant.slug, stored, 201, view)

    async def get(
        self, tenant: Tenant, rid: str, if_none_match: str | None, view: View | None = None
    ) -> ScimResponse:
        stored = await self._existing(tenant, rid)
        if not_modified(if_none_match, stored.version):
            return empty_response(304, etag=etag_of(stored.version))
        return await self.render(tenant.slug, stored, 200, view)

    async def replace(
        self, tenant: Tenant, rid: str, body: Json, if_match: str | None, view: View | None = None
    ) -> ScimResponse:
        """PUT (RFC 7644 §3.5.1). A Group's `members` are replaced as a set;
        a membership change is a new version even when nothing else changed."""
        new = canonicalize(self.rtype, body, for_replace=True)
        members = self.take_members(new)
        stored = await self._existing(tenant, rid)
        expected_version(if_match, stored.version)
        doc = self._storable(merge_for_replace(self.rtype, stored.doc, new))
        await self.check_unique(tenant, rid, stored.doc, doc)
        members_changed = False
        if members is not None:
            changes = (
                MemberChanges(replace_all=members) if members else MemberChanges(remove_all=True)
            )
            members_changed = await self.change_members(tenant, rid, changes)
        if doc == stored.doc and not members_changed:
            return await self.render(tenant.slug, stored, 200, view)
        outcome = await self._write(
            tenant, rid, "update", doc, stored.version if if_match else None
        )
        await self.updated(tenant, stored.doc, doc)
        return await self.render(tenant.slug, _after(stored, doc, outcome), 200, view)

    async def patch(
        self, tenant: Tenant, rid: str, body: Json, if_match: str | None, view: View | None = None
    ) -> ScimResponse:
        """PATCH (RFC 7644 §3.5.2), answered 200 with the resource.

        Group member operations become one set change (`split_patch`); the
        rest run through `patched` first, so a failing operation changes
        nothing. A write that loses a race is re-applied to the newer state
        unless the client pinned a version with If-Match."""
        member_changes, body = self.split_patch(body)
        members_changed = False
        # Every conclusion drawn from a recent copy (412, no-op, lost race)
        # is re-checked on a fresh read.
        fresh = not self.patch_from_recent
        async with self._locks.hold((tenant.slug, rid)):
            for _ in range(_WRITE_RETRIES):
                stored = await self._existing(tenant, rid, recent=not fresh)
                if not fresh and not version_matches(if_match, stored.version):
                    fresh = True
                    continue
                expected_version(if_match, stored.version)
                doc = self.patched(stored.doc, body)
                await self.check_unique(tenant, rid, stored.doc, doc)
                if await self.change_members(tenant, rid, member_changes):
                    members_changed = True
                if doc == stored.doc and not members_changed:
                    if not fresh:
                        fresh = True
                        continue
                    return await self.render(tenant.slug, stored, 200, view)
                try:
                    outcome = await self._write(tenant, rid, "update", doc, stored.version)
                except PreconditionFailed:
                    if if_match and fresh:
                        raise
                    fresh = True
                    continue  # a concurrent write won; re-apply to the newer state
                await self.updated(tenant, stored.doc, doc)
                return await self.render(tenant.slug, _after(stored, doc, outcome), 200, view)
        raise ScimError("too many concurrent changes to this resource; retry", status=409)

    async def delete(self, tenant: Tenant, rid: str, if_match: str | None) -> ScimResponse:
        stored = await self._existing(tenant, rid)
        expected_version(if_match, stored.version)
        version = stored.version if if_match else None
        await self._write(tenant, rid, "delete", None, version)
        await self.deleted(tenant)
        return empty_response(204)

    # -- queries -------------------------------------------------------------

    def check_filter(self, text: str | None) -> tuple[Filter, Predicate] | None:
        """The parsed filter and its compiled test (None for no filter);
        InvalidFilter unless `text` is a filter this resource type can evaluate."""
        if text is None or not text.strip():
            return None
        if len(text) > self.s.settings.max_filter_length:
            raise InvalidFilter(
                f"filter longer than {self.s.settings.max_filter_length} characters"
            )
        parsed = parse_filter(text)
        return parsed, compile_filter(parsed, self.rtype)

    def bounds(self, query: ListQuery) -> tuple[int, int]:
        """startIndex and count as RFC 7644 §3.4.2.4 reads them: below 1 is 1,
        negative count is 0, and count is capped at `maxResults`."""
        settings = self.s.settings
        count = settings.default_page_size if query.count is None else query.count
        return max(1, query.start_index), max(0, min(count, settings.max_page_size))

    async def query(self, tenant: Tenant, query: ListQuery) -> tuple[int, list[dict[str, Any]]]:
        """(totalResults, the requested page of resources as shown to the client).

        A list or filter answer loads related resources (a Group's members, a
        User's groups) only when the request names them (`attributes=members`),
        so Entra's lookups and `GET /Groups` pages stay small whatever the
        group sizes (docs/operations.md, "Bounded memory")."""
        start, count = self.bounds(query)
        checked = self.check_filter(query.filter)
        view = query.view
        asked = self.listed_related(view)
        if checked is None:
            total = await self.s.resources.count(tenant.slug, self.kind)
            ids = (
                await self.s.resources.page_ids(tenant.slug, self.kind, start - 1, count)
                if start <= total
                else []
            )
            page = await self.s.resources.get_many(tenant.slug, self.kind, ids)
            return total, [await self._listed(tenant.slug, s, view, asked) for s in page]
        # Matched against what a client may see, so `password eq ...` is no oracle;
        # the page is then cut from those same bodies. Related resources are
        # loaded for every candidate only when the filter may name them, else
        # for the page when asked for. Only the count and the page are kept
        # while scanning (scim/paging.py).
        parsed, test = checked
        in_filter = self.filter_needs_related(query.filter)
        indexed = await self._indexed(tenant.slug, parsed)
        candidates = _listed_of(indexed) if indexed is not None else self._scanned(tenant.slug)

        async def visible() -> AsyncIterator[tuple[Stored, dict[str, Any]]]:
            async for s in candidates:
                yield s, await self._visible(tenant.slug, s, in_filter)

        total, hits = await count_and_page(visible(), lambda hit: test(hit[1]), start, count)
        if not in_filter and asked:
            hits = [(s, await self._visible(tenant.slug, s, True)) for s, _ in hits]
        attributes, excluded = query.attributes, query.excluded_attributes
        return total, [project(b, self.rtype, attributes, excluded) for _, b in hits]

    def listed_related(self, view: View) -> bool:
        """A list or filter answer carries related resources only when the
        request names them, whatever a single resource's GET shows."""
        return bool(view.attributes) and self.wants_related(view)

    async def _listed(self, tenant: str, stored: Stored, view: View, asked: bool) -> dict[str, Any]:
        body = await self.full(tenant, stored, related=asked)
        return project(body, self.rtype, view.attributes, view.excluded)

    async def _visible(self, tenant: str, stored: Stored, related: bool) -> dict[str, Any]:
        """What a filter may see: the default view, plus User.groups if asked
        (`returned: request`, so the default view drops it)."""
        body = await self.full(tenant, stored, related=related)
        visible = project(body, self.rtype)
        return {**visible, "groups": body["groups"]} if "groups" in body else visible

    async def search(self, tenant: Tenant, query: ListQuery) -> ScimResponse:
        total, resources = await self.query(tenant, query)
        return scim_response(list_response(total, self.bounds(query)[0], resources))

    async def _indexed(self, tenant: str, parsed: Filter) -> list[Stored] | None:
        """The resources a filter may match, from an index, when it pins an
        indexed attribute with `eq`; None otherwise. (A list: this is the
        hot path of every Entra lookup.)"""
        key = equality_key(parsed)
        if key is None:
            return None
        attr, value = key
        if attr == "id":
            ids = [value] if is_resource_id(value) else []
        elif attr == "externalId":
            ids = await self.s.resources.ids_by_external_id(tenant, self.kind, value)
        else:
            return await self.indexed_by(tenant, attr, value)
        return await self.s.resources.get_many(tenant, self.kind, ids)

    async def _scanned(self, tenant: str) -> AsyncIterator[Stored]:
        """Every resource of the kind, for a filter no index answers: refused
        above `max_scan` resources."""
        total = await self.s.resources.count(tenant, self.kind)
        if total > self.s.settings.max_scan:
            raise TooMany(
                f"this filter would scan {total} resources (limit "
                f"{self.s.settings.max_scan}); filter with eq on userName, externalId or id"
            )
        await self.s.admit_scan(tenant, total)  # the tenant's scan budget: 429 past it
        async for stored in self.s.resources.scan(tenant, self.kind):
            yield stored


async def _listed_of(found: list[Stored]) -> AsyncIterator[Stored]:
    for stored in found:
        yield stored


def _after(stored: Stored, doc: dict[str, Any], outcome: WriteOutcome) -> Stored:
    return Stored(
        id=stored.id,
        doc=doc,
        version=outcome.version,
        created=stored.created,
        modified=outcome.modified,
    )
