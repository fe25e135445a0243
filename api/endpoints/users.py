"""/Users (RFC 7643 §4.1): the resources the workers provision into the LMS.

A User's write hands the user to the workers: in the same Lua step as the
change when the queue shares the shadow's Redis (`inline_job`), else with an
enqueue right after it.
"""

from __future__ import annotations

import logging
from typing import Any

from api.endpoints.base import ResourceEndpoint, View, names_attribute
from scim.schema import USER_RESOURCE
from shadow import InlineJob, Stored, Tenant, WriteOutcome
from worker.queue import enqueue_sync, inline_job

__all__ = ["UserEndpoint"]

log = logging.getLogger("scim_bridge.api")


class UserEndpoint(ResourceEndpoint):
    rtype = USER_RESOURCE
    kind = "u"
    # Users start a PATCH from this process's recent copy (one round trip
    # saved on Entra's commonest request); the write's version check
    # refuses a stale copy.
    patch_from_recent = True

    def wants_related(self, view: View) -> bool:
        """User.groups is `returned: request`: loaded only when named."""
        return names_attribute(view.attributes, "groups")

    async def related(self, tenant: str, stored: Stored) -> dict[str, Any]:
        groups = await self.s.resources.get_many(
            tenant, "g", await self.s.resources.group_ids_of(tenant, stored.id)
        )
        if not groups:
            return {}
        base = f"{self.s.settings.scim_url(tenant)}/Groups/"
        return {
            "groups": [
                {
                    "value": g.id,
                    "$ref": base + g.id,
                    "display": g.doc.get("displayName"),
                    "type": "direct",
                }
                for g in groups
            ]
        }

    def filter_needs_related(self, text: str | None) -> bool:
        return "groups" in (text or "").lower()

    async def indexed_by(self, tenant: str, attr: str, value: str) -> list[Stored] | None:
        if attr != "userName":
            return None
        found = await self.s.resources.get_by_user_name(tenant, value)
        return [found] if found is not None else []

    def inline_job(self, tenant: str, rid: str) -> InlineJob | None:
        return None if self.s.settings.queue_redis_url else inline_job(self.s.queue, tenant, rid)

    async def written(self, tenant: Tenant, rid: str, outcome: WriteOutcome) -> None:
        """Wake a worker. The change is already durable and marked pending, so
        a failure here only delays it until the sweep (docs/architecture.md, invariant 2)."""
        if outcome.enqueue_due_ms is None or outcome.enqueued:
            return
        try:
            await enqueue_sync(self.s.queue, tenant.slug, rid, outcome.enqueue_due_ms)
        except Exception:
            log.warning(
                "enqueue failed; the sweep will pick the user up",
                extra={"tenant": tenant.slug, "user_id": rid},
            )
