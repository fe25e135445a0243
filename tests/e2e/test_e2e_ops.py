"""What ops see and do, through the real `scim-bridge` CLI (docs/architecture.md, flow step 4).

`scim-bridge status <tenant> --json` shows users pending, then synced, and
a failed user with the LMS's reason; the next change of a failed user
retries it, and `scim-bridge replay` retries failed users once the cause
(the LMS credentials, the tenant's mapping) is fixed (invariant 2).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import (
    Cluster,
    ClusterFactory,
    TenantHandle,
    cluster_fixture,  # noqa: F401  (the `cluster` fixture)
    entra_user,
    make_cluster_fixture,  # noqa: F401  (the `make_cluster` fixture)
    patch_ops,
)

pytestmark = pytest.mark.e2e

STATUS_KEYS = {"tenant", "queue_depth", "pending", "synced", "failed", "oldest_pending_seconds"}


async def create(tenant: TenantHandle, body: dict[str, Any]) -> str:
    response = await tenant.scim.post("/Users", body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def status_is(cluster: Cluster, slug: str, **want: int) -> dict[str, Any]:
    """`scim-bridge status --json` once it shows the wanted counts."""

    async def check() -> dict[str, Any]:
        status = await cluster.status(slug)
        assert set(status) >= STATUS_KEYS, status
        got = {key: status[key] for key in want}
        assert got == want, f"status {got}, waiting for {want}"
        return status

    found: dict[str, Any] = await cluster.wait_until(
        check, 30, message=f"status {want}", interval=0.5
    )
    return found


async def test_status_shows_pending_then_synced_and_a_failed_user_with_the_lms_reason(
    make_cluster: ClusterFactory,
) -> None:
    cluster = await make_cluster(workers=0)  # nothing syncs until workers start
    tenant = await cluster.add_tenant("contoso", via_cli=True)
    emails = [f"ops{i}@contoso.example" for i in range(5)]
    ids = await asyncio.gather(*(create(tenant, entra_user(e)) for e in emails))

    pending = await cluster.status(tenant.slug)
    assert set(pending) >= STATUS_KEYS, pending
    assert (pending["pending"], pending["synced"], pending["failed"]) == (5, 0, 0), pending
    assert pending["queue_depth"] >= 5, pending
    assert pending["oldest_pending_seconds"] > 0, pending

    for _ in range(2):
        cluster.start_worker()
    synced = await status_is(cluster, tenant.slug, pending=0, synced=5, failed=0)
    assert synced["oldest_pending_seconds"] == 0, synced

    # Another Entra user with the same work email: the LMS refuses a second
    # learner for it (409 email_taken), and the learner is ours (a live user).
    clash = await create(
        tenant, entra_user(emails[0], user_name="ops.clash@contoso.example", given="Clash")
    )
    failed = await status_is(cluster, tenant.slug, pending=0, synced=5, failed=1)
    (error,) = failed["last_errors"]
    assert error["user_id"] == clash, failed
    assert "LMS 409 email_taken" in error["error"], error
    assert ids[0] in error["error"], error  # it names the user who holds the learner

    # Entra's next change of the user (a valid email of its own) retries it.
    fixed = "ops.clash@contoso.example"
    response = await tenant.scim.patch(
        f"/Users/{clash}", patch_ops(("Replace", 'emails[type eq "work"].value', fixed))
    )
    assert response.status_code == 200, response.text
    cleared = await status_is(cluster, tenant.slug, pending=0, synced=6, failed=0)
    assert cleared["last_errors"] == [], cleared
    learners = {x["external_ref"]: x for x in await cluster.sandbox_learners(tenant.org)}
    assert learners[clash]["email"] == fixed
    assert learners[clash]["first_name"] == "Clash"
    assert learners[ids[0]]["first_name"] == "Ada"
    assert len(learners) == 6


async def test_replay_retries_failed_users_once_the_cause_is_fixed(
    cluster: Cluster, tmp_path: Path
) -> None:
    # An LMS key that the LMS refuses: every call is a 401.
    keyless = await cluster.add_tenant("keyless", lms_api_key="not-the-key", via_cli=True)
    # A mapping rule stricter than the data: teams over 5 characters fail.
    strict = await cluster.add_tenant("strict")
    rules = tmp_path / "strict.json"
    rules.write_text(json.dumps({"fields": {"team": {"max_length": 5, "on_too_long": "reject"}}}))
    await cluster.cli("mapping", "set", strict.slug, str(rules), "--json")

    keyless_ids = [
        await create(keyless, entra_user(f"k{i}@contoso.example", team="Ops")) for i in range(3)
    ]
    strict_ids = [
        await create(strict, entra_user(f"s{i}@contoso.example", team="Platform")) for i in range(3)
    ]

    # A refused key is the tenant's fault, not the users': they wait, pending.
    async def paused() -> dict[str, Any]:
        status = await cluster.status(keyless.slug)
        assert status["lms_paused"] is not None, status
        return status

    status = await cluster.wait_until(paused, 30, message="the tenant to pause")
    assert status["lms_paused"]["reason"].startswith("LMS 401")
    assert (status["pending"], status["failed"]) == (3, 0)
    status = await status_is(cluster, strict.slug, pending=0, synced=0, failed=3)
    assert all("team" in e["error"] for e in status["last_errors"]), status
    assert await cluster.sandbox_learners(keyless.org) == []
    assert await cluster.sandbox_learners(strict.org) == []

    # Fix the LMS credentials: the tenant resumes by itself, no replay.
    await cluster.cli(
        "tenant", "update", keyless.slug, "--lms-api-key", f"sandbox-key-{keyless.org}", "--json"
    )
    status = await status_is(cluster, keyless.slug, pending=0, synced=3, failed=0)
    assert status["lms_paused"] is None
    refs = {x["external_ref"] for x in await cluster.sandbox_learners(keyless.org)}
    assert refs == set(keyless_ids)

    # Replay one user: the rules still refuse it.
    assert (await cluster.replay(strict.slug, user=strict_ids[0]))["replayed"] == 1
    await status_is(cluster, strict.slug, pending=0, synced=0, failed=3)
    # Fix the mapping: a rule change is a change of every user, no replay needed.
    rules.write_text(json.dumps({"fields": {}}))
    await cluster.cli("mapping", "set", strict.slug, str(rules), "--json")
    await status_is(cluster, strict.slug, pending=0, synced=3, failed=0)
    learners = await cluster.sandbox_learners(strict.org)
    assert {x["external_ref"] for x in learners} == set(strict_ids)
    assert {x["team"] for x in learners} == {"Platform"}
