"""The control API (`/_sandbox`) and configuration from the environment."""

from __future__ import annotations

import pytest

from lms_sandbox import SandboxConfig
from tests.unit.lms_sandbox.sandbox_testkit import ACME, AUTH, config, learner, sandbox_client


async def test_create_org_is_idempotent_and_the_org_answers_at_once() -> None:
    async with sandbox_client() as (client, _):
        created = await client.post("/_sandbox/orgs", json={"org": "initech", "api_key": "k1"})
        assert (created.status_code, created.json()) == (201, {"org": "initech", "created": True})
        again = await client.post("/_sandbox/orgs", json={"org": "initech", "api_key": "k1"})
        assert (again.status_code, again.json()) == (200, {"org": "initech", "created": False})
        response = await client.get(
            "/org/initech/api/v1/learners", headers={"Authorization": "Token k1"}
        )
        assert response.status_code == 200
        assert (await client.get("/_sandbox/orgs")).json() == {
            "orgs": ["acme", "globex", "initech"]
        }


@pytest.mark.parametrize(
    "body", [{"org": "", "api_key": "k"}, {"org": "a/b", "api_key": "k"}, {"org": "x"}, []]
)
async def test_create_org_rejects_bad_bodies(body: object) -> None:
    async with sandbox_client() as (client, _):
        response = await client.post("/_sandbox/orgs", json=body)
        assert response.status_code == 422


async def test_auto_orgs_accept_any_org_with_its_sandbox_key() -> None:
    async with sandbox_client(config(auto_orgs=True)) as (client, _):
        key = {"Authorization": "Token sandbox-key-umbrella"}
        assert (await client.get("/org/umbrella/api/v1/learners", headers=key)).status_code == 200
        assert (await client.get("/_sandbox/orgs/umbrella/learners")).status_code == 200
        # A wrong key neither creates an org nor gets in.
        response = await client.get("/org/other/api/v1/learners", headers=key)
        assert response.status_code == 404


async def test_knobs_read_and_update() -> None:
    async with sandbox_client() as (client, sandbox):
        update = {"latency_ms": 5, "fault_rate": 0.25, "burst": 7, "fault_statuses": [503]}
        response = await client.put("/_sandbox/knobs", json=update)
        assert response.status_code == 200
        knobs = (await client.get("/_sandbox/knobs")).json()
        assert {name: knobs[name] for name in update} == update
        assert sandbox.knobs.burst == 7


@pytest.mark.parametrize(
    "update",
    [
        {"fault_rate": 1.5},
        {"drop_after_write_rate": -0.1},
        {"burst": 0},
        {"rate": "fast"},
        {"fault_statuses": [500]},
        {"fault_statuses": []},
        {"colour": "red"},
    ],
)
async def test_bad_knobs_are_422_and_change_nothing(update: dict[str, object]) -> None:
    async with sandbox_client() as (client, _):
        before = (await client.get("/_sandbox/knobs")).json()
        response = await client.put("/_sandbox/knobs", json={"latency_ms": 9, **update})
        assert response.status_code == 422
        assert response.json()["error"] == "validation_failed"
        assert (await client.get("/_sandbox/knobs")).json() == before


async def test_insert_dump_and_hand_edit() -> None:
    async with sandbox_client() as (client, _):
        inserted = await client.post(
            "/_sandbox/orgs/acme/learners",
            json=learner(1, external_ref="old-scim-id", status="deactivated"),
        )
        assert inserted.status_code == 201
        row = inserted.json()
        assert (row["id"], row["status"]) == (1, "deactivated")

        # The API sees it: a create with the same email meets 409 naming it.
        response = await client.post(f"{ACME}/learners", json=learner(1), headers=AUTH)
        assert response.json() == {"error": "email_taken", "learner_id": 1}

        edited = await client.patch(
            "/_sandbox/orgs/acme/learners/1", json={"team": "Hand", "status": "active"}
        )
        assert edited.status_code == 200
        assert (edited.json()["team"], edited.json()["status"]) == ("Hand", "active")
        assert edited.json()["updated_at"] > row["updated_at"]

        dump = (await client.get("/_sandbox/orgs/acme/learners")).json()
        assert dump == {"results": [edited.json()]}
        # Hand edits and inserts are not LMS traffic.
        assert (await client.get("/_sandbox/stats")).json()["orgs"]["acme"]["total"] == 1


async def test_control_learner_errors() -> None:
    async with sandbox_client() as (client, _):
        assert (await client.get("/_sandbox/orgs/nope/learners")).status_code == 404
        response = await client.post("/_sandbox/orgs/acme/learners", json={"status": "gone"})
        assert response.json()["fields"] == {"status": ["must be active or deactivated"]}
        response = await client.post("/_sandbox/orgs/acme/learners", json={"email": "x"})
        assert set(response.json()["fields"]) == {"email", "first_name", "last_name"}
        response = await client.patch("/_sandbox/orgs/acme/learners/5", json={"team": "x"})
        assert response.status_code == 404
        await client.post("/_sandbox/orgs/acme/learners", json=learner(1))
        await client.post("/_sandbox/orgs/acme/learners", json=learner(2))
        response = await client.patch(
            "/_sandbox/orgs/acme/learners/2", json={"email": "USER1@example.com"}
        )
        assert response.json() == {"error": "email_taken", "learner_id": 1}


async def test_stats_count_by_org_route_and_status() -> None:
    async with sandbox_client() as (client, _):
        await client.post(f"{ACME}/learners", json=learner(1), headers=AUTH)
        await client.post(f"{ACME}/learners", json=learner(1), headers=AUTH)
        await client.patch(f"{ACME}/learners/1", json={"team": "x"}, headers=AUTH)
        await client.post(f"{ACME}/learners/1/deactivate", headers=AUTH)
        await client.get(f"{ACME}/learners/1", headers={"Authorization": "Token no"})
        stats = (await client.get("/_sandbox/stats")).json()
        assert stats["total"] == 5
        assert stats["by_route"]["POST /api/v1/learners"] == 2
        assert stats["orgs"]["acme"]["routes"] == {
            "POST /api/v1/learners": {"201": 1, "409": 1},
            "PATCH /api/v1/learners/{id}": {"200": 1},
            "POST /api/v1/learners/{id}/deactivate": {"200": 1},
            "GET /api/v1/learners/{id}": {"401": 1},
        }
        assert stats["orgs"]["acme"]["by_status"] == {"200": 2, "201": 1, "401": 1, "409": 1}


async def test_reset_clears_stats_and_optionally_data_and_knobs() -> None:
    async with sandbox_client(config(rate=1, burst=1)) as (client, _):
        await client.post(f"{ACME}/learners", json=learner(1), headers=AUTH)
        await client.put("/_sandbox/knobs", json={"latency_ms": 1})
        assert (await client.post("/_sandbox/reset")).status_code == 200
        assert (await client.get("/_sandbox/stats")).json()["total"] == 0
        # The rate bucket was refilled, the data and knobs are kept.
        response = await client.get(f"{ACME}/learners", headers=AUTH)
        assert response.status_code == 200
        assert len(response.json()["results"]) == 1
        assert (await client.get("/_sandbox/knobs")).json()["latency_ms"] == 1

        await client.post("/_sandbox/reset", json={"data": True, "knobs": True})
        assert (await client.get("/_sandbox/orgs/acme/learners")).json() == {"results": []}
        assert (await client.get("/_sandbox/knobs")).json()["latency_ms"] == 0
        created = await client.post(f"{ACME}/learners", json=learner(1), headers=AUTH)
        assert created.json()["id"] == 1  # ids start again from 1
        assert (await client.post("/_sandbox/reset", json={"everything": 1})).status_code == 422


def test_config_from_environment() -> None:
    cfg = SandboxConfig.from_env(
        {
            "SANDBOX_ORGS": "acme:key1, globex:key2,",
            "SANDBOX_LATENCY_MS": "20",
            "SANDBOX_LATENCY_JITTER_MS": "5",
            "SANDBOX_RATE": "50",
            "SANDBOX_BURST": "100",
            "SANDBOX_FAULT_RATE": "0.1",
            "SANDBOX_DROP_RATE": "0.05",
            "SANDBOX_SEED": "7",
            "SANDBOX_AUTO_ORGS": "1",
        }
    )
    assert cfg == SandboxConfig(
        orgs={"acme": "key1", "globex": "key2"},
        latency_ms=20,
        latency_jitter_ms=5,
        rate=50,
        burst=100,
        fault_rate=0.1,
        drop_after_write_rate=0.05,
        seed=7,
        auto_orgs=True,
    )
    assert SandboxConfig.from_env({}) == SandboxConfig()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SANDBOX_ORGS", "acme"),
        ("SANDBOX_ORGS", "acme:"),
        ("SANDBOX_RATE", "fast"),
        ("SANDBOX_BURST", "1.5"),
        ("SANDBOX_FAULT_RATE", "2"),
        ("SANDBOX_SEED", "x"),
        ("SANDBOX_LATENCY_MS", "-1"),
        ("SANDBOX_BURST", "0"),
    ],
)
def test_bad_environment_values_fail_at_start(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}"):
        SandboxConfig.from_env({name: value})
