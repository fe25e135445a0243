"""The admin API's tenant list at many tenants: paged, sorted by what needs
a look, searchable by slug or name, its figures right as users are created,
synced, fail, are deleted and tenants are purged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from core.settings import Settings
from shadow import Tenant
from shadow.lifecycle import begin_purge, purge_keys
from tests.support.worker_fixtures import BASE, KEY, scim_user
from worker.deps import WorkerDeps
from worker.sync import sync_user

OPERATOR = "operator-secret-0123456789"
OP = {"Authorization": f"Bearer {OPERATOR}"}


@pytest.fixture
async def http(redis: Redis, redis_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = Settings(redis_url=redis_url, public_url="https://bridge.test", admin_token=OPERATOR)
    async with AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as client:
        yield client


async def listing(http: AsyncTestClient[Any], **params: Any) -> dict[str, Any]:
    response = await http.get("/admin/v1/tenants", params=params, headers=OP)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def slugs(body: dict[str, Any]) -> list[str]:
    return [row["tenant"] for row in body["tenants"]]


async def make(deps: WorkerDeps, slug: str, name: str = "") -> None:
    await deps.tenants.create(
        Tenant(slug=slug, name=name or slug.title(), lms_url=BASE, lms_api_key=KEY, lms_rate=1000)
    )


async def put(deps: WorkerDeps, slug: str, uid: str, doc: dict[str, Any] | None) -> None:
    mode = "delete" if doc is None else "create"
    await deps.resources.write(slug, "u", uid, mode, doc, interval_ms=1)  # type: ignore[arg-type]


NO_EMAIL = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "nomail"}


async def test_pages_cover_every_tenant_once_and_the_default_page_is_bounded(
    deps: WorkerDeps, http: AsyncTestClient[Any]
) -> None:
    for n in range(120):
        await make(deps, f"t-{n:03d}")
    first = await listing(http)
    assert (first["total"], first["limit"], first["offset"]) == (120, 50, 0)
    assert len(first["tenants"]) == 50
    assert first["next_offset"] == 50
    seen = slugs(first)
    offset = first["next_offset"]
    while offset is not None:
        page = await listing(http, offset=offset)
        seen += slugs(page)
        offset = page["next_offset"]
    assert seen == sorted(seen) == [f"t-{n:03d}" for n in range(120)]  # all idle: slug order
    row = first["tenants"][0]
    assert {"tenant", "name", "scim_url", "pending", "synced", "failed", "held"} <= set(row)
    assert "lms_api_key" not in row


async def test_tenants_needing_a_look_come_first_and_follow_their_users(
    deps: WorkerDeps, http: AsyncTestClient[Any]
) -> None:
    for slug in ("calm", "busy", "broken", "quiet"):
        await make(deps, slug)
    await put(deps, "busy", "b1", scim_user("b1@example.com"))
    await put(deps, "busy", "b2", scim_user("b2@example.com"))
    await put(deps, "broken", "x1", NO_EMAIL)
    assert await sync_user({"deps": deps}, "broken", "x1") == "failed"

    body = await listing(http)
    assert slugs(body) == ["broken", "busy", "calm", "quiet"]
    rows = {row["tenant"]: row for row in body["tenants"]}
    assert (rows["broken"]["failed"], rows["busy"]["pending"]) == (1, 2)
    assert slugs(await listing(http, sort="pending"))[:2] == ["busy", "broken"]
    assert slugs(await listing(http, sort="slug")) == ["broken", "busy", "calm", "quiet"]

    # busy syncs both users: no longer pending, it sorts among the idle ones.
    for uid in ("b1", "b2"):
        assert await sync_user({"deps": deps}, "busy", uid) == "synced"
    body = await listing(http, sort="pending")
    rows = {row["tenant"]: row for row in body["tenants"]}
    assert (rows["busy"]["pending"], rows["busy"]["synced"]) == (0, 2)
    assert slugs(body)[0] == "broken"

    # The failed user is deleted and its delete applied: broken is fine again.
    await put(deps, "broken", "x1", None)
    assert await sync_user({"deps": deps}, "broken", "x1") == "synced (deleted)"
    rows = {row["tenant"]: row for row in (await listing(http))["tenants"]}
    assert rows["broken"]["failed"] == 0

    # A purged tenant is gone from the list and from the index behind it.
    await begin_purge(deps.redis, "busy")
    await purge_keys(deps.redis, "busy")
    body = await listing(http)
    assert "busy" not in slugs(body)
    assert body["total"] == 3


async def test_search_finds_by_part_of_slug_or_name(
    deps: WorkerDeps, http: AsyncTestClient[Any]
) -> None:
    await make(deps, "acme-eu", "Acme Europe")
    await make(deps, "globex", "Globex Learning")
    await make(deps, "initech", "Initech")
    assert slugs(await listing(http, q="acme")) == ["acme-eu"]
    assert slugs(await listing(http, q="LEARN")) == ["globex"]
    tenant = await deps.tenants.get("initech")
    assert tenant is not None
    tenant.name = "Initrode"
    await deps.tenants.save(tenant)
    assert slugs(await listing(http, q="initrode")) == ["initech"]
    assert (await listing(http, q="nothing"))["tenants"] == []


@pytest.mark.parametrize(
    "params",
    [{"sort": "size"}, {"limit": "0"}, {"limit": "501"}, {"offset": "-1"}, {"q": "x" * 201}],
)
async def test_bad_list_parameters_are_a_400_naming_the_problem(
    http: AsyncTestClient[Any], params: dict[str, str]
) -> None:
    response = await http.get("/admin/v1/tenants", params=params, headers=OP)
    assert response.status_code == 400
    assert set(response.json()) >= {"error", "detail"}
