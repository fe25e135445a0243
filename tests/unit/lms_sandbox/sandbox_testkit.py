"""Shared helpers for the lms_sandbox tests (a plain module: no conftest, by the team's rule)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from lms_sandbox import Sandbox, SandboxConfig, create_app

ACME_KEY = "acme-secret"
GLOBEX_KEY = "globex-secret"
ACME = "/org/acme/api/v1"
GLOBEX = "/org/globex/api/v1"
AUTH = {"Authorization": f"Token {ACME_KEY}"}
GLOBEX_AUTH = {"Authorization": f"Token {GLOBEX_KEY}"}

Client = AsyncTestClient[Litestar]


def config(**knobs: Any) -> SandboxConfig:
    """Two organisations; rate limiting off unless a test turns it on."""
    knobs.setdefault("rate", 0.0)
    return SandboxConfig(orgs={"acme": ACME_KEY, "globex": GLOBEX_KEY}, **knobs)


@asynccontextmanager
async def sandbox_client(cfg: SandboxConfig | None = None) -> AsyncIterator[tuple[Client, Sandbox]]:
    """A test client on a fresh app, and the app's state for direct assertions."""
    sandbox = Sandbox(cfg if cfg is not None else config())
    async with AsyncTestClient(app=create_app(sandbox=sandbox)) as client:
        yield client, sandbox


def learner(n: int = 1, **fields: Any) -> dict[str, Any]:
    """A valid POST body for learner number n; keyword arguments override or add fields."""
    body: dict[str, Any] = {
        "email": f"user{n}@example.com",
        "first_name": f"First{n}",
        "last_name": f"Last{n}",
    }
    body.update(fields)
    return body
