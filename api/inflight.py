"""A cap on one tenant's SCIM requests in flight in this API process.

The request rate (shadow/limits.py) bounds how many requests a tenant
starts a second; this bounds how many it holds at once, so that one
tenant's slow requests (full-scan filters, large groups) cannot take every
slot of a process while others wait (docs/architecture.md, invariant 7).
Past the cap a request is answered 429 with Retry-After, before any work.
An admitted request then waits for its turn at the process's work
(api/fair_turns.py), which is at once unless the process is saturated.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from api.fair_turns import FairTurns

__all__ = ["TenantInFlight"]

#: Where `admit` marks an admitted request in the ASGI scope's state, and
#: `take_turn` one that holds a turn.
_ADMITTED = "inflight_tenant"
_TURN = "turn_tenant"


class TenantInFlight:
    """ASGI wrapper (installed by `api.app.create_app`): `api.auth` admits a
    request of an authenticated tenant, and the wrapper lets it go when its
    answer has been sent, whatever happened. Counts are kept only for
    tenants with requests in flight."""

    __slots__ = ("_counts", "app", "cap", "turns")

    def __init__(self, app: ASGIApp, cap: int, turns: FairTurns) -> None:
        self.app = app
        self.cap = cap
        self.turns = turns
        self._counts: dict[str, int] = {}

    def admit(self, scope: Scope, tenant: str) -> bool:
        """Count this request against `tenant`; False (nothing counted) when
        the tenant already has `cap` in flight. Once per request."""
        if _ADMITTED in scope["state"]:
            return True
        count = self._counts.get(tenant, 0)
        if count >= self.cap:
            return False
        self._counts[tenant] = count + 1
        scope["state"][_ADMITTED] = tenant
        return True

    async def take_turn(self, scope: Scope, tenant: str) -> None:
        """Wait for this admitted request's turn at the process's work."""
        if _TURN in scope["state"]:
            return
        await self.turns.take(tenant)
        scope["state"][_TURN] = tenant

    def in_flight(self, tenant: str) -> int:
        return self._counts.get(tenant, 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            turn = (scope.get("state") or {}).pop(_TURN, None)
            if turn is not None:
                self.turns.give_back(turn)
            tenant = (scope.get("state") or {}).pop(_ADMITTED, None)
            if tenant is not None:
                left = self._counts.get(tenant, 1) - 1
                if left > 0:
                    self._counts[tenant] = left
                else:
                    self._counts.pop(tenant, None)
