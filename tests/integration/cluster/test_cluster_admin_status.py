"""Ops status, failed users, timelines and replay on a Redis Cluster.

Re-run with the shadow store on the Redis Cluster and the queue on a plain
Redis (conftest.py); a module of its own because its fixtures' names
(`http`, ...) are those of other admin test modules.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from tests.integration.admin import test_admin_status as reused
from tests.integration.cluster.servers import reuse

reuse(globals(), reused)


@pytest.fixture(autouse=True)
def _queue_on_its_own_redis(use_queue_redis: Callable[[ModuleType], None]) -> None:
    use_queue_redis(reused)
