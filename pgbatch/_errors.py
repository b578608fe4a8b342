"""pgbatch errors: one table of SQLSTATE code, name and Python class.

Every failure the SQL API raises has its own SQLSTATE in class ``PB``. This
module is the single source that maps each code to its Python exception; a
test checks that every code raised in ``sql/`` is listed here and that every
listed code is raised somewhere. The client translates a ``psycopg.Error``
carrying one of these codes into the matching class (the original error is
kept as ``__cause__``).
"""

from __future__ import annotations

from uuid import UUID

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
    """A queue name must be non-empty, not blank, and at most ``MAX_QUEUE_NAME_LENGTH`` long."""

    sqlstate = "PB005"


class InvalidPayload(ValidationError):
    """A payload must be a JSON value of at most ``max_payload_bytes()``."""

    sqlstate = "PB006"


class InvalidArgument(ValidationError):
    """An argument is out of range or malformed (max_attempts, lease, max_jobs, …).

    The base of the argument errors that have their own code
    (:class:`ValueTooLarge`, :class:`InvalidTime`); the limits are listed in
    docs/limits.md and :mod:`pgbatch._limits`.
    """

    sqlstate = "PB007"


class ValueTooLarge(InvalidArgument):
    """A text or JSON value is over its documented size (dedup key, error,
    dead-letter reason, node info)."""

    sqlstate = "PB012"


class InvalidTime(InvalidArgument):
    """A point in time (run_at, retry_at) is infinite or too far from now."""

    sqlstate = "PB013"


class InvalidCron(ValidationError):
    """A cron expression is malformed, uses an unsupported feature (``@reboot``)
    or can never match; the message names the bad field (docs/schedules.md)."""

    sqlstate = "PB020"


class InvalidTimeZone(ValidationError):
    """A time zone is NULL or not an IANA time zone name PostgreSQL knows."""

    sqlstate = "PB021"


class InvalidText(ValidationError):
    """A text argument or a JSON string holds a character PostgreSQL cannot
    store: NUL (U+0000), or one the database's encoding lacks.

    Raised before any pgbatch function runs: psycopg refuses a ``str`` with NUL
    before sending it, and PostgreSQL's input functions refuse ``\\u0000`` in
    JSON (SQLSTATE 22P05) and bytes outside the encoding (22021). Nothing was
    changed. :func:`translate` maps all three here.
    """


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


class InvalidReaderQuery(ValidationError):
    """A batch SQL reader's query cannot run (unknown table or column, a syntax
    error: the message carries PostgreSQL's), or its result lacks a key column.
    Raised in Python by ``pgbatch.batch.SqlReader``; nothing was read."""


class InvalidCursor(ValidationError):
    """A batch reader's cursor cannot be kept in, or read back from, the step's
    ExecutionContext: a key value that is NULL or of a type without a JSON form
    (bytes, a list, ...), or a checkpoint that does not match the key columns."""


class InvalidWriterTarget(ValidationError):
    """A batch table writer names a table that does not exist or columns it
    does not have. Raised in Python by ``pgbatch.batch.TableWriter``; nothing
    was written."""


class InvalidWriterItem(ValidationError):
    """An item given to a batch table writer does not fit its columns: a dict
    without one of them, or a tuple of the wrong length. Nothing was written."""


class InvalidJobParameters(ValidationError):
    """Batch job parameters are malformed: not a JSON object, an unknown type,
    a value that does not parse as its type (docs/batch.md "Identity")."""

    sqlstate = "PB040"


class InvalidJobDefinition(ValidationError):
    """A job definition passed to ``register_job`` is malformed."""

    sqlstate = "PB041"


class JobNotRegistered(PgBatchError):
    """A launch names a job that no worker ever registered (``register_job``)."""

    sqlstate = "PB042"


class JobInstanceAlreadyCompleteError(PgBatchError):
    """The job instance's last execution COMPLETED: change an identifying
    parameter (``next_instance``) to run the job again."""

    sqlstate = "PB043"


class JobExecutionAlreadyRunningError(PgBatchError):
    """The job instance has an active execution (STARTING, STARTED, STOPPING,
    PAUSING, PAUSED, AWAITING_APPROVAL), or an execution to abandon still has a
    live lease."""

    sqlstate = "PB044"


class JobRestartError(PgBatchError):
    """The job instance cannot be restarted; :attr:`reason` says why:
    ``abandoned``, ``not_restartable`` or ``unknown`` (recover it first)."""

    sqlstate = "PB045"

    @property
    def reason(self) -> str | None:
        """The reason the restart was refused (the error's detail)."""
        return self.detail


class FencedOut(ClaimLost):
    """A worker's call on a batch execution was fenced: its work item is no
    longer the execution's current one, or the execution is no longer running.
    Roll back; do not touch the execution again."""

    sqlstate = "PB046"


class JobExecutionNotFound(PgBatchError):
    """No batch job execution (or step execution) has that id."""

    sqlstate = "PB047"


class InvalidExecutionState(InvalidState):
    """A batch state transition that the execution's or step's current state
    does not allow (a step ended twice, a chunk out of sequence, ...)."""

    sqlstate = "PB048"


class JobDefinitionChangedError(PgBatchError):
    """A job definition changed under the same ``version`` (``register_job``),
    or an execution would go on with other steps than it started with. Give
    the changed definition a new version."""

    sqlstate = "PB049"


class InvalidResumeAt(ValidationError):
    """The ``resume_at`` of a timed pause (``pause_execution``, ``ctx.request_pause``,
    ``PauseJob``) is infinite, not after the database's now, or further ahead than
    ``limits()`` allows. Nothing was changed."""

    sqlstate = "PB050"


class IndeterminateWriteError(PgBatchError):
    """Raised by a batch writer whose external sink cannot tell whether a chunk
    was written (a partial or unacknowledged write). The step and the execution
    become UNKNOWN until an operator calls ``recover_execution`` (T21)."""


class UnknownGate(PgBatchError):
    """A gate decision (``approve_gate`` / ``reject_gate``) names a gate that the
    execution's job does not have; the error's detail lists its gates."""

    sqlstate = "PB055"


class GateNotPending(InvalidState):
    """A gate decision for a gate that the execution has not reached (no
    approval was requested). A gate that was already decided or expired is
    not an error: the call returns ``applied=False`` with the approval's status."""

    sqlstate = "PB056"


class ScheduleNotFound(PgBatchError):
    """No schedule has that name."""

    sqlstate = "PB060"


class InvalidSchedule(ValidationError):
    """A schedule definition the scheduler refuses: a bad name, kind, interval,
    misfire threshold, catch-up window, overlap policy or target, or a field
    of another kind (docs/schedules.md)."""

    sqlstate = "PB061"


class ScheduleAlreadyExists(PgBatchError):
    """``create_schedule`` with the name of an existing schedule."""

    sqlstate = "PB062"


class StartLimitExceededError(PgBatchError):
    """A step was started ``start_limit`` times over its instance's executions;
    ``start_step`` failed the execution (exit ``START_LIMIT_EXCEEDED``)."""


class EnqueueUnconfirmed(PgBatchError):
    """An enqueue kept losing its connection until its retry deadline (``retry_for``).

    The jobs may or may not exist: ``job_ids`` are the ids the client chose for
    them before the first attempt. Enqueue again with the same ids (``id=`` /
    ``EnqueueRequest.id``) to find out: ``DuplicateJobId`` then means they
    exist. The last connection error is the ``__cause__``.
    """

    def __init__(self, message: str, job_ids: list[UUID]) -> None:
        super().__init__(message)
        self.job_ids = job_ids


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
        ValueTooLarge,
        InvalidTime,
        InvalidCron,
        InvalidTimeZone,
        InvalidJobParameters,
        InvalidJobDefinition,
        JobNotRegistered,
        JobInstanceAlreadyCompleteError,
        JobExecutionAlreadyRunningError,
        JobRestartError,
        FencedOut,
        JobExecutionNotFound,
        InvalidExecutionState,
        JobDefinitionChangedError,
        InvalidResumeAt,
        UnknownGate,
        GateNotPending,
        ScheduleNotFound,
        InvalidSchedule,
        ScheduleAlreadyExists,
    )
    if cls.sqlstate is not None
}


#: SQLSTATEs of text that PostgreSQL's input functions cannot store (see InvalidText).
TEXT_INPUT_ERRORS = frozenset({"22P05", "22021"})


def translate(exc: psycopg.Error) -> PgBatchError | None:
    """Return the pgbatch exception for a database error, or None if it is not ours.

    Besides the ``PB`` codes of :data:`ERRORS`, text that cannot be stored
    (a NUL refused by psycopg, :data:`TEXT_INPUT_ERRORS` from the server)
    becomes :class:`InvalidText`.
    """
    state = exc.sqlstate
    if state is None:
        if isinstance(exc, psycopg.DataError) and "NUL" in str(exc):
            return InvalidText(f"invalid text: {exc}")
        return None
    if state in TEXT_INPUT_ERRORS:
        return InvalidText(f"invalid text: {exc.diag.message_primary or exc}",
                           detail=exc.diag.message_detail)
    cls = ERRORS.get(state)
    if cls is None:
        return None
    diag = exc.diag
    return cls(diag.message_primary or str(exc), detail=diag.message_detail)
