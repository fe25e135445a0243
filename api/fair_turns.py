"""Turns at the work of one API process, shared fairly between tenants.

An API process works on at most `capacity` SCIM requests at once, and one
tenant on at most half of them. Within that a request starts at once.
Past it (one tenant's flood, a machine short of CPU) requests wait for a
turn, and a freed turn goes to the waiting tenant with the fewest requests
being worked on, not to whoever came first: a tenant with sixteen requests
queued waits for its own, while a tenant with one goes next, and no tenant
(with slow uploads, say) holds every turn (docs/architecture.md, invariant 7;
docs/operations.md, "Per-tenant request rate").
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["FairTurns"]


class FairTurns:
    """One per API process; `take` before the work, `give_back` after it.
    Counts are kept only for tenants with requests working or waiting."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.per_tenant = max(1, capacity // 2)
        self._active = 0
        self._working: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    async def take(self, tenant: str) -> None:
        """Wait for a turn for a request of `tenant`. Cancelled while waiting:
        no turn is held."""
        if tenant not in self._waiting and self._may_start(tenant):
            self._start(tenant)
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tenant, deque()).append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.give_back(tenant)  # granted just as it was cancelled
            else:
                self._forget(tenant, turn)
            raise

    def give_back(self, tenant: str) -> None:
        """End a turn of `tenant`; start waiting requests while there is room,
        each time of the tenant with the fewest requests being worked on."""
        self._active -= 1
        left = self._working.get(tenant, 1) - 1
        if left > 0:
            self._working[tenant] = left
        else:
            self._working.pop(tenant, None)
        while self._waiting:
            ready = [t for t in self._waiting if self._may_start(t)]
            if not ready:
                return
            chosen = min(ready, key=lambda t: self._working.get(t, 0))
            queue = self._waiting.pop(chosen)
            turn = queue.popleft()
            if queue:  # to the back: among equals, tenants take turns
                self._waiting[chosen] = queue
            self._start(chosen)
            turn.set_result(None)

    def working(self, tenant: str) -> int:
        return self._working.get(tenant, 0)

    def waiting(self, tenant: str) -> int:
        return len(self._waiting.get(tenant, ()))

    def _may_start(self, tenant: str) -> bool:
        return self._active < self.capacity and self._working.get(tenant, 0) < self.per_tenant

    def _start(self, tenant: str) -> None:
        self._active += 1
        self._working[tenant] = self._working.get(tenant, 0) + 1

    def _forget(self, tenant: str, turn: asyncio.Future[None]) -> None:
        queue = self._waiting.get(tenant)
        if queue is not None and turn in queue:
            queue.remove(turn)
            if not queue:
                del self._waiting[tenant]
