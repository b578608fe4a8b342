"""pgbatch: a PostgreSQL-native job queue and batch framework.

Every state change is one stored SQL function in schema ``pgbatch``, one
transaction; this package is a thin runtime over those functions.
"""

from pgbatch._aio_client import AsyncClient
from pgbatch._app import App, Handler, Task, TaskOptions
from pgbatch._client import Client
from pgbatch._errors import (
    ClaimLost,
    DedupConflict,
    DuplicateJobId,
    IncompatibleSchema,
    InvalidArgument,
    InvalidEffects,
    InvalidPayload,
    InvalidQueueName,
    InvalidState,
    JobCancelled,
    JobNotFound,
    MigrationError,
    PgBatchError,
    SchemaNotMigrated,
    ValidationError,
)
from pgbatch._maintenance import MaintenanceConfig
from pgbatch._types import (
    AckEffects,
    AckOutcome,
    AckRequest,
    ClaimedJob,
    EnqueueRequest,
    QueueStats,
)
from pgbatch.worker import JobContext, Worker, WorkerError, run_worker, run_worker_concurrent

__all__ = [
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
    "InvalidEffects",
    "InvalidPayload",
    "InvalidQueueName",
    "InvalidState",
    "JobCancelled",
    "JobContext",
    "JobNotFound",
    "MaintenanceConfig",
    "MigrationError",
    "PgBatchError",
    "QueueStats",
    "SchemaNotMigrated",
    "Task",
    "TaskOptions",
    "ValidationError",
    "Worker",
    "WorkerError",
    "run_worker",
    "run_worker_concurrent",
]

__version__ = "0.1.0"
