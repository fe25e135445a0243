"""Fixtures of the admin API tests: the app, with the operator token
`OPERATOR` (tests.support.api), on a clean test database; and a SCIM client
of the sandbox tenant `ORG` for the modules that use `tenant`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from tests.support.api import OPERATOR, ScimClient, bridge_settings
from tests.support.worker_fixtures import ORG
from worker.deps import WorkerDeps


@pytest.fixture
async def http(redis: Redis, redis_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = bridge_settings(redis_url, public_url="https://bridge.test", admin_token=OPERATOR)
    async with AsyncTestClient(app=create_app(settings), base_url="https://bridge.test") as client:
        yield client


@pytest.fixture
async def scim(http: AsyncTestClient[Any], deps: WorkerDeps) -> ScimClient:
    return ScimClient(http, ORG, (await deps.tenants.issue_token(ORG)).token)
