"""SCIM resource operations shared by /Users and /Groups.

Each method does: decode and validate (pure scim/ logic), one atomic write
to the shadow store, hand the user to the workers, render. Nothing here
calls the LMS.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Request
from redis.exceptions import RedisError

from api.scim_io import (
    ScimResponse,
    empty_response,
    encode,
    etag_of,
    expected_version,
    header,
    not_modified,
    read_json_object,
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
from scim.members import MemberChanges, split_member_ops
from scim.paging import count_and_page
from scim.patch import apply_patch
from scim.quirks import short
from scim.resource import canonicalize, merge_for_replace, project
from scim.schema import (
    GROUP_RESOURCE,
    GROUP_SCHEMA,
    LIST_RESPONSE_SCHEMA,
    PATCH_OP_SCHEMA,
    USER_RESOURCE,
    ResourceType,
)
from shadow import StoreConflict, Stored, Tenant, WriteOutcome
from shadow.keys import Kind
from worker.queue import enqueue_sync, inline_job
from worker.rules import drain_group_followups, enqueue_followups

log = logging.getLogger("scim_bridge.api")

_WRITE_RETRIES = 8
#: A group GET with more members than this streams them, a page at a time.
STREAM_MEMBERS_OVER = 1000
_MEMBER_PAGE = 1000

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
    """The operations of one resource type (User or Group) for one process."""

    def __init__(self, services: Services, rtype: ResourceType, kind: Kind) -> None:
        self.s = services
        self.rtype = rtype
        self.kind = kind
        self._locks = KeyedLocks()

    # -- rendering ---------------------------------------------------------

    def location(self, tenant: str, rid: str) -> str:
        return f"{self.s.settings.scim_url(tenant)}{self.rtype.endpoint}/{rid}"

    async def full(
        self, tenant: str, stored: Stored, *, with_members: bool = True, with_groups: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": stored.doc.get("schemas", [self.rtype.schema.id])}
        body["id"] = stored.id
        body.update((k, v) for k, v in stored.doc.items() if k != "schemas")
        if self.kind == "u" and with_groups:
            groups = await self.s.resources.get_many(
                tenant, "g", await self.s.resources.group_ids_of(tenant, stored.id)
            )
            if groups:
                body["groups"] = [
                    {
                        "value": g.id,
                        "$ref": f"{self.s.settings.scim_url(tenant)}/Groups/{g.id}",
                        "display": g.doc.get("displayName"),
                        "type": "direct",
                    }
                    for g in groups
                ]
        if self.kind == "g" and with_members:
            members = await self.s.resources.member_ids(tenant, stored.id)
            if members:
                body["members"] = await self._member_entries(tenant, members)
        body["meta"] = {
            "resourceType": self.rtype.id,
            "created": stored.created,
            "lastModified": stored.modified,
            "location": self.location(tenant, stored.id),
            "version": etag_of(stored.version),
        }
        return body

    async def _member_entries(self, tenant: str, ids: list[str]) -> list[dict[str, Any]]:
        """Members as RFC 7643 §4.2 renders them: `value`, `$ref`, `type` and
        `display`, the user's displayName, else its userName (read-only: the
        bridge writes them, whatever a client sent)."""
        base = f"{self.s.settings.scim_url(tenant)}/Users/"
        users = {u.id: u.doc for u in await self.s.resources.get_many(tenant, "u", ids)}
        entries: list[dict[str, Any]] = []
        for m in ids:
            entry: dict[str, Any] = {"value": m, "$ref": base + m, "type": "User"}
            doc = users.get(m)
            display = doc and (doc.get("displayName") or doc.get("userName"))
            if isinstance(display, str) and display:
                entry["display"] = display
            entries.append(entry)
        return entries

    def _wants_members(self, attributes: list[str] | None, excluded: list[str] | None) -> bool:
        if self.kind != "g":
            return False
        if excluded and any(a.lower().rsplit(":", 1)[-1].startswith("members") for a in excluded):
            return False
        if attributes:
            return any(a.lower().rsplit(":", 1)[-1].startswith("members") for a in attributes)
        return True

    def _wants_groups(self, attributes: list[str] | None) -> bool:
        """User.groups is `returned: request`: loaded only when named."""
        return self.kind == "u" and any(
            a.lower().rsplit(":", 1)[-1].startswith("groups") for a in attributes or ()
        )

    async def shown(self, tenant: str, stored: Stored, view: View | None = None) -> dict[str, Any]:
        """The resource as a client may see it: `returned: never` attributes
        (password) always dropped, then the client's selection (RFC 7644 §3.9)."""
        view = view or View()
        body = await self.full(
            tenant,
            stored,
            with_members=self._wants_members(view.attributes, view.excluded),
            with_groups=self._wants_groups(view.attributes),
        )
        return project(body, self.rtype, view.attributes, view.excluded)

    async def render(
        self, tenant: str, stored: Stored, status: int = 200, view: View | None = None
    ) -> ScimResponse:
        """The resource as an answer; a group with more than
        STREAM_MEMBERS_OVER members (when they are asked for) is streamed."""
        view = view or View()
        if (
            self.kind == "g"
            and self._wants_members(view.attributes, view.excluded)
            and await self.s.resources.member_count(tenant, stored.id) > STREAM_MEMBERS_OVER
        ):
            return await self._streamed_group(tenant, stored, status, view)
        body = await self.shown(tenant, stored, view)
        return scim_response(
            body,
            status,
            etag=etag_of(stored.version),
            location=self.location(tenant, stored.id) if status == 201 else None,
        )

    # -- hand-off ------------------------------------------------------------

    async def _hand_off(self, tenant: str, rid: str, outcome: WriteOutcome) -> None:
        """Wake a worker. The change is already durable and marked pending, so
        a failure here only delays it until the sweep (design invariant 2)."""
        if outcome.enqueue_due_ms is None or outcome.enqueued:
            return
        try:
            await enqueue_sync(self.s.queue, tenant, rid, outcome.enqueue_due_ms)
        except Exception:
            log.warning(
                "enqueue failed; the sweep will pick the user up",
                extra={"tenant": tenant, "user_id": rid},
            )

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
                job=inline_job(self.s.queue, tenant.slug, rid)
                if self.kind == "u" and not self.s.settings.queue_redis_url
                else None,
            )
        except StoreConflict as exc:
            if exc.reason == "uniqueness":
                raise Uniqueness(
                    f"a {self.rtype.id} with this userName already exists" if doc else "uniqueness"
                ) from None
            if exc.reason == "not_found":
                raise NotFound(f"{self.rtype.id} {rid} not found") from None
            if exc.reason == "version_mismatch":
                raise PreconditionFailed(
                    f"{self.rtype.id} {rid} changed meanwhile; read it again"
                ) from None
            raise
        if self.kind == "u":
            await self._hand_off(tenant.slug, rid, outcome)
        return outcome

    async def _follow_up(self, tenant: Tenant) -> None:
        """A membership change, rename or deletion of a group can change its
        members' teams. The change itself wrote them to the tenant's durable
        follow-ups in its own atomic step (docs/architecture.md, "Group
        changes"); re-queue a little of that now, and leave the rest to a
        worker. A fault here only delays: the sweep drains what is left."""
        try:
            if not await drain_group_followups(self.s.redis, self.s.queue, tenant, pages=2):
                await enqueue_followups(self.s.queue, tenant.slug)
        except (RedisError, OSError):
            log.warning("group follow-ups left to the sweep", extra={"tenant": tenant.slug})

    # -- operations ----------------------------------------------------------

    async def create(
        self, request: Request[Any, Any, Any], tenant: Tenant, view: View | None = None
    ) -> ScimResponse:
        body = await read_json_object(request, self.s.settings.max_body_bytes)
        doc = self._storable(canonicalize(self.rtype, body))
        members: list[str] = []
        if self.kind == "g":
            members = [m["value"] for m in doc.pop("members", [])]
        rid = str(uuid.uuid4())
        outcome = await self._write(tenant, rid, "create", doc, None)
        if members:
            await self._change_members(tenant, rid, MemberChanges(add=members))
        stored = Stored(
            id=rid,
            doc=doc,
            version=outcome.version,
            created=outcome.created,
            modified=outcome.modified,
        )
        return await self.render(tenant.slug, stored, 201, view)

    async def get(
        self, request: Request[Any, Any, Any], tenant: Tenant, rid: str, view: View | None = None
    ) -> ScimResponse:
        stored = await self._existing(tenant, rid)
        if not_modified(request, stored.version):
            return empty_response(304, etag=etag_of(stored.version))
        return await self.render(tenant.slug, stored, 200, view)

    async def _streamed_group(
        self, tenant: str, stored: Stored, status: int, view: View
    ) -> ScimResponse:
        """A large group's body: members are read (ZRANGE BYLEX) and written a
        page at a time, so no request holds tens of thousands of them. The
        same JSON object as the one-piece render, members first."""
        rest = encode(
            project(
                await self.full(tenant, stored, with_members=False),
                self.rtype,
                view.attributes,
                view.excluded,
            )
        )

        async def body() -> AsyncIterator[bytes]:
            yield b'{"members":['
            after: str | None = None
            first = True
            while True:
                ids = await self.s.resources.member_ids_after(
                    tenant, stored.id, after, _MEMBER_PAGE
                )
                if not ids:
                    break
                members = await self._member_entries(tenant, ids)
                page = project(
                    {"schemas": [GROUP_SCHEMA], "id": stored.id, "members": members},
                    self.rtype,
                    view.attributes,
                    view.excluded,
                ).get("members", [])
                piece = encode(page)[1:-1]
                if piece:
                    yield (b"" if first else b",") + piece
                    first = False
                after = ids[-1]
            yield b"]," + rest[1:] if rest != b"{}" else b"]}"

        location = self.location(tenant, stored.id) if status == 201 else None
        return ScimResponse(body(), status, etag=etag_of(stored.version), location=location)

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

    async def _change_members(self, tenant: Tenant, rid: str, changes: MemberChanges) -> bool:
        """Apply a net membership change; True when some membership changed.

        A member to add that is not a live user of this tenant (an unknown
        id, another tenant's user, a group) is left out, not stored, and
        counted in the log; the rest of the request applies. One bad entry in
        an IdP's batch must not block the real ones, and leaving it out
        grants nothing (the store checks liveness in the same Lua step)."""
        if changes.empty:
            return False
        wanted = changes.replace_all if changes.replace_all is not None else changes.add
        add = [m for m in dict.fromkeys(wanted) if is_resource_id(m)]
        try:
            outcome = await self.s.resources.change_members(
                tenant.slug,
                rid,
                add=add,
                remove=[m for m in changes.remove if is_resource_id(m)],
                remove_all=changes.remove_all or changes.replace_all is not None,
            )
        except StoreConflict as exc:
            if exc.reason == "not_found":
                raise NotFound(f"{self.rtype.id} {rid} not found") from None
            raise
        skipped = len(set(wanted)) - len(add) + len(outcome.skipped)
        if skipped:
            log.info(
                "group members left out: not live users of this tenant",
                extra={"tenant": tenant.slug, "group_id": rid, "skipped": skipped},
            )
        if outcome.changed:
            await self._follow_up(tenant)
        return bool(outcome.changed)

    async def replace(
        self, request: Request[Any, Any, Any], tenant: Tenant, rid: str, view: View | None = None
    ) -> ScimResponse:
        """PUT (RFC 7644 §3.5.1). A Group's `members` are replaced as a set;
        a membership change is a new version even when nothing else changed."""
        body = await read_json_object(request, self.s.settings.max_body_bytes)
        new = canonicalize(self.rtype, body, for_replace=True)
        members: list[str] | None = None
        if self.kind == "g":
            members = [m["value"] for m in new.pop("members", [])]
        stored = await self._existing(tenant, rid)
        expected_version(request, stored.version)
        doc = self._storable(merge_for_replace(self.rtype, stored.doc, new))
        members_changed = False
        if members is not None:
            changes = (
                MemberChanges(replace_all=members) if members else MemberChanges(remove_all=True)
            )
            members_changed = await self._change_members(tenant, rid, changes)
        if doc == stored.doc and not members_changed:
            return await self.render(tenant.slug, stored, 200, view)
        if_match = header(request, b"if-match")
        outcome = await self._write(
            tenant, rid, "update", doc, stored.version if if_match else None
        )
        if self.kind == "g" and _renamed(stored.doc, doc):
            await self._follow_up(tenant)
        return await self.render(tenant.slug, _after(stored, doc, outcome), 200, view)

    async def patch(
        self, request: Request[Any, Any, Any], tenant: Tenant, rid: str, view: View | None = None
    ) -> ScimResponse:
        """PATCH (RFC 7644 §3.5.2), answered 200 with the resource.

        Group member operations become one set change (`split_member_ops`); the
        rest run through `apply_patch` first, so a failing operation changes
        nothing. A write that loses a race is re-applied to the newer state
        unless the client pinned a version with If-Match."""
        body = await read_json_object(request, self.s.settings.max_body_bytes)
        member_changes = MemberChanges()
        if self.kind == "g":
            member_changes, other_ops = split_member_ops(body)
            body = {"schemas": [PATCH_OP_SCHEMA], "Operations": other_ops}
        if_match = header(request, b"if-match")
        members_changed = False
        # Users start from this process's recent copy (one round trip saved);
        # the write's version check refuses a stale copy, and every
        # conclusion (412, no-op, lost race) is re-checked on a fresh read.
        fresh = self.kind == "g"
        async with self._locks.hold((tenant.slug, rid)):
            for _ in range(_WRITE_RETRIES):
                stored = await self._existing(tenant, rid, recent=not fresh)
                if not fresh and not version_matches(request, stored.version):
                    fresh = True
                    continue
                expected_version(request, stored.version)
                doc = (
                    self._storable(apply_patch(self.rtype, stored.doc, body))
                    if body.get("Operations") or self.kind == "u"
                    else stored.doc
                )
                if await self._change_members(tenant, rid, member_changes):
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
                if self.kind == "g" and _renamed(stored.doc, doc):
                    await self._follow_up(tenant)
                return await self.render(tenant.slug, _after(stored, doc, outcome), 200, view)
        raise ScimError("too many concurrent changes to this resource; retry", status=409)

    async def delete(
        self, request: Request[Any, Any, Any], tenant: Tenant, rid: str
    ) -> ScimResponse:
        stored = await self._existing(tenant, rid)
        expected_version(request, stored.version)
        version = stored.version if header(request, b"if-match") else None
        await self._write(tenant, rid, "delete", None, version)
        if self.kind == "g":
            await self._follow_up(tenant)
        return empty_response(204)

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

        A list or filter answer reads a group's members only when the request
        names them (`attributes=members`), so Entra's lookups and `GET /Groups`
        pages stay small whatever the group sizes (docs/operations.md,
        "Bounded memory")."""
        start, count = self.bounds(query)
        checked = self.check_filter(query.filter)
        view = query.view
        if checked is None:
            total = await self.s.resources.count(tenant.slug, self.kind)
            ids = (
                await self.s.resources.page_ids(tenant.slug, self.kind, start - 1, count)
                if start <= total
                else []
            )
            page = await self.s.resources.get_many(tenant.slug, self.kind, ids)
            return total, [await self._listed(tenant.slug, s, view) for s in page]
        # Matched against what a client may see, so `password eq ...` is no oracle;
        # the page is then cut from those same bodies. User.groups (the one
        # `returned: request` attribute) and Group.members are loaded for every
        # candidate only when the filter may name them, else for the page when
        # selected. Only the count and the page are kept while scanning.
        parsed, test = checked
        named = (query.filter or "").lower()
        with_groups = self.kind == "u" and "groups" in named
        with_members = self.kind == "g" and "members" in named
        indexed = await self._indexed(tenant.slug, parsed)
        candidates = _listed_of(indexed) if indexed is not None else self._scanned(tenant.slug)

        async def visible() -> AsyncIterator[tuple[Stored, dict[str, Any]]]:
            async for s in candidates:
                yield s, await self._visible(tenant.slug, s, with_groups, with_members)

        total, hits = await count_and_page(visible(), lambda hit: test(hit[1]), start, count)
        if (not with_groups and self._wants_groups(query.attributes)) or (
            not with_members and self._members_asked(view)
        ):
            return total, [await self.shown(tenant.slug, s, view) for s, _ in hits]
        attributes, excluded = query.attributes, query.excluded_attributes
        return total, [project(b, self.rtype, attributes, excluded) for _, b in hits]

    def _members_asked(self, view: View) -> bool:
        """A list answer carries members only when the request names them."""
        return bool(view.attributes) and self._wants_members(view.attributes, view.excluded)

    async def _listed(self, tenant: str, stored: Stored, view: View) -> dict[str, Any]:
        """A resource of a list answer: `shown`, members only when asked for."""
        if self.kind == "g" and not self._members_asked(view):
            body = await self.full(tenant, stored, with_members=False)
            return project(body, self.rtype, view.attributes, view.excluded)
        return await self.shown(tenant, stored, view)

    async def _visible(
        self, tenant: str, stored: Stored, with_groups: bool, with_members: bool = False
    ) -> dict[str, Any]:
        """What a filter may see: the default view (members only if the filter
        may name them), plus User.groups if asked."""
        body = await self.full(tenant, stored, with_members=with_members, with_groups=with_groups)
        visible = project(body, self.rtype)
        return {**visible, "groups": body["groups"]} if "groups" in body else visible

    async def search(self, tenant: Tenant, query: ListQuery) -> ScimResponse:
        total, resources = await self.query(tenant, query)
        return scim_response(list_response(total, self.bounds(query)[0], resources))

    async def _indexed(self, tenant: str, parsed: Filter) -> list[Stored] | None:
        """The resources a filter may match, from an index, when it pins
        userName, externalId, id or displayName with `eq`; None otherwise.
        (A list, not an async generator: this is the hot path of every
        Entra lookup.)"""
        key = equality_key(parsed)
        if key is None:
            return None
        attr, value = key
        if attr == "userName" and self.kind == "u":
            found = await self.s.resources.get_by_user_name(tenant, value)
            return [found] if found is not None else []
        if attr == "id":
            ids = [value] if is_resource_id(value) else []
        elif attr == "externalId":
            ids = await self.s.resources.ids_by_external_id(tenant, self.kind, value)
        elif attr == "displayName" and self.kind == "g":
            ids = await self.s.resources.ids_by_display_name(tenant, value)
        else:
            return None
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


def _renamed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """A change of what a team pattern can match (displayName, externalId)."""
    return any(old.get(name) != new.get(name) for name in ("displayName", "externalId"))


def _after(stored: Stored, doc: dict[str, Any], outcome: WriteOutcome) -> Stored:
    return Stored(
        id=stored.id,
        doc=doc,
        version=outcome.version,
        created=stored.created,
        modified=outcome.modified,
    )


async def search_all(
    endpoints: dict[str, ResourceEndpoint], tenant: Tenant, query: ListQuery
) -> dict[str, Any]:
    """`POST /.search` (RFC 7644 §3.4.3): Users then Groups, paged as one list.

    A filter naming another type's schema (`urn:...:enterprise:2.0:User:department`)
    matches no resource of the types it does not fit; it is invalidFilter only
    when it fits none."""
    users, groups = endpoints["Users"], endpoints["Groups"]
    start, count = users.bounds(query)
    refusals: dict[str, InvalidFilter] = {}
    for name, endpoint in (("Users", users), ("Groups", groups)):
        try:
            endpoint.check_filter(query.filter)
        except InvalidFilter as exc:
            refusals[name] = exc
    if len(refusals) == 2:
        raise refusals["Users"]
    user_total, user_page = (0, []) if "Users" in refusals else await users.query(tenant, query)
    rest = msgspec.structs.replace(
        query, start_index=max(1, start - user_total), count=count - len(user_page)
    )
    group_total, group_page = (0, []) if "Groups" in refusals else await groups.query(tenant, rest)
    return list_response(user_total + group_total, start, user_page + group_page)


def endpoints(services: Services) -> dict[str, ResourceEndpoint]:
    return {
        "Users": ResourceEndpoint(services, USER_RESOURCE, "u"),
        "Groups": ResourceEndpoint(services, GROUP_RESOURCE, "g"),
    }
