"""Erasing a person leaves nothing of them in any key or value; restoring a
tenant from its export brings back its settings and credentials, and no
secret travels in plain text."""

from __future__ import annotations

import json
from pathlib import Path

from redis.asyncio import Redis

from shadow import TenantStore, keys
from tests.integration.lifecycle.conftest import OP, World
from tests.support.cli import Run
from tests.support.keyscan import traces_of
from tests.support.worker_fixtures import KEY, SandboxLms, run_sync
from worker.deps import WorkerDeps


async def test_an_erased_person_leaves_no_trace_and_the_others_stay(
    world: World, redis: Redis, run_cli: Run, lms: SandboxLms
) -> None:
    zelda, ygritte, xavier = world.people
    learners_before = [(lr.id, lr.status, lr.email) for lr in lms.learners()]
    assert await traces_of(redis, zelda.email)  # she is there to begin with
    # A webhook delivery about her (the workers keep recent ones a week).
    await redis.hset(
        keys.webhook_delivery("acme", "d1"),
        mapping={"event": "user.failed", "body": f'{{"data": {{"user_id": "{zelda.id}"}}}}'},
    )
    await redis.zadd(keys.webhook_deliveries("acme"), {"d1": 1})

    done = run_cli("users", "erase", "acme", zelda.email.upper(), "--json")
    assert done.returncode == 0, done.stderr
    erased = json.loads(done.stdout)
    assert erased["user_id"] == zelda.id
    assert erased["learner_id"] is not None  # named, and left as it is
    assert await traces_of(redis, zelda.id, zelda.email, zelda.given, zelda.family) == []
    assert [(lr.id, lr.status, lr.email) for lr in lms.learners()] == learners_before

    # By userName through the admin API (the tenant's own admin key may ask).
    key_only = {"Authorization": f"Bearer {world.admin_key}"}
    answer = await world.http.post(
        "/admin/v1/tenants/acme/erasures", json={"user": ygritte.email}, headers=key_only
    )
    assert answer.status_code == 200, answer.text
    assert await traces_of(redis, ygritte.id, ygritte.email, ygritte.given, ygritte.family) == []
    missing = await world.http.post(
        "/admin/v1/tenants/acme/erasures", json={"user": ygritte.email}, headers=OP
    )
    assert missing.status_code == 404
    assert ygritte.email not in missing.text

    # Xavier and the group are still served, without the erased members.
    assert (await world.acme.get(f"/Users/{xavier.id}")).status_code == 200
    listed = await world.acme.get("/Groups", params={"attributes": "displayName,members"})
    groups = listed.json()["Resources"]
    assert [m["value"] for m in groups[0]["members"]] == [xavier.id]
    found = await world.acme.get("/Users", params={"filter": f'userName eq "{zelda.email}"'})
    assert found.json()["totalResults"] == 0


async def test_an_export_restores_settings_and_credentials_without_plain_secrets(
    world: World, redis: Redis, run_cli: Run, tmp_path: Path
) -> None:
    out = tmp_path / "acme.json"
    exported = run_cli("tenant", "export", "acme", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    text = out.read_text()
    assert KEY not in text  # the LMS key is stored unsealed: it is left out
    assert world.acme.token not in text
    doc = json.loads(text)
    assert (doc["tenant"]["lms_rate"], doc["breaker"]["share"]) == (20.0, "0.5")
    assert "Acme Ltd" in doc["mapping"]
    assert len(doc["tokens"]) == 2
    assert len(doc["admin_keys"]) == 1
    assert not any(p.email in text or p.id in text for p in world.people)

    purged = run_cli("tenant", "delete", "acme", "--purge", "--yes", "--json")
    assert purged.returncode == 0, purged.stderr
    restored = run_cli("tenant", "import", str(out), "--lms-api-key", KEY, "--json")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout) == {
        "tenant": "acme",
        "enabled": True,
        "mapping": True,
        "tokens": 2,
        "admin_keys": 1,
    }
    # The IdP's token and the admin key work again; the users are not back.
    assert await TenantStore(redis).authenticate("acme", world.acme.token)
    assert (await world.acme.get("/Users")).json()["totalResults"] == 0
    page = await world.http.get(
        "/admin/v1/tenants/acme", headers={"Authorization": f"Bearer {world.admin_key}"}
    )
    assert page.status_code == 200
    assert await redis.hget(keys.breaker_config("acme"), "share") == b"0.5"  # type: ignore[misc]
    assert await traces_of(redis, KEY) == []  # the key given at import is stored sealed

    # A sealed key travels as it is stored, never opened.
    stored = json.loads(await redis.get(keys.tenant_config("acme")) or b"{}")["lms_api_key"]
    assert stored.startswith("sealed:")
    resealed = run_cli("tenant", "export", "acme")
    assert json.loads(resealed.stdout)["lms_api_key_sealed"] == stored
    again = run_cli("tenant", "import", str(out), "--json")
    assert again.returncode == 1
    assert "already exists" in json.loads(again.stdout)["error"]


async def test_erasure_deactivates_the_learner_first_when_asked(
    world: World, redis: Redis, run_cli: Run, deps: WorkerDeps, lms: SandboxLms
) -> None:
    zelda = world.people[0]
    first = run_cli("users", "erase", "acme", zelda.email, "--deactivate-learner", "--json")
    assert first.returncode == 1, first.stderr
    assert json.loads(first.stdout) == {"tenant": "acme", "user_id": zelda.id, "state": "pending"}
    assert (await world.acme.get(f"/Users/{zelda.id}")).status_code == 404
    assert await run_sync(deps, zelda.id) == "synced (deleted)"
    done = await world.http.post(
        "/admin/v1/tenants/acme/erasures",
        json={"user": zelda.id, "deactivate_learner": True},
        headers=OP,
    )
    assert done.status_code == 200, done.text
    [learner] = [lr for lr in lms.learners() if lr.external_ref == zelda.id]
    assert learner.status == "deactivated"
    assert await traces_of(redis, zelda.id, zelda.email, zelda.given, zelda.family) == []
