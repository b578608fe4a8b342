"""pgbatch: a PostgreSQL-native job queue and batch framework.

Every state change is one stored SQL function in schema ``pgbatch``, one
transaction; this package is a thin runtime over those functions.
"""

from pgbatch._aio_client import AsyncClient
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
    PgBatchError,
    ValidationError,
)
from pgbatch._types import (
    AckEffects,
    AckOutcome,
    AckRequest,
    ClaimedJob,
    EnqueueRequest,
    QueueStats,
)

__all__ = [
    "AckEffects",
    "AckOutcome",
    "AckRequest",
    "AsyncClient",
    "ClaimLost",
    "ClaimedJob",
    "Client",
    "DedupConflict",
    "DuplicateJobId",
    "EnqueueRequest",
    "IncompatibleSchema",
    "InvalidArgument",
    "InvalidEffects",
    "InvalidPayload",
    "InvalidQueueName",
    "InvalidState",
    "JobCancelled",
    "JobNotFound",
    "PgBatchError",
    "QueueStats",
    "ValidationError",
]

__version__ = "0.1.0"
