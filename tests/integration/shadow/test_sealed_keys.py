"""No Redis value holds an LMS API key in plain text (docs/architecture.md,
"BRIDGE_SECRET_KEY"), and the worker still reaches the LMS with it."""

from __future__ import annotations

import os
from typing import Any

from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from core.settings import Settings
from shadow import Tenant, TenantStore
from tests.support.api import api_settings
from tests.support.keyscan import traces_of
from tests.support.worker_fixtures import BASE, KEY, ORG, SandboxLms, put_user, run_sync, scim_user
from worker.deps import WorkerDeps

OPERATOR = "operator-token-0123456789-0123456789"


async def test_keys_set_through_the_admin_api_are_sealed_in_redis(
    redis: Redis, redis_url: str
) -> None:
    settings = api_settings(redis_url, admin_token=OPERATOR)
    op = {"Authorization": f"Bearer {OPERATOR}"}
    async with AsyncTestClient(app=create_app(settings)) as http:
        body: dict[str, Any] = {"slug": "acme", "name": "Acme", "lms_url": BASE}
        created = await http.post(
            "/admin/v1/tenants", json={**body, "lms_api_key": KEY}, headers=op
        )
        assert created.status_code == 201, created.text
        rotated = "sk-rotated-acme-5566778899"
        changed = await http.patch(
            "/admin/v1/tenants/acme", json={"lms_api_key": rotated}, headers=op
        )
        assert changed.status_code == 200, changed.text
        shown = (await http.get("/admin/v1/tenants/acme", headers=op)).text

    assert await traces_of(redis, KEY, rotated) == []
    for hidden in (KEY, rotated, "sealed:"):
        assert hidden not in shown
    stored = await TenantStore(redis).get("acme")
    assert stored is not None
    assert stored.lms_api_key.startswith("sealed:")
    assert settings.require_sealer().unseal(stored.lms_api_key) == rotated
    assert rotated not in repr(stored)
    assert rotated not in repr(settings)


async def test_the_worker_unseals_the_key_and_a_reseal_moves_it_to_a_new_key(
    redis: Redis, deps: WorkerDeps, lms: SandboxLms, worker_settings: Settings
) -> None:
    await deps.tenants.create(Tenant(slug=ORG, name="Acme", lms_url=BASE, lms_api_key=KEY))
    assert await traces_of(redis, KEY) == []
    await put_user(deps, "u-1", scim_user())
    assert await run_sync(deps, "u-1") == "synced"  # the LMS took the unsealed key

    new_key = "new-sealing-key-0123456789-0123456789"
    both = Settings(secret_keys=(new_key, os.environ["BRIDGE_SECRET_KEY"]))
    assert await TenantStore(redis, sealer=both.require_sealer()).reseal_all() == 1
    stored = await TenantStore(redis).get(ORG)
    assert stored is not None
    assert Settings(secret_keys=(new_key,)).require_sealer().unseal(stored.lms_api_key) == KEY
    assert await traces_of(redis, KEY) == []
