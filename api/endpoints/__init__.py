"""SCIM resource endpoints: `UserEndpoint` and `GroupEndpoint` over a small
shared base (`base.ResourceEndpoint`), and `search_all` for `POST /.search`.
The HTTP handlers are in api/routes/scim.py."""

from __future__ import annotations

from typing import Any

import msgspec

from api.endpoints.base import ListQuery, ResourceEndpoint, View, list_response
from api.endpoints.groups import GroupEndpoint
from api.endpoints.users import UserEndpoint
from api.services import Services
from scim.errors import InvalidFilter
from shadow import Tenant

__all__ = [
    "GroupEndpoint",
    "ListQuery",
    "ResourceEndpoint",
    "UserEndpoint",
    "View",
    "endpoints",
    "search_all",
]


def endpoints(services: Services) -> dict[str, ResourceEndpoint]:
    return {"Users": UserEndpoint(services), "Groups": GroupEndpoint(services)}


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
