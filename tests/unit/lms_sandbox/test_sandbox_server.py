"""Drop-after-write under a real uvicorn server: the client sees a transport error, the write stays.

The only test here with a real socket: the AsyncTestClient cannot show what
a dropped connection looks like to an HTTP client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from litestar import Litestar

from lms_sandbox import create_app
from tests.unit.lms_sandbox.sandbox_testkit import ACME, AUTH, config, learner


@contextmanager
def serving(app: Litestar) -> Iterator[str]:
    """Run `app` under uvicorn on a free port in a background thread; yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, ws="none", lifespan="on", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during start-up"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_dropped_write_is_a_transport_error_although_it_was_applied() -> None:
    app = create_app(config(drop_after_write_rate=1.0, seed=1))
    with serving(app) as base_url, httpx.Client(base_url=base_url, timeout=5) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(f"{ACME}/learners", json=learner(1), headers=AUTH)

        # The learner was created, so the caller's retry meets its own learner.
        dump = client.get("/_sandbox/orgs/acme/learners").json()["results"]
        assert [row["email"] for row in dump] == ["user1@example.com"]
        retry = client.post(f"{ACME}/learners", json=learner(1), headers=AUTH)
        assert retry.json() == {"error": "email_taken", "learner_id": 1}

        # PATCH and the actions drop too, after applying; reads are never dropped.
        with pytest.raises(httpx.TransportError):
            client.patch(f"{ACME}/learners/1", json={"team": "Blue"}, headers=AUTH)
        with pytest.raises(httpx.TransportError):
            client.post(f"{ACME}/learners/1/deactivate", headers=AUTH)
        row = client.get(f"{ACME}/learners/1", headers=AUTH).json()
        assert (row["team"], row["status"]) == ("Blue", "deactivated")

        stats = client.get("/_sandbox/stats").json()["orgs"]["acme"]["routes"]
        assert stats["POST /api/v1/learners"] == {"dropped": 1, "409": 1}
        assert stats["PATCH /api/v1/learners/{id}"] == {"dropped": 1}
