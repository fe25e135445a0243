"""`Sandbox`: all the state of one running sandbox, shared by the gate and both APIs."""

from __future__ import annotations

import time
from collections.abc import Callable

from msgspec import UNSET

from .config import Knobs, KnobsUpdate, SandboxConfig, auto_org_key
from .faults import Chaos, RateLimiter
from .stats import Stats
from .store import Organisation, Store

__all__ = ["Sandbox"]


class Sandbox:
    """The store, the live knobs, the rate limiter, the random source and the stats.

    One instance per app, so two apps in one test process never share state.
    """

    def __init__(
        self,
        config: SandboxConfig,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.knobs: Knobs = config.knobs()
        self.store = Store()
        self.limiter = RateLimiter(monotonic)
        self.chaos = Chaos(config.seed, clock)
        self.stats = Stats()
        self._clock = clock
        for name, api_key in config.orgs.items():
            self.store.add(name, api_key)

    def __deepcopy__(self, memo: dict[int, object]) -> Sandbox:
        # A live handle, never copied: Litestar deep-copies routers (and so the gate that
        # holds this) when it registers them, and a copy would split the state in two.
        return self

    def org_for(self, name: str, api_key: str | None) -> Organisation | None:
        """The organisation `name`, auto-created when `auto_orgs` is on and the key is its own."""
        org = self.store.get(name)
        if org is None and self.knobs.auto_orgs and api_key == auto_org_key(name):
            org, _ = self.store.add(name, api_key)
        return org

    def update_knobs(self, update: KnobsUpdate) -> None:
        """Apply the given knobs; `outage_seconds` becomes `outage_until` counted from now."""
        for name in Knobs.__struct_fields__:
            value = getattr(update, name)
            if value is not UNSET:
                setattr(self.knobs, name, value)
        if update.outage_seconds is not UNSET:
            seconds = update.outage_seconds
            self.knobs.outage_until = self._clock() + seconds if seconds > 0 else None
        if update.seed is not UNSET:
            self.chaos.reseed(update.seed)

    def reset(self, *, data: bool = False, knobs: bool = False) -> None:
        """Clear the stats and refill the rate buckets; optionally learners and knobs too."""
        self.stats.clear()
        self.limiter.reset()
        if data:
            self.store.clear_learners()
        if knobs:
            self.knobs = self.config.knobs()
            self.chaos.reseed(self.knobs.seed)
