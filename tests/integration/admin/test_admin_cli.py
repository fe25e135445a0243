"""The CLI covers the admin API's ground with `--json` for scripts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis as sync_redis

from cli.main import main


@pytest.fixture
def cli(redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    sync_redis.Redis.from_url(redis_url).flushall()
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("BRIDGE_PUBLIC_URL", "https://bridge.test")

    def run(*argv: str, code: int = 0) -> Any:
        capsys.readouterr()
        assert main([*argv, "--json"]) == code
        return json.loads(capsys.readouterr().out)

    return run


def test_admin_keys_breaker_failed_users_and_status(cli: Any) -> None:
    cli("tenant", "create", "acme", "--lms-url", "https://lms.test/org/acme", "--lms-api-key", "k")

    issued = cli("admin-key", "issue", "acme", "--label", "lms page")
    assert issued["key"].startswith("scimba_acme.")
    [listed] = cli("admin-key", "list", "acme")["keys"]
    assert (listed["key_id"], listed["label"], listed["last_used_at"]) == (
        issued["key_id"],
        "lms page",
        None,
    )
    assert issued["key"] not in json.dumps(listed)
    assert cli("admin-key", "revoke", "acme", issued["key_id"])["revoked"] is True
    assert cli("admin-key", "revoke", "acme", issued["key_id"], code=1)["revoked"] is False

    breaker = cli("breaker", "status", "acme")
    assert (breaker["tripped"], breaker["held"], breaker["held_users"]) == (False, 0, [])
    changed = cli("breaker", "set", "acme", "--share", "0.5", "--window-s", "600")
    assert changed["config"] == {
        "enabled": True,
        "share": 0.5,
        "min_learners": 25,
        "window_s": 600,
    }
    assert "error" in cli("breaker", "set", "acme", "--share", "7", code=2)
    # Nothing held: nothing to decide (the admin API's 409), and nothing disarmed.
    assert "nothing to approve" in cli("breaker", "approve", "acme", code=1)["error"]
    assert "nothing to cancel" in cli("breaker", "cancel", "acme", code=1)["error"]
    assert cli("breaker", "status", "acme")["approved_until"] is None

    failed = cli("users", "failed", "acme", "--limit", "10")
    assert (failed["total"], failed["users"], failed["next_offset"]) == (0, [], None)

    status = cli("status", "acme")
    for key in ("tenant", "queue_depth", "pending", "synced", "failed", "oldest_pending_seconds"):
        assert key in status
    assert status["held"] == 0
    assert status["breaker"]["tripped"] is False
    assert status["lms"]["calls"] == 0

    assert "error" in cli("reconcile", "ghost", code=1)
    assert "error" in cli("breaker", "status", "ghost", code=1)


def test_token_issue_with_an_expiry(cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cli("tenant", "create", "acme", "--lms-url", "https://lms.test/org/acme", "--lms-api-key", "k")
    issued = cli("token", "issue", "acme", "--expires-in-days", "90")
    left = datetime.fromisoformat(issued["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=89, hours=23) < left <= timedelta(days=90)
    never = cli("token", "issue", "acme")
    assert never["expires_at"] is None
    listed = {t["token_id"]: t["expires_at"] for t in cli("token", "list", "acme")["tokens"]}
    assert listed == {issued["token_id"]: issued["expires_at"], never["token_id"]: None}
    with pytest.raises(SystemExit):
        main(["token", "issue", "acme", "--expires-in-days", "0"])
    assert "between 1 and 3650" in capsys.readouterr().err


def test_admin_key_issue_with_an_expiry_and_a_bounded_label(
    cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cli("tenant", "create", "acme", "--lms-url", "https://lms.test/org/acme", "--lms-api-key", "k")
    issued = cli("admin-key", "issue", "acme", "--expires-in-days", "30")
    left = datetime.fromisoformat(issued["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=29, hours=23) < left <= timedelta(days=30)
    never = cli("admin-key", "issue", "acme")
    assert never["expires_at"] is None
    listed = {k["key_id"]: k["expires_at"] for k in cli("admin-key", "list", "acme")["keys"]}
    assert listed == {issued["key_id"]: issued["expires_at"], never["key_id"]: None}
    assert "at most 100" in cli("admin-key", "issue", "acme", "--label", "x" * 101, code=1)["error"]
    assert "at most 100" in cli("token", "issue", "acme", "--label", "x" * 101, code=1)["error"]
    with pytest.raises(SystemExit):
        main(["admin-key", "issue", "acme", "--expires-in-days", "3651"])
    assert "between 1 and 3650" in capsys.readouterr().err
