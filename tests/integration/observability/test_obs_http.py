"""SCIM requests are counted and timed by route template, method and status;
every response carries a request id, and one JSON access log line per
request names it with the route template, status, duration and tenant."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.middleware import observe_requests, route_label
from core.logs import ContextFilter, JsonFormatter
from tests.support.api import SCRAPE, running_api
from tests.support.metrics import samples, value

USERS = "/scim/{tenant}/v2/Users"
USER = "/scim/{tenant}/v2/Users/{id}"


class Lines(logging.Handler):
    """Every record, as the production handler would write it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.addFilter(ContextFilter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def access(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["logger"] == "scim_bridge.access"]


@pytest.fixture
def logged() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_route_labels_are_templates_with_readable_names() -> None:
    assert route_label("/scim/{tenant_slug}/v2/Users/{rid}") == USER
    assert route_label("/scim/{tenant_slug:str}/v2/Groups/{rid:str}") == (
        "/scim/{tenant}/v2/Groups/{id}"
    )
    assert route_label("/healthz") == "/healthz"


async def test_scim_requests_are_counted_by_route_template_method_and_status(
    redis: Redis, redis_url: str
) -> None:
    async with running_api(redis, redis_url, "acme") as clients:
        scim = clients["acme"]
        user = await scim.create_user("ada@example.com")
        uid = user["id"]
        assert (await scim.get(f"/Users/{uid}")).status_code == 200
        assert (await scim.get(f"/Users/{uid}")).status_code == 200
        assert (await scim.get("/Users/00000000-0000-0000-0000-000000000000")).status_code == 404
        listed = await scim.get("/Users", params={"filter": 'userName eq "ada@example.com"'})
        assert listed.status_code == 200
        assert (await scim.delete(f"/Users/{uid}")).status_code == 204
        bad = await scim.http.get(scim.base + "/Users", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        assert (await scim.get("/NoSuchThing")).status_code == 404
        assert (await scim.http.get("/healthz")).status_code == 200
        text = (await scim.http.get("/metrics", headers=SCRAPE)).text

    found = samples(text)
    total = "scim_bridge_scim_requests_total"
    assert value(found, total, route=USERS, method="POST", status="201") == 1
    assert value(found, total, route=USER, method="GET", status="200") == 2
    assert value(found, total, route=USER, method="GET", status="404") == 1
    assert value(found, total, route=USERS, method="GET", status="200") == 1
    assert value(found, total, route=USER, method="DELETE", status="204") == 1
    assert value(found, total, route=USERS, method="GET", status="401") == 1
    assert value(found, total, route="unmatched", method="GET", status="404") == 1
    duration = "scim_bridge_scim_request_duration_seconds"
    assert value(found, duration + "_count", route=USER, method="GET") == 3
    assert value(found, duration + "_count", route=USERS, method="GET") == 2
    assert value(found, duration + "_bucket", route=USER, method="GET", le="+Inf") == 3
    seconds = value(found, duration + "_sum", route=USER, method="GET")
    assert seconds is not None
    assert 0 < seconds < 10
    # Probes are not SCIM requests; raw paths, ids and filters are never labels.
    routes = {dict(labels).get("route") for (name, labels) in found if name == total}
    assert routes == {USERS, USER, "unmatched"}
    assert uid not in text
    assert "ada@example.com" not in text


async def test_request_id_is_taken_from_the_caller_or_made_and_always_echoed(
    redis: Redis, redis_url: str
) -> None:
    async with running_api(redis, redis_url, "acme") as clients:
        scim = clients["acme"]
        given = await scim.get("/Users", headers={"X-Request-Id": "entra-7f3a:01.2_x"})
        made = await scim.get("/Users")
        again = await scim.get("/Users")
        unsafe = await scim.get("/Users", headers={"X-Request-Id": "a b\tc"})
        too_long = await scim.get("/Users", headers={"X-Request-Id": "x" * 129})
        unmatched = await scim.http.get("/nowhere")
        denied = await scim.http.get(scim.base + "/Users")

    assert given.headers["x-request-id"] == "entra-7f3a:01.2_x"
    for response in (made, again, unsafe, too_long, unmatched, denied):
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert made.headers["x-request-id"] != again.headers["x-request-id"]
    assert (unmatched.status_code, denied.status_code) == (404, 401)
    assert len(given.headers.get_list("x-request-id")) == 1


async def test_one_access_line_per_request_with_id_route_status_tenant_and_duration(
    redis: Redis, redis_url: str, logged: Lines
) -> None:
    async with running_api(redis, redis_url, "acme") as clients:
        scim = clients["acme"]
        user = await scim.create_user("ada@example.com")
        logged.lines.clear()
        response = await scim.get(f"/Users/{user['id']}", headers={"X-Request-Id": "req-123"})
        listed = await scim.get("/Users", params={"filter": 'userName eq "ada@example.com"'})
        bad = await scim.http.get(scim.base + "/Users", headers={"Authorization": "Bearer x"})
        probe = await scim.http.get("/readyz")

    lines = logged.access()
    assert [line["status"] for line in lines] == [200, 200, 401, 200]
    one = lines[0]
    assert response.headers["x-request-id"] == "req-123"
    assert one["request_id"] == "req-123"
    assert (one["method"], one["route"], one["tenant"], one["user_id"]) == (
        "GET",
        USER,
        "acme",
        user["id"],
    )
    assert isinstance(one["duration_ms"], float)
    assert one["duration_ms"] > 0
    assert one["level"] == "info"
    assert lines[1]["request_id"] == listed.headers["x-request-id"]
    assert lines[1]["route"] == USERS
    assert "user_id" not in lines[1]
    # A request that failed authentication still names the tenant of its URL.
    assert (lines[2]["tenant"], lines[2]["request_id"]) == ("acme", bad.headers["x-request-id"])
    assert (lines[3]["route"], lines[3]["level"]) == ("/readyz", "debug")
    assert lines[3]["request_id"] == probe.headers["x-request-id"]
    text = "\n".join(json.dumps(line) for line in logged.lines)
    assert "ada@example.com" not in text  # the filter's value never reaches a log
    assert "path" not in one


async def test_lines_logged_while_serving_carry_the_request_id(logged: Lines) -> None:
    @get("/work")
    async def work() -> dict[str, str]:
        logging.getLogger("scim_bridge.test").warning("doing the work", extra={"step": 1})
        return {"ok": "yes"}

    app = Litestar(route_handlers=[work], logging_config=None)
    observe_requests(app)
    async with AsyncTestClient(app=app) as http:
        response = await http.get("/work", headers={"X-Request-Id": "abc-1"})
    logging.getLogger("scim_bridge.test").warning("after the request")

    [during] = [line for line in logged.lines if line["msg"] == "doing the work"]
    [after] = [line for line in logged.lines if line["msg"] == "after the request"]
    assert response.headers["x-request-id"] == "abc-1"
    assert (during["request_id"], during["step"]) == ("abc-1", 1)
    assert "request_id" not in after
    [access] = logged.access()
    assert (access["route"], access["request_id"]) == ("/work", "abc-1")
