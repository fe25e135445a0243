"""A worker whose Redis hangs (SIGSTOP: connections open, nothing answers)
does not hang with it: its queue client has the read timeout of every other
client (worker/settings.py `create_worker`), so the run ends with a Redis
error within seconds, which `run_worker` answers by starting afresh."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from core.settings import Settings
from tests.support.api import SECRET_KEY
from tests.support.redis_server import RedisServer, start_redis
from worker.claim import REDIS_LOST
from worker.queue import QUEUE_NAME
from worker.settings import create_worker

#: Safety net only: a worker still running this long after Redis stopped hangs.
NEVER_S = 60


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis(tmp_path)
    try:
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


async def test_a_worker_whose_redis_hangs_ends_its_run_with_a_redis_error(
    own_redis: RedisServer,
) -> None:
    settings = Settings(redis_url=own_redis.url, secret_keys=(SECRET_KEY,), poll_delay_s=0.05)
    ended: list[BaseException | None] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            create_worker(settings, handle_signals=False).run()
            ended.append(None)
        except BaseException as exc:  # what the run ended with, for the test
            ended.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    redis = Redis.from_url(own_redis.url)
    try:
        while not await redis.exists(QUEUE_NAME + ":health-check"):  # the worker runs
            assert thread.is_alive(), ended
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    await asyncio.to_thread(thread.join, NEVER_S)
    assert not thread.is_alive(), "the worker hangs with its Redis"
    assert len(ended) == 1
    assert isinstance(ended[0], REDIS_LOST), repr(ended[0])
