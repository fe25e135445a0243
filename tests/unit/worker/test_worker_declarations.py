"""Pure pieces of the worker: the reasons ops read, and the arq declarations."""

from __future__ import annotations

import pytest

from core.settings import Settings
from lms_client import (
    LmsConflict,
    LmsNotFound,
    LmsUnauthorized,
    LmsUnexpectedResponse,
    LmsValidationError,
)
from worker import lms_reason, retry_policy_for, sweep_cron, worker_options
from worker.queue import QUEUE_NAME, SYNC_USER
from worker.settings import SYNC_MAX_TRIES


def test_validation_reason_names_every_field_in_order() -> None:
    exc = LmsValidationError(
        "POST /api/v1/learners: LMS answered 422 validation_failed",
        fields={"team": ["at most 100 characters"], "email": ["not a valid address"]},
    )
    assert lms_reason(exc) == "LMS 422: email: not a valid address; team: at most 100 characters"


def test_other_reasons() -> None:
    conflict = LmsConflict("x", error="external_ref_taken", learner_id=4)
    assert lms_reason(conflict) == "LMS 409 external_ref_taken: held by learner 4"
    assert lms_reason(LmsUnauthorized("x", status=401)).startswith("LMS 401: unauthorized")
    missing = LmsNotFound("POST /org/x/api/v1/learners: LMS answered 404 not_found", status=404)
    assert lms_reason(missing) == "LMS 404: POST /org/x/api/v1/learners: LMS answered 404 not_found"
    assert lms_reason(LmsUnexpectedResponse("odd", status=418)) == "LMS 418: odd"


@pytest.mark.parametrize("timeout", [10.0, 120.0, 600.0])
def test_inner_retry_budget_stays_well_below_the_job_timeout(timeout: float) -> None:
    policy = retry_policy_for(Settings(job_timeout_s=timeout))
    assert policy.total_budget * 4 < timeout
    assert policy.max_retry_after_wait <= policy.total_budget


@pytest.mark.parametrize(
    ("every", "seconds", "minutes"),
    [(30, {0, 30}, None), (15, {0, 15, 30, 45}, None), (120, 0, set(range(0, 60, 2)))],
)
def test_sweep_runs_every_interval(every: int, seconds: object, minutes: object) -> None:
    job = sweep_cron(Settings(sweep_interval_s=every))
    assert (job.second, job.minute) == (seconds, minutes)
    assert (job.name, job.unique, job.max_tries, job.keep_result_s) == ("sweep", True, 1, 0)


def test_worker_options_declare_the_sync_reconcile_and_resync_jobs() -> None:
    settings = Settings(redis_url="redis://h:1/2", job_timeout_s=90, max_jobs=12)
    options = worker_options(settings)
    functions = {f.name: f for f in options["functions"]}
    assert set(functions) == {
        SYNC_USER,
        "reconcile_tenant",
        "resync_rules",
        "drain_group_followups",
        "deliver_webhook",
    }
    assert functions["resync_rules"].timeout_s == 90
    function = functions[SYNC_USER]
    assert (function.max_tries, function.timeout_s, function.keep_result_s) == (
        SYNC_MAX_TRIES,
        90,
        0,
    )
    assert options["queue_name"] == QUEUE_NAME
    assert options["max_jobs"] == 12
    assert (options["redis_settings"].host, options["redis_settings"].database) == ("h", 2)
    queue_elsewhere = worker_options(Settings(queue_redis_url="redis://q:3/0"))
    assert queue_elsewhere["redis_settings"].host == "q"
