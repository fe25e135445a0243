"""What the LMS client tests share: one organisation's base URL and key, a
learner as the LMS answers it, and a stand-in for `asyncio.sleep` that
records the waits the retry policy asks for instead of spending them."""

from __future__ import annotations

from typing import Any

BASE = "https://lms.test/org/acme"
KEY = "sk-live-0123456789abcdef"
LEARNERS = "/api/v1/learners"


def learner_json(learner_id: int = 7, **changes: Any) -> dict[str, Any]:
    return {
        "id": learner_id,
        "email": f"user{learner_id}@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "job_role": None,
        "company": None,
        "business_unit": None,
        "team": None,
        "external_ref": f"scim-{learner_id}",
        "status": "active",
        "created_at": "2024-05-01T10:00:00Z",
        "updated_at": "2024-05-01T10:00:00Z",
        **changes,
    }


class Sleeps:
    """Records the waits the retry policy asks for instead of spending them."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
