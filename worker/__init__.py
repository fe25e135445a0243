"""The sync workers: arq jobs that make each tenant's LMS match the shadow.

Public names are re-exported here. arq's CLI entry point is
`worker.settings.WorkerSettings`, built from the environment on first use.
"""

from worker.deps import NO_METRICS, NoMetrics, SyncMetrics, TenantLms, WorkerDeps, retry_policy_for
from worker.liveness import Liveness
from worker.pacing import Pacer, TenantLimiter
from worker.queue import QUEUE_NAME, SYNC_USER, enqueue_sync, job_exists, sync_job_id
from worker.settings import create_worker, run_worker, worker_options
from worker.sweep import sweep, sweep_cron, sweep_tenant
from worker.sync import Outcome, lms_reason, sync_user

__all__ = [
    "NO_METRICS",
    "QUEUE_NAME",
    "SYNC_USER",
    "Liveness",
    "NoMetrics",
    "Outcome",
    "Pacer",
    "SyncMetrics",
    "TenantLimiter",
    "TenantLms",
    "WorkerDeps",
    "create_worker",
    "enqueue_sync",
    "job_exists",
    "lms_reason",
    "retry_policy_for",
    "run_worker",
    "sweep",
    "sweep_cron",
    "sweep_tenant",
    "sync_job_id",
    "sync_user",
    "worker_options",
]
