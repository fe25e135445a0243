"""The benchmarks' baseline: a bare Litestar handler doing one Redis write.

Measured in the same run as the bridge, on the same Redis, so the ratio
says what the bridge's SCIM work costs on this (shared, noisy) machine.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from litestar import Litestar, Request, post
from redis.asyncio import Redis

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@post("/write", status_code=201)
async def write(request: Request) -> dict[str, str]:  # type: ignore[type-arg]
    body = await request.body()
    key = f"baseline:{uuid.uuid4().hex}"
    await request.app.state.redis.set(key, body)
    return {"id": key}


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    app.state.redis = Redis.from_url(REDIS_URL)
    try:
        yield
    finally:
        await app.state.redis.aclose()


app = Litestar(route_handlers=[write], lifespan=[lifespan])

if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning", access_log=False
    )
