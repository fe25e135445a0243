"""Expensive work is budgeted per tenant and bounded per request:

- a filter no index answers is charged to its tenant's scan budget, shared
  by every API process (shadow/limits.py ScanBudget): past it a 429 with a
  SCIM error and Retry-After, counted per tenant; indexed lookups and other
  tenants are not held back;
- list and filter answers read a group's members only when the request names
  them (docs/operations.md, "Bounded memory")."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from tests.support.api import (
    GROUP_SCHEMA,
    SCRAPE,
    ScimClient,
    add_tenant,
    api_settings,
    running_api,
)

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
SCAN = {"filter": 'title co "e"'}


async def test_a_tenant_past_its_scan_budget_is_answered_429_and_others_are_not(
    redis: Redis, redis_url: str
) -> None:
    tokens = {slug: await add_tenant(redis, slug) for slug in ("scanner", "quiet")}
    # 10 users: one scan of them spends the whole burst; the budget comes back
    # at one resource a second, so the second scan waits ~10 s.
    settings = api_settings(redis_url, scim_rate_limit=True, scan_rate=1.0, scan_burst=10)
    async with (
        AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as one,
        AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as two,
    ):
        scanner = [ScimClient(http, "scanner", tokens["scanner"]) for http in (one, two)]
        quiet = ScimClient(one, "quiet", tokens["quiet"])
        for n in range(10):
            await scanner[0].create_user(f"u{n}@example.com", title="Engineer")
            await quiet.create_user(f"q{n}@example.com", title="Engineer")
        first = await scanner[0].get("/Users", params={**SCAN, "count": 3, "startIndex": 2})
        assert first.status_code == 200, first.text
        assert first.json()["totalResults"] == 10
        assert [u["userName"] for u in first.json()["Resources"]] == [
            "u1@example.com",
            "u2@example.com",
            "u3@example.com",
        ]
        refused = await scanner[1].get("/Users", params=SCAN)  # the other process
        assert refused.status_code == 429, refused.text
        assert refused.json()["schemas"] == [ERROR_SCHEMA]
        assert refused.json()["status"] == "429"
        assert 5 <= int(refused.headers["Retry-After"]) <= 11
        lookup = await scanner[1].get("/Users", params={"filter": 'userName eq "u1@example.com"'})
        assert lookup.status_code == 200
        assert lookup.json()["totalResults"] == 1
        assert (await quiet.get("/Users", params=SCAN)).json()["totalResults"] == 10
        scrape = (await two.get("/metrics", headers=SCRAPE)).text
        assert 'scim_bridge_scim_throttled_total{tenant="scanner"} 1.0' in scrape


async def test_scans_are_not_budgeted_when_limits_are_off(redis: Redis, redis_url: str) -> None:
    async with running_api(redis, redis_url, "acme", scan_rate=1.0, scan_burst=1) as clients:
        acme = clients["acme"]
        await acme.create_user("a@example.com", title="Engineer")
        await acme.create_user("b@example.com", title="Engineer")
        for _ in range(3):
            assert (await acme.get("/Users", params=SCAN)).status_code == 200


async def zrange_calls(redis: Redis) -> int:
    stats: dict[str, Any] = await redis.info("commandstats")
    return int(stats.get("cmdstat_zrange", {}).get("calls", 0)) + int(
        stats.get("cmdstat_zrangebylex", {}).get("calls", 0)
    )


async def test_list_and_filter_answers_read_no_members_unless_asked(
    redis: Redis, redis_url: str
) -> None:
    async with running_api(redis, redis_url, "acme") as clients:
        acme = clients["acme"]
        users = [(await acme.create_user(f"u{n}@example.com"))["id"] for n in range(5)]
        for n in range(4):
            created = await acme.post(
                "/Groups",
                {
                    "schemas": [GROUP_SCHEMA],
                    "displayName": f"Team {n}",
                    "members": [{"value": u} for u in users],
                },
            )
            assert created.status_code == 201
        for params in (
            {},
            {"excludedAttributes": "members"},
            {"filter": 'displayName eq "Team 2"', "excludedAttributes": "members"},
            {"filter": 'displayName sw "Team"'},
        ):
            await redis.config_resetstat()
            answer = await acme.get("/Groups", params=params)
            assert answer.status_code == 200
            resources = answer.json()["Resources"]
            assert resources, params
            assert all("members" not in g for g in resources), params
            # Only the ids (a page, or a scan's batches); no member set was read.
            assert await zrange_calls(redis) <= 2, params
        asked = await acme.get("/Groups", params={"attributes": "displayName,members"})
        assert [len(g["members"]) for g in asked.json()["Resources"]] == [5] * 4
        by_member = await acme.get("/Groups", params={"filter": f'members[value eq "{users[0]}"]'})
        assert by_member.json()["totalResults"] == 4
        one = await acme.get(f"/Groups/{asked.json()['Resources'][0]['id']}")
        assert len(one.json()["members"]) == 5  # a single group: returned by default
