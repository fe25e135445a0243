"""Group members that are no live users of the tenant: left out, never stored.

An IdP pushes a group in batches; one member the bridge does not know (not
provisioned yet, another tenant's user, a made-up id) must not fail the
whole request. It is dropped, the rest applies, and the log counts it.
Members come back with `display` and `$ref`, which the bridge writes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.support.api import GROUP_SCHEMA, PATCH_OP, ScimClient, running_api

NOBODY = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
async def clients(redis: Redis, redis_url: str) -> AsyncIterator[dict[str, ScimClient]]:
    async with running_api(redis, redis_url, "acme", "globex") as found:
        yield found


def skipped_counts(caplog: pytest.LogCaptureFixture) -> list[int]:
    return [
        r.skipped  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "scim_bridge.api" and hasattr(r, "skipped")
    ]


def member_ids(body: dict[str, Any]) -> list[str]:
    return [m["value"] for m in body.get("members", [])]


async def test_unknown_members_are_left_out_of_a_post_put_and_patch(
    clients: dict[str, ScimClient], redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    acme, globex = clients["acme"], clients["globex"]
    caplog.set_level(logging.INFO, logger="scim_bridge.api")
    ann = await acme.create_user("ann@example.com", displayName="Ann Example")
    bob = await acme.create_user("bob@example.com")
    zed = await globex.create_user("zed@example.com")
    strangers = [{"value": zed["id"]}, {"value": NOBODY}, {"value": "not-an-id"}]

    created = await acme.post(
        "/Groups",
        {
            "schemas": [GROUP_SCHEMA],
            "displayName": "Team",
            "members": [{"value": ann["id"]}, *strangers],
        },
    )
    assert created.status_code == 201, created.text
    assert member_ids(created.json()) == [ann["id"]]
    gid = created.json()["id"]
    assert skipped_counts(caplog) == [3]

    patched = await acme.patch(
        f"/Groups/{gid}",
        {
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "add", "path": "members", "value": [*strangers, {"value": bob["id"]}]},
                {"op": "replace", "path": "displayName", "value": "Renamed"},
            ],
        },
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["displayName"] == "Renamed"
    assert sorted(member_ids(patched.json())) == sorted([ann["id"], bob["id"]])
    assert skipped_counts(caplog) == [3, 3]

    put = await acme.put(
        f"/Groups/{gid}",
        {"schemas": [GROUP_SCHEMA], "displayName": "Put", "members": [*strangers]},
    )
    assert put.status_code == 200, put.text
    assert "members" not in put.json()
    assert put.json()["displayName"] == "Put"
    assert skipped_counts(caplog) == [3, 3, 3]

    # Nothing of the strangers is stored: not in the group, not on zed.
    assert await redis.zrange(f"{{t:acme}}:g:{gid}:members", 0, -1) == []
    assert not await redis.exists(f"{{t:globex}}:u:{zed['id']}:groups")
    assert not await redis.exists(f"{{t:acme}}:u:{zed['id']}:groups")


async def test_members_carry_display_and_ref_whatever_the_client_sent(
    clients: dict[str, ScimClient],
) -> None:
    acme = clients["acme"]
    ann = await acme.create_user("ann@example.com", displayName="Ann Example")
    bob = await acme.create_user("bob@example.com")
    created = await acme.post(
        "/Groups",
        {
            "schemas": [GROUP_SCHEMA],
            "displayName": "Team",
            "members": [
                {"value": ann["id"], "display": "Someone Else", "$ref": "https://evil.test/x"},
                {"value": bob["id"]},
            ],
        },
    )
    assert created.status_code == 201, created.text
    by_id = {m["value"]: m for m in created.json()["members"]}
    base = "https://bridge.test/scim/acme/v2/Users/"
    assert by_id[ann["id"]] == {
        "value": ann["id"],
        "$ref": base + ann["id"],
        "type": "User",
        "display": "Ann Example",
    }
    assert by_id[bob["id"]]["display"] == "bob@example.com"  # no displayName: the userName
    # A rename of the user shows in the group at once.
    await acme.patch(
        f"/Users/{bob['id']}",
        {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "add", "path": "displayName", "value": "Bob"}],
        },
    )
    again = (await acme.get(f"/Groups/{created.json()['id']}")).json()
    assert {m["value"]: m["display"] for m in again["members"]}[bob["id"]] == "Bob"
