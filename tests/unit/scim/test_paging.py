"""A filter's matches are counted and paged in bounded memory (scim/paging.py):
only the requested page outlives the scan, and a scan yields to the event loop."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator

from scim.paging import count_and_page


class Body:
    """A candidate resource body (weak-referenceable, unlike a dict)."""

    def __init__(self, n: int) -> None:
        self.n = n


async def bodies(
    made: weakref.WeakSet[Body], how_many: int, alive_at_end: list[int] | None = None
) -> AsyncIterator[Body]:
    for n in range(how_many):
        body = Body(n)
        made.add(body)
        yield body
        del body
    if alive_at_end is not None:  # the scan's peak: every candidate seen
        gc.collect()
        alive_at_end.append(len(made))


async def test_only_the_count_and_the_page_are_kept() -> None:
    made: weakref.WeakSet[Body] = weakref.WeakSet()
    alive: list[int] = []
    scan = bodies(made, 5_000, alive)
    total, page = await count_and_page(scan, lambda b: b.n % 2 == 0, 11, 5)
    assert total == 2_500
    assert [b.n for b in page] == [20, 22, 24, 26, 28]
    assert alive[0] <= 6  # at the end of the scan: the page and the last candidate


async def test_a_page_past_the_matches_is_empty_and_counted() -> None:
    made: weakref.WeakSet[Body] = weakref.WeakSet()
    total, page = await count_and_page(bodies(made, 30), lambda b: b.n < 10, 11, 5)
    assert (total, page) == (10, [])


async def test_a_long_scan_lets_other_tasks_run_while_it_goes() -> None:
    """The candidates come without any wait (as from memory): without the
    scan's own yields, the other task would not run until it ended."""
    made: weakref.WeakSet[Body] = weakref.WeakSet()
    ticks: list[int] = []
    seen = 0

    def matches(body: Body) -> bool:
        nonlocal seen
        seen = body.n
        return True

    async def other_request() -> None:
        while True:
            ticks.append(seen)
            await asyncio.sleep(0)

    other = asyncio.create_task(other_request())
    await asyncio.sleep(0)
    await count_and_page(bodies(made, 6_400), matches, 1, 10, yield_every=64)
    other.cancel()
    during = [t for t in ticks if 0 < t < 6_399]
    assert len(during) >= 6_400 // 64 - 2
