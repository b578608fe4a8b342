"""pgbatch: a PostgreSQL-native job queue and batch framework.

Every state change is one stored SQL function in schema ``pgbatch``, one
transaction; this package is a thin runtime over those functions.
"""

from pgbatch._aio_client import AsyncClient
from pgbatch._app import App
from pgbatch._client import Client
from pgbatch._errors import (
    ClaimLost,
    DedupConflict,
    DuplicateJobId,
    IncompatibleSchema,
    InvalidArgument,
    InvalidCron,
    InvalidEffects,
    InvalidPayload,
    InvalidQueueName,
    InvalidState,
    InvalidText,
    InvalidTime,
    InvalidTimeZone,
    JobCancelled,
    JobNotFound,
    MigrationError,
    PgBatchError,
    SchemaNotMigrated,
    ValidationError,
    ValueTooLarge,
)
from pgbatch._task import Handler, Task, TaskOptions
from pgbatch._types import (
    JOB_STATES,
    AckEffects,
    AckOutcome,
    AckRequest,
    ClaimedJob,
    EnqueueRequest,
    JobCursor,
    JobInfo,
    LeaderLease,
    QueueStats,
    VacuumStat,
)
from pgbatch.worker import JobContext, Worker, WorkerError, run_worker, run_worker_concurrent
from pgbatch.worker.maintenance import MaintenanceConfig, MaintenanceStats
from pgbatch.worker.services import MaintenanceContext, MaintenanceService, ServiceStats

__all__ = [
    "JOB_STATES",
    "AckEffects",
    "AckOutcome",
    "AckRequest",
    "App",
    "AsyncClient",
    "ClaimLost",
    "ClaimedJob",
    "Client",
    "DedupConflict",
    "DuplicateJobId",
    "EnqueueRequest",
    "Handler",
    "IncompatibleSchema",
    "InvalidArgument",
    "InvalidCron",
    "InvalidEffects",
    "InvalidPayload",
    "InvalidQueueName",
    "InvalidState",
    "InvalidText",
    "InvalidTime",
    "InvalidTimeZone",
    "JobCancelled",
    "JobContext",
    "JobCursor",
    "JobInfo",
    "JobNotFound",
    "LeaderLease",
    "MaintenanceConfig",
    "MaintenanceContext",
    "MaintenanceService",
    "MaintenanceStats",
    "MigrationError",
    "PgBatchError",
    "QueueStats",
    "SchemaNotMigrated",
    "ServiceStats",
    "Task",
    "TaskOptions",
    "VacuumStat",
    "ValidationError",
    "ValueTooLarge",
    "Worker",
    "WorkerError",
    "run_worker",
    "run_worker_concurrent",
]

__version__ = "0.1.0"
