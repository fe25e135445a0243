"""Metrics on a Redis Cluster: the workers' flush (one MULTI of HINCRBYFLOAT,
run as one Lua step on the cluster) and the API's scrape (pipelines over
every tenant's keys, spread over the nodes), through
tests/integration/observability/test_obs_metrics_flow.py re-run here.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from tests.integration.cluster.servers import reuse
from tests.integration.observability import test_obs_metrics_flow as reused

reuse(globals(), reused)


@pytest.fixture(autouse=True)
def _queue_on_its_own_redis(use_queue_redis: Callable[[ModuleType], None]) -> None:
    use_queue_redis(reused)
