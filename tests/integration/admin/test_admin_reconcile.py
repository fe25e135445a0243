"""Drift reconciliation against the sandbox LMS: learners edited, deactivated
or unlinked by hand are found and repaired through the normal sync path;
learners with the ref of a user the shadow does not know are reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from core.settings import Settings, load_settings
from shadow import Tenant, keys
from shadow.reconcile import ReconcileBusy, ReconcileReport, last_report, progress_of
from tests.support.api import OP
from tests.support.worker_fixtures import (
    BASE,
    FAST,
    KEY,
    LEARNERS,
    ORG,
    SandboxLms,
    put_user,
    record_of,
    run_sync,
    scim_user,
)
from worker.deps import WorkerDeps
from worker.queue import sync_job_id
from worker.reconcile import (
    reconcile_job,
    reconcile_job_id,
    reconcile_schedule_cron,
    reconcile_tenant,
    schedule_reconciles,
)
from worker.settings import create_worker, worker_options

# Each Redis test here runs on a plain Redis and on a Redis Cluster (tests/conftest.py).
pytestmark = pytest.mark.also_on_cluster

CONTROL = f"http://lms.test/_sandbox/orgs/{ORG}/learners"


async def hand_edit(lms: SandboxLms, learner_id: int, **fields: Any) -> None:
    """What an LMS admin does in the LMS's own UI (the sandbox's control API)."""
    response = await lms.http.patch(f"{CONTROL}/{learner_id}", json=fields)
    assert response.status_code == 200, response.text


async def learner_of(lms: SandboxLms, user_id: str) -> int:
    [found] = [lr for lr in lms.learners() if lr.external_ref == user_id]
    return found.id


@pytest.fixture
async def drifted(deps: WorkerDeps, lms: SandboxLms, tenant: object) -> dict[str, int]:
    """Five synced users; three learners then changed by hand; one stranger."""
    users = {
        "u-same": scim_user("same@example.com", "Sam", "Same", title="Clerk"),
        "u-edit": scim_user("edit@example.com", "Eda", "Edit", title="Engineer"),
        "u-off": scim_user("off@example.com", "Ofelia", "Off"),
        "u-lost": scim_user("lost@example.com", "Lou", "Lost"),
        "u-gone": scim_user("gone@example.com", "Gus", "Gone"),
    }
    for uid, doc in users.items():
        await put_user(deps, uid, doc)
        assert await run_sync(deps, uid) == "synced"
    # A leaver: its learner was made while it was active, then deactivated.
    await put_user(
        deps, "u-gone", scim_user("gone@example.com", "Gus", "Gone", active=False), "update"
    )
    assert await run_sync(deps, "u-gone") == "synced"
    learners = {uid: await learner_of(lms, uid) for uid in users}
    await hand_edit(lms, learners["u-edit"], last_name="Edited", job_role="Boss")
    await hand_edit(lms, learners["u-off"], status="deactivated")
    await hand_edit(lms, learners["u-lost"], external_ref=None)
    stranger = await lms.http.post(
        CONTROL,
        json={
            "email": "who@example.com",
            "first_name": "W",
            "last_name": "Ho",
            "external_ref": "not-a-user",
        },
    )
    assert stranger.status_code == 201
    await lms.http.post(
        CONTROL,
        json={
            "email": "old@example.com",
            "first_name": "O",
            "last_name": "Ld",
            "external_ref": "deleted-long-ago",
            "status": "deactivated",
        },
    )
    learners["stranger"] = stranger.json()["id"]
    lms.calls.clear()
    return learners


async def test_reconcile_repairs_hand_edits_and_reports_the_rest(
    deps: WorkerDeps, lms: SandboxLms, drifted: dict[str, int]
) -> None:
    seen: list[tuple[int, int]] = []
    report = await reconcile_tenant(deps, ORG, progress=lambda n, total: seen.append((n, total)))

    assert report.error == ""
    assert (report.learners_seen, report.users_checked, report.in_sync) == (7, 5, 2)
    assert report.drift_counts == {
        "changed": 1,
        "deactivated_by_hand": 1,
        "missing": 1,
        "unknown_ref": 1,
    }
    assert (report.repaired, report.retired) == (3, 1)
    drift = {d.user_id: d for d in report.drift}
    assert drift["u-edit"].fields == ("last_name", "job_role")
    assert drift["u-off"].fields == ("status",)
    assert drift["u-lost"].learner_id == drifted["u-lost"]
    assert drift["not-a-user"].learner_id == drifted["stranger"]
    assert not drift["not-a-user"].repaired
    assert seen[-1] == (7, 7)
    # Reading the organisation is all reconcile sends the LMS itself.
    assert {c.route for c in lms.calls} == {f"GET {LEARNERS}"}

    # Repairs go through the one path to the LMS: pending, enqueued, synced.
    for uid in ("u-edit", "u-off", "u-lost"):
        assert (await record_of(deps, uid)).state == "pending"
        due = await deps.sync.queued_due(ORG, uid)
        assert due is not None
        assert await deps.queue.exists(f"arq:job:{sync_job_id(ORG, uid, due)}")
    lms.calls.clear()
    for uid in ("u-edit", "u-off", "u-lost"):
        assert await run_sync(deps, uid) == "synced"
    edited = lms.learner(drifted["u-edit"])
    assert (edited.last_name, edited.job_role) == ("Edit", "Engineer")
    assert lms.learner(drifted["u-off"]).status == "active"
    assert lms.learner(drifted["u-lost"]).external_ref == "u-lost"
    # One PATCH each, and a status call only where the status drifted.
    assert sorted(c.method + " " + c.path.rsplit("/", 1)[-1] for c in lms.calls) == sorted(
        [
            f"PATCH {drifted['u-edit']}",
            f"PATCH {drifted['u-off']}",
            "POST reactivate",
            f"PATCH {drifted['u-lost']}",
        ]
    )

    again = await reconcile_tenant(deps, ORG)
    assert again.drift_counts == {"unknown_ref": 1}
    assert (again.in_sync, again.repaired) == (5, 0)


async def test_report_only_changes_nothing(
    deps: WorkerDeps, lms: SandboxLms, drifted: dict[str, int]
) -> None:
    report = await reconcile_tenant(deps, ORG, repair=False)

    assert sum(report.drift_counts.values()) == 4
    assert report.repaired == 0
    assert all(not d.repaired for d in report.drift)
    assert (await record_of(deps, "u-edit")).state == "synced"
    assert lms.learner(drifted["u-edit"]).last_name == "Edited"


async def test_pending_users_are_skipped_and_one_reconcile_runs_at_a_time(
    deps: WorkerDeps, lms: SandboxLms, drifted: dict[str, int]
) -> None:
    await put_user(deps, "u-edit", scim_user("edit@example.com", "Eda", "New"), "update")
    await deps.redis.set(f"{{t:{ORG}}}:reconcile:lock", "someone", px=10_000)
    with pytest.raises(ReconcileBusy):
        await reconcile_tenant(deps, ORG)
    await deps.redis.delete(f"{{t:{ORG}}}:reconcile:lock")

    report = await reconcile_tenant(deps, ORG, repair=False)
    assert report.skipped == {"pending": 1}
    assert "changed" not in report.drift_counts


async def test_the_admin_api_queues_a_reconcile_for_a_worker(
    http: AsyncTestClient[Any], deps: WorkerDeps, drifted: dict[str, int]
) -> None:
    url = f"/admin/v1/tenants/{ORG}/reconcile"
    queued = await http.post(url, json={"repair": False}, headers=OP)
    assert queued.status_code == 202, queued.text
    assert queued.json()["job_id"] == f"reconcile:{ORG}"
    assert await deps.queue.exists(f"arq:job:reconcile:{ORG}")
    assert (await http.post(url, headers=OP)).status_code == 409
    assert (await http.get(url, headers=OP)).json()["progress"]["state"] == "queued"

    # What the worker runs for that job.
    summary = await reconcile_job({"deps": deps}, ORG, False)
    assert "4 drifted" in summary
    after = (await http.get(url, headers=OP)).json()
    assert after["progress"]["state"] == "done"
    assert after["last"]["drift_counts"]["changed"] == 1
    assert after["last"]["repair"] is False


# -- the optional schedule -----------------------------------------------------


async def _reported(deps: WorkerDeps, slug: str, started: datetime) -> None:
    """A finished reconcile of `slug` that started at `started`."""
    report = ReconcileReport(tenant=slug, repair=True, started_at=started.isoformat())
    await deps.redis.set(keys.reconcile_last(slug), msgspec.json.encode(report))


@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning:arq")
async def test_the_schedule_queues_due_tenants_a_few_at_a_time(
    deps: WorkerDeps, lms: SandboxLms, tenant: object
) -> None:
    """Every 24 h, one at a time: the never-reconciled tenant first, then the
    one whose last reconcile is oldest; recent and disabled tenants wait."""
    deps.settings = msgspec.structs.replace(
        deps.settings, reconcile_every_h=24, reconcile_concurrency=1
    )
    now = datetime.now(UTC)
    for slug, enabled in (("beta", True), ("gamma", True), ("off", False)):
        await deps.tenants.create(
            Tenant(slug=slug, name=slug, lms_url=BASE, lms_api_key=KEY, enabled=enabled)
        )
    await _reported(deps, "beta", now - timedelta(hours=1))
    await _reported(deps, "gamma", now - timedelta(hours=30))
    ctx = {"deps": deps}

    assert "1 due and waiting" in await schedule_reconciles(ctx)  # ORG now, gamma waits
    assert await deps.queue.exists(f"arq:job:{reconcile_job_id(ORG)}")
    assert not await deps.queue.exists(f"arq:job:{reconcile_job_id('gamma')}")
    assert (await progress_of(deps.redis, ORG))["state"] == "queued"
    await schedule_reconciles(ctx)  # ORG's job still queued: the one slot is taken
    assert not await deps.queue.exists(f"arq:job:{reconcile_job_id('gamma')}")

    worker = create_worker(
        deps.settings, burst=True, http=lms.http, retry=FAST, handle_signals=False, cron_jobs=[]
    )
    try:
        await worker.async_run()  # a real worker runs ORG's reconcile
    finally:
        await worker.close()
    last = await last_report(deps.redis, ORG)
    assert last is not None
    assert not last.error

    await schedule_reconciles(ctx)
    assert await deps.queue.exists(f"arq:job:{reconcile_job_id('gamma')}")
    for waiting in (ORG, "beta", "off"):
        assert not await deps.queue.exists(f"arq:job:{reconcile_job_id(waiting)}")


def test_the_schedule_is_a_worker_cron_job_only_when_set() -> None:
    redis_url = "redis://127.0.0.1:6379/0"  # declarations only: nothing connects
    off = Settings(redis_url=redis_url)
    assert reconcile_schedule_cron(off) is None
    assert [c.name for c in worker_options(off)["cron_jobs"]] == ["sweep", "sample_queues"]
    daily = load_settings({"REDIS_URL": redis_url, "WORKER_RECONCILE_EVERY_H": "24"})
    assert daily.reconcile_every_h == 24
    names = [c.name for c in worker_options(daily)["cron_jobs"]]
    assert names == ["sweep", "sample_queues", "reconcile-schedule"]
