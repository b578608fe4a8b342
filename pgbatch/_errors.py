"""pgbatch errors: one table of SQLSTATE code, name and Python class.

Every failure the SQL API raises has its own SQLSTATE in class ``PB``. This
module is the single source that maps each code to its Python exception; a
test checks that every code raised in ``sql/`` is listed here and that every
listed code is raised somewhere. The client translates a ``psycopg.Error``
carrying one of these codes into the matching class (the original error is
kept as ``__cause__``).
"""

from __future__ import annotations

import psycopg


class PgBatchError(Exception):
    """Base class of every pgbatch error."""

    sqlstate: str | None = None

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class ClaimLost(PgBatchError):
    """The claim is gone: the lease expired and the job was requeued, another
    worker re-claimed it, or the token is stale. Nothing was applied."""

    sqlstate = "PB001"


class DuplicateJobId(PgBatchError):
    """A job with the requested id already exists (live or archived)."""

    sqlstate = "PB002"


class JobNotFound(PgBatchError):
    """No job (live or archived) has this id."""

    sqlstate = "PB003"


class InvalidState(PgBatchError):
    """The job is not in a state that allows this operation."""

    sqlstate = "PB004"


class ValidationError(PgBatchError, ValueError):
    """Bad input: nothing was changed."""


class InvalidQueueName(ValidationError):
    """A queue name must be non-empty text of at most 128 characters."""

    sqlstate = "PB005"


class InvalidPayload(ValidationError):
    """A payload must be a JSON value of at most ``max_payload_bytes()``."""

    sqlstate = "PB006"


class InvalidArgument(ValidationError):
    """An argument is out of range or malformed (max_attempts, lease, max_jobs, …)."""

    sqlstate = "PB007"


class InvalidEffects(ValidationError):
    """Ack effects are malformed (unknown keys, wrong types, bad requests)."""

    sqlstate = "PB008"


class JobCancelled(PgBatchError):
    """``cancel_job`` was called for a claimed job; its worker should stop."""

    sqlstate = "PB009"


class DedupConflict(PgBatchError):
    """A live job already holds the dedup key the operation needs."""

    sqlstate = "PB010"


class IncompatibleSchema(PgBatchError):
    """The database schema was migrated by a newer, incompatible pgbatch."""

    sqlstate = "PB011"


class SchemaNotMigrated(PgBatchError):
    """The database has no pgbatch schema, or an older one than this code needs.

    The fix is the same in both cases: run ``pgbatch migrate`` against it.
    """


class MigrationError(PgBatchError):
    """A migration cannot run against this database (nothing was changed)."""


#: SQLSTATE -> exception class, for every code the SQL API raises.
ERRORS: dict[str, type[PgBatchError]] = {
    cls.sqlstate: cls
    for cls in (
        ClaimLost,
        DuplicateJobId,
        JobNotFound,
        InvalidState,
        InvalidQueueName,
        InvalidPayload,
        InvalidArgument,
        InvalidEffects,
        JobCancelled,
        DedupConflict,
        IncompatibleSchema,
    )
    if cls.sqlstate is not None
}


def translate(exc: psycopg.Error) -> PgBatchError | None:
    """Return the pgbatch exception for a database error, or None if it is not ours."""
    state = exc.sqlstate
    if state is None:
        return None
    cls = ERRORS.get(state)
    if cls is None:
        return None
    diag = exc.diag
    return cls(diag.message_primary or str(exc), detail=diag.message_detail)
