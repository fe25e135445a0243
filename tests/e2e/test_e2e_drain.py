"""A rolling restart under steady load resets no connection.

Two API processes with `API_DRAIN_SECONDS=2` behind a small load balancer
in the test: it sends steady SCIM traffic to the processes whose `/readyz`
answered 200 at its last look (every 0.2 s), as a real one would. One
process gets SIGTERM: its `/readyz` turns 503, the balancer moves away, it
keeps serving what still arrives, closes 2 s later, and starts again. The
client sees no connection error and no answer but 200 throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter

import httpx
import pytest

from tests.support.cluster import (
    ClusterFactory,
    entra_user,
    make_cluster_fixture,  # noqa: F401  (the `make_cluster` fixture)
)

pytestmark = pytest.mark.e2e

DRAIN_S = 2.0
CHECK_EVERY_S = 0.2
CONCURRENCY = 4


class Balancer:
    """Round-robin over the backends that are ready; a fresh connection pool
    for a backend each time it comes back into rotation."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.ready = dict.fromkeys(urls, True)
        self.pools = {url: httpx.AsyncClient(base_url=url, timeout=10) for url in urls}
        self.turn = 0
        self.errors: list[str] = []
        self.answers: Counter[tuple[str, int]] = Counter()
        self.ready_changes: list[tuple[float, str, bool]] = []

    async def health_checks(self) -> None:
        async with httpx.AsyncClient(timeout=1) as probe:
            while True:
                for url in self.urls:
                    try:
                        ok = (await probe.get(f"{url}/readyz")).status_code == 200
                    except httpx.TransportError:
                        ok = False
                    if ok != self.ready[url]:
                        if ok:
                            await self.pools[url].aclose()
                            self.pools[url] = httpx.AsyncClient(base_url=url, timeout=10)
                        self.ready[url] = ok
                        self.ready_changes.append((time.monotonic(), url, ok))
                await asyncio.sleep(CHECK_EVERY_S)

    async def send(self, path: str, headers: dict[str, str]) -> None:
        live = [url for url in self.urls if self.ready[url]]
        assert live, "no backend ready"
        url = live[self.turn % len(live)]
        self.turn += 1
        try:
            response = await self.pools[url].get(path, headers=headers)
        except httpx.TransportError as exc:
            self.errors.append(f"{url}: {type(exc).__name__}: {exc}")
            return
        self.answers[(url, response.status_code)] += 1

    async def aclose(self) -> None:
        for pool in self.pools.values():
            await pool.aclose()


async def test_a_draining_api_process_is_left_by_the_balancer_before_it_closes(
    make_cluster: ClusterFactory,
) -> None:
    cluster = await make_cluster(apis=2, workers=0, api_env={"API_DRAIN_SECONDS": str(DRAIN_S)})
    acme = await cluster.add_tenant("acme")
    created = await acme.scim.post("/Users", entra_user("ada@acme.example"))
    assert created.status_code == 201, created.text
    balancer = Balancer(cluster.api_urls)
    headers = {"Authorization": f"Bearer {acme.token}"}
    path = '/scim/acme/v2/Users?filter=userName eq "ada@acme.example"'
    stop = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            await balancer.send(path, headers)
            await asyncio.sleep(0.01)

    checks = asyncio.create_task(balancer.health_checks())
    clients = [asyncio.create_task(client()) for _ in range(CONCURRENCY)]
    try:
        await asyncio.sleep(1.0)
        draining = cluster.api_urls[0]
        served_before = balancer.answers[(draining, 200)]
        assert served_before > 0
        signalled = time.monotonic()
        cluster.apis[0].send_signal(signal.SIGTERM)
        # The process keeps serving its drain period, then exits by itself.
        await cluster.wait_until(
            lambda: not cluster.apis[0].alive, DRAIN_S + 10, message="api-0 to exit"
        )
        exited = time.monotonic()
        assert exited - signalled >= DRAIN_S - 0.1
        await cluster.start_api(0)
        await cluster.wait_until(lambda: balancer.ready[draining], 10, message="api-0 back")
        back = balancer.answers[(draining, 200)]
        await asyncio.sleep(1.0)
        assert balancer.answers[(draining, 200)] > back  # in rotation again
    finally:
        stop.set()
        await asyncio.gather(*clients)
        checks.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await checks
        await balancer.aclose()

    assert balancer.errors == [], balancer.errors[:5]
    statuses = {status for (_, status) in balancer.answers}
    assert statuses == {200}, balancer.answers
    left = [t for t, url, ok in balancer.ready_changes if url == draining and not ok]
    assert left, "the balancer never saw /readyz turn 503"
    assert left[0] - signalled < DRAIN_S  # it left while the process still served
    assert sum(balancer.answers.values()) > 100
