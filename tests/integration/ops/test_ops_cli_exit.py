"""The CLI's exit status says what happened: 0 done, 1 not found or refused,
2 usage; the message is one line (stderr, or `{"error": ...}` with --json).
Tenant flags are held to the admin API's rules. `status --json` counts the
tenant's own queue."""

from __future__ import annotations

import json

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from tests.support.api import ScimClient, add_tenant, api_settings, keyspace
from tests.support.cli import Run


@pytest.fixture
async def acme(redis: Redis) -> str:
    await add_tenant(redis, "acme")
    return "acme"


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["token", "list", "nosuch"], "no tenant 'nosuch'"),
        (["token", "issue", "nosuch"], "no tenant 'nosuch'"),
        (["token", "revoke", "acme", "nosuch"], None),
        (["users", "show", "acme", "no-such-user"], "no user 'no-such-user' in tenant 'acme'"),
        (["replay", "acme", "--user", "bogus"], "no user 'bogus' in tenant 'acme'"),
        (["status", "nosuch"], "no tenant 'nosuch'"),
    ],
    ids=["token-list", "token-issue", "token-revoke", "users-show", "replay-user", "status"],
)
@pytest.mark.usefixtures("acme")
def test_not_found_exits_1_with_one_line(
    run_cli: Run, args: list[str], message: str | None
) -> None:
    done = run_cli(*args)
    assert done.returncode == 1, done
    if message is not None:
        assert one_line(done.stderr) == f"scim-bridge: {message}"
    as_json = run_cli(*args, "--json")
    assert as_json.returncode == 1, as_json
    if message is not None:
        assert json.loads(one_line(as_json.stdout)) == {"error": message}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "failed", "acme", "--limit", "-5"], "argument --limit: must be at least 1"),
        (["users", "failed", "acme", "--offset", "-1"], "argument --offset: must be at least 0"),
        (
            [
                "tenant",
                "create",
                "beta",
                "--lms-url",
                "https://lms.test/o/b",
                "--lms-api-key",
                "k",
                "--lms-rate",
                "0",
            ],
            "lms_rate must be more than 0",
        ),
        (
            [
                "tenant",
                "create",
                "beta",
                "--lms-url",
                "https://lms.test/o/b",
                "--lms-api-key",
                "k",
                "--lms-rate",
                "-1",
            ],
            "lms_rate must be more than 0",
        ),
        (
            ["tenant", "create", "beta", "--lms-url", "lms.test/o/b", "--lms-api-key", "k"],
            "lms_url must be an http(s) URL",
        ),
        (["tenant", "update", "acme", "--lms-rate", "0"], "lms_rate must be more than 0"),
        (["tenant", "update", "acme", "--lms-burst", "0"], "lms_burst must be between 1"),
        (["tenant", "update", "acme", "--lms-url", "ftp://x"], "lms_url must be an http(s) URL"),
    ],
    ids=[
        "limit",
        "offset",
        "rate-0",
        "rate-neg",
        "url",
        "update-rate",
        "update-burst",
        "update-url",
    ],
)
@pytest.mark.usefixtures("acme")
async def test_usage_errors_exit_2_and_change_nothing(
    run_cli: Run, redis: Redis, args: list[str], message: str
) -> None:
    before = await keyspace(redis)
    done = run_cli(*args)
    assert done.returncode == 2, done
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert await keyspace(redis) == before


@pytest.mark.usefixtures("acme")
def test_found_and_done_exits_0(run_cli: Run) -> None:
    for args in (["token", "list", "acme"], ["users", "failed", "acme", "--limit", "1"]):
        done = run_cli(*args, "--json")
        assert done.returncode == 0, done
        json.loads(done.stdout)


async def test_status_queue_depth_counts_the_tenant_s_own_jobs(
    run_cli: Run, redis: Redis, redis_url: str
) -> None:
    token = await add_tenant(redis, "busy")
    await add_tenant(redis, "quiet")
    app = create_app(api_settings(redis_url))
    async with AsyncTestClient(app=app, base_url="https://bridge.test") as http:
        busy = ScimClient(http, "busy", token)
        for i in range(3):
            await busy.create_user(f"user{i}@busy.example")  # no worker: they stay queued
    statuses = {}
    for slug in ("busy", "quiet"):
        done = run_cli("status", slug, "--json")
        assert done.returncode == 0, done
        statuses[slug] = json.loads(done.stdout)
    assert statuses["busy"]["queue_depth"] == 3
    assert statuses["quiet"]["queue_depth"] == 0
    assert statuses["quiet"]["arq_queue_depth"] == 3  # the whole queue, apart
