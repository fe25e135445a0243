"""Turns at an API process's work go fairly between tenants (api/fair_turns.py):
within the capacity a request starts at once; past it, a freed turn goes to
the waiting tenant with the fewest requests being worked on, and no tenant
holds more than half the turns."""

from __future__ import annotations

import asyncio

import pytest

from api.fair_turns import FairTurns


async def started(turns: FairTurns, tenant: str, log: list[str]) -> asyncio.Task[None]:
    async def request() -> None:
        await turns.take(tenant)
        log.append(tenant)

    task = asyncio.create_task(request())
    await asyncio.sleep(0)  # it runs up to its wait, or starts
    return task


async def test_a_flooding_tenants_queue_does_not_delay_another_tenant() -> None:
    turns = FairTurns(capacity=4)
    log: list[str] = []
    for _ in range(10):  # the flood: 2 start (half the turns), 8 wait
        await started(turns, "noisy", log)
    assert (turns.working("noisy"), turns.waiting("noisy")) == (2, 8)
    await started(turns, "quiet", log)  # room: at once, ahead of the queue
    assert log[-1] == "quiet"
    await started(turns, "other", log)
    assert log[-1] == "other"
    assert turns.working("quiet") == turns.working("other") == 1
    late = await started(turns, "late", log)  # no room now: it waits...
    assert turns.waiting("late") == 1
    turns.give_back("noisy")  # ...and goes before the flood's next request
    await late
    assert log[-1] == "late"
    assert (turns.working("noisy"), turns.waiting("noisy")) == (1, 8)


async def test_a_turn_given_back_starts_the_tenant_with_the_fewest_working() -> None:
    turns = FairTurns(capacity=2)  # one turn per tenant at most
    log: list[str] = []
    await started(turns, "a", log)
    await started(turns, "b", log)
    for tenant in ("a", "a", "a", "b", "c"):
        await started(turns, tenant, log)
    for done in ("a", "b", "a", "c"):
        turns.give_back(done)
        await asyncio.sleep(0)
    # Each freed turn goes to a tenant with none working, the one waiting
    # longest first; a, with three queued, gets its next turn after the others.
    assert log == ["a", "b", "a", "b", "c", "a"]


async def test_a_request_cancelled_while_waiting_holds_no_turn() -> None:
    turns = FairTurns(capacity=2)
    log: list[str] = []
    await started(turns, "a", log)
    await started(turns, "b", log)
    waiting = await started(turns, "c", log)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert turns.waiting("c") == 0
    turns.give_back("a")
    turns.give_back("b")
    await started(turns, "d", log)
    await started(turns, "e", log)
    assert log == ["a", "b", "d", "e"]
