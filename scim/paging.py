"""Paging a filter's matches (RFC 7644 §3.4.2.4) in bounded memory.

A filter that no index answers reads every resource of a tenant. What it
answers is only `totalResults` and one page, so that is all it keeps: each
candidate is tested and dropped unless it falls in the page, whatever the
number of matches (docs/operations.md, "Bounded memory").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable
from typing import TypeVar

__all__ = ["YIELD_EVERY", "count_and_page"]

T = TypeVar("T")

#: Candidates tested between two yields to the event loop: a scan whose reads
#: come from memory (or a fast Redis) still lets other requests run.
YIELD_EVERY = 16


async def count_and_page(
    candidates: AsyncIterable[T],
    matches: Callable[[T], bool],
    start: int,
    count: int,
    *,
    yield_every: int = YIELD_EVERY,
) -> tuple[int, list[T]]:
    """(how many candidates match, the matches numbered `start` to
    `start + count - 1`, 1-based), keeping no other match."""
    total, seen = 0, 0
    page: list[T] = []
    async for candidate in candidates:
        seen += 1
        if seen % yield_every == 0:
            await asyncio.sleep(0)
        if matches(candidate):
            total += 1
            if start <= total < start + count:
                page.append(candidate)
    return total, page
