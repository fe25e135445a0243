"""A tenant with everything a live one holds, beside another tenant.

`acme` has users synced to the sandbox LMS (sync state, provisioning logs,
learner links), a group with members, a mapping, breaker settings, a last
reconcile report, SCIM tokens and an admin key; its sync jobs wait in the
queue. `other` has a user of its own, which must come through untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from shadow import Tenant, keys
from shadow.admin_keys import AdminKeyStore
from shadow.breaker import BreakerConfig, set_config
from tests.support.api import GROUP_SCHEMA, ScimClient, add_tenant, api_settings
from tests.support.worker_fixtures import run_sync
from worker.deps import WorkerDeps

OPERATOR = "operator-token-0123456789-0123456789"
OP = {"Authorization": f"Bearer {OPERATOR}"}


@dataclass
class Person:
    id: str
    email: str
    given: str
    family: str


@dataclass
class World:
    http: AsyncTestClient[Any]
    acme: ScimClient
    other: ScimClient
    admin_key: str
    people: list[Person] = field(default_factory=list)
    other_person: Person | None = None


async def _create(client: ScimClient, email: str, given: str, family: str) -> Person:
    made = await client.create_user(
        email,
        name={"givenName": given, "familyName": family},
        emails=[{"value": email, "type": "work", "primary": True}],
        externalId=f"ext-{given.lower()}",
    )
    return Person(made["id"], email, given, family)


@pytest.fixture
async def world(
    redis: Redis, redis_url: str, deps: WorkerDeps, tenant: Tenant
) -> AsyncIterator[World]:
    token = (await deps.tenants.issue_token(tenant.slug)).token
    await deps.tenants.issue_token(tenant.slug, label="spare")
    other_token = await add_tenant(redis, "other")
    admin_key = (await AdminKeyStore(redis).issue(tenant.slug)).key
    app = create_app(api_settings(redis_url, admin_token=OPERATOR))
    async with AsyncTestClient(app=app, base_url="https://bridge.test") as http:
        acme, other = ScimClient(http, "acme", token), ScimClient(http, "other", other_token)
        found = World(http=http, acme=acme, other=other, admin_key=admin_key)
        for email, given, family in (
            ("zelda.quistorp@example.org", "Zelda", "Quistorp"),
            ("ygritte.wulfsen@example.org", "Ygritte", "Wulfsen"),
            ("xavier.brolund@example.org", "Xavier", "Brolund"),
        ):
            found.people.append(await _create(acme, email, given, family))
        found.other_person = await _create(other, "otto.vandermeer@example.net", "Otto", "Meer")
        for person in found.people[:2]:
            assert await run_sync(deps, person.id) == "synced"
        group = await acme.post(
            "/Groups",
            {
                "schemas": [GROUP_SCHEMA],
                "displayName": "Team Blue",
                "members": [{"value": p.id} for p in found.people],
            },
        )
        assert group.status_code == 201, group.text
        mapping = await http.put(
            "/admin/v1/tenants/acme/mapping",
            json={"fields": {"company": {"constant": "Acme Ltd"}}},
            headers=OP,
        )
        assert mapping.status_code == 200, mapping.text
        await set_config(redis, "acme", BreakerConfig(share=0.5))
        await redis.set(
            keys.reconcile_last("acme"),
            b'{"tenant": "acme", "drift": [{"kind": "missing", "user_id": "%s"}]}'
            % found.people[0].id.encode(),
        )
        yield found


@pytest.fixture
def cli_env() -> dict[str, str]:
    """`run_cli` here names the public URL the tests' SCIM URLs use."""
    return {"BRIDGE_PUBLIC_URL": "https://bridge.test"}
