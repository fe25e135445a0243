"""What one tenant may hold of a worker: job slots, and an LMS that never answers.

A worker runs `WORKER_MAX_JOBS` jobs at once. Without a cap, the jobs of a
tenant whose LMS answers slowly (or not at all, until the call times out)
would take every slot while the other tenants' jobs wait in the queue
(docs/architecture.md, invariant 7). `TenantSlots` caps one tenant's jobs
in this worker; a job past the cap is deferred before it does anything. `NoAnswerStreak`
notices a tenant's LMS that keeps giving no answer, so that the tenant is
paused as a Retry-After would pause it (docs/operations.md, "Worker
fairness").
"""

from __future__ import annotations

__all__ = [
    "BUSY_DEFER_S",
    "NO_ANSWERS_BEFORE_PAUSE",
    "NO_ANSWER_PAUSE_S",
    "NoAnswerStreak",
    "TenantSlots",
]

#: A job of a tenant at its cap comes back after about this long.
BUSY_DEFER_S = 2.0
#: Calls in a row that get no answer (seen by one worker) before the tenant
#: is paused, and for how long: every worker's calls to it wait that long.
NO_ANSWERS_BEFORE_PAUSE = 5
NO_ANSWER_PAUSE_S = 30.0


class TenantSlots:
    """Jobs of each tenant running in this worker, at most `cap` each;
    counts are kept only for tenants with jobs running."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._running: dict[str, int] = {}

    def take(self, tenant: str) -> bool:
        """A slot for a job of `tenant`; False (nothing taken) at the cap."""
        running = self._running.get(tenant, 0)
        if running >= self.cap:
            return False
        self._running[tenant] = running + 1
        return True

    def give_back(self, tenant: str) -> None:
        left = self._running.get(tenant, 1) - 1
        if left > 0:
            self._running[tenant] = left
        else:
            self._running.pop(tenant, None)

    def running(self, tenant: str) -> int:
        return self._running.get(tenant, 0)


class NoAnswerStreak:
    """Each tenant's LMS calls in a row that got no answer, in this worker."""

    def __init__(self, threshold: int = NO_ANSWERS_BEFORE_PAUSE) -> None:
        self.threshold = threshold
        self._streak: dict[str, int] = {}

    def no_answer(self, tenant: str) -> bool:
        """Count one; True when the streak reaches the threshold (and restarts),
        the moment to pause the tenant."""
        streak = self._streak.get(tenant, 0) + 1
        if streak >= self.threshold:
            self._streak.pop(tenant, None)
            return True
        self._streak[tenant] = streak
        return False

    def answered(self, tenant: str) -> None:
        self._streak.pop(tenant, None)
