"""/Groups (RFC 7643 §4.2): memberships the tenant's mapping may turn into
learners' teams.

Members are kept apart from the group's document (a sorted set per group),
so a PATCH of members is one set change, and a group's answer with more
than `STREAM_MEMBERS_OVER` members is streamed a page at a time. A change
that may move members between teams writes the tenant's durable follow-ups
in its own atomic step; `_follow_up` then wakes the workers for them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from redis.exceptions import RedisError

from api.endpoints.base import ResourceEndpoint, View, is_resource_id, names_attribute
from api.scim_io import ScimResponse, encode, etag_of
from scim.errors import NotFound, Uniqueness
from scim.members import MemberChanges, split_member_ops
from scim.resource import project
from scim.schema import GROUP_RESOURCE, GROUP_SCHEMA, PATCH_OP_SCHEMA
from shadow import StoreConflict, Stored, Tenant
from worker.rules import drain_group_followups, enqueue_followups

__all__ = ["STREAM_MEMBERS_OVER", "GroupEndpoint"]

log = logging.getLogger("scim_bridge.api")

#: A group GET with more members than this streams them, a page at a time.
STREAM_MEMBERS_OVER = 1000
_MEMBER_PAGE = 1000


class GroupEndpoint(ResourceEndpoint):
    rtype = GROUP_RESOURCE
    kind = "g"
    # Entra's object id of the group: a create retried after a lost answer
    # meets a 409, never makes a second group (docs/architecture.md, "Crash safety").
    unique_attribute = "externalId"

    def wants_related(self, view: View) -> bool:
        if view.excluded and names_attribute(view.excluded, "members"):
            return False
        if view.attributes:
            return names_attribute(view.attributes, "members")
        return True

    async def related(self, tenant: str, stored: Stored) -> dict[str, Any]:
        members = await self.s.resources.member_ids(tenant, stored.id)
        return {"members": await self._member_entries(tenant, members)} if members else {}

    def filter_needs_related(self, text: str | None) -> bool:
        # Only a filter that may name members reads them: an Entra lookup
        # (`displayName eq ...`) of a group of 10,000 must not.
        return "members" in (text or "").lower()

    async def indexed_by(self, tenant: str, attr: str, value: str) -> list[Stored] | None:
        if attr != "displayName":
            return None
        ids = await self.s.resources.ids_by_display_name(tenant, value)
        return await self.s.resources.get_many(tenant, self.kind, ids)

    async def updated(self, tenant: Tenant, old: dict[str, Any], new: dict[str, Any]) -> None:
        if _renamed(old, new):
            await self._follow_up(tenant)

    async def deleted(self, tenant: Tenant) -> None:
        await self._follow_up(tenant)

    def take_members(self, doc: dict[str, Any]) -> list[str] | None:
        return [m["value"] for m in doc.pop("members", [])]

    def split_patch(self, body: dict[str, Any]) -> tuple[MemberChanges, dict[str, Any]]:
        changes, other_ops = split_member_ops(body)
        return changes, {"schemas": [PATCH_OP_SCHEMA], "Operations": other_ops}

    def patched(self, doc: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        return super().patched(doc, body) if body.get("Operations") else doc

    async def check_unique(
        self, tenant: Tenant, rid: str, old: dict[str, Any], new: dict[str, Any]
    ) -> None:
        """Member changes are stored before the document: a new externalId
        that another group holds is refused before them."""
        xid = new.get("externalId")
        if xid and xid != old.get("externalId"):
            holder = await self.s.resources.group_holding(tenant.slug, str(xid))
            if holder is not None and holder != rid:
                raise Uniqueness(f"a {self.rtype.id} with this externalId already exists")

    async def change_members(self, tenant: Tenant, rid: str, changes: MemberChanges) -> bool:
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

    async def render(
        self, tenant: str, stored: Stored, status: int = 200, view: View | None = None
    ) -> ScimResponse:
        """The group as an answer; with more than STREAM_MEMBERS_OVER members
        (when they are asked for) it is streamed."""
        view = view or View()
        if (
            self.wants_related(view)
            and await self.s.resources.member_count(tenant, stored.id) > STREAM_MEMBERS_OVER
        ):
            return await self._streamed(tenant, stored, status, view)
        return await super().render(tenant, stored, status, view)

    async def _streamed(self, tenant: str, stored: Stored, status: int, view: View) -> ScimResponse:
        """A large group's body: members are read (ZRANGE BYLEX) and written a
        page at a time, so no request holds tens of thousands of them. The
        same JSON object as the one-piece render, members first."""
        rest = encode(
            project(
                await self.full(tenant, stored, related=False),
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


def _renamed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """A change of what a team pattern can match (displayName, externalId)."""
    return any(old.get(name) != new.get(name) for name in ("displayName", "externalId"))
