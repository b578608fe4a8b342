"""The pause and resume calls of the operator API as data (``Op`` objects run by
both :class:`~pgbatch.batch.operator.JobOperator` and
:class:`~pgbatch.batch.operator.AsyncJobOperator`), and their records.

``pause_execution`` returns a :class:`~pgbatch.batch.records.TransitionResult`
(action ``pause``); ``resume_execution`` a :class:`ResumeResult`: a lost race
(the execution was not PAUSED any more, e.g. another resume won) is
``resumed=False`` with the current status, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from pgbatch import _ops
from pgbatch.batch.records import TransitionResult


@dataclass(frozen=True)
class ResumeResult:
    """What a resume did.

    ``resumed``: the execution went from PAUSED to STARTING (by this call, or by
    an earlier one with the same ``request_id``); False when it was not PAUSED
    (a lost race) and nothing changed. ``status``: its status after the call
    (``STARTING`` when resumed; the current one otherwise, e.g. ``STARTED``
    after a concurrent resume, ``STOPPED`` after a stop; ``FAILED`` when
    ``allow_definition_change`` met a definition without its current step).
    """

    execution_id: int
    resumed: bool
    status: str
    request_id: str

    @property
    def applied(self) -> bool:
        """The same as :attr:`resumed` (the name of the SQL function's column)."""
        return self.resumed


@dataclass(frozen=True)
class PausedExecution:
    """One row of ``pgbatch.paused_executions()``: a PAUSED execution and what it waits for."""

    execution_id: int
    job: str
    current_step: str | None
    pause_reason: str | None
    resume_at: datetime | None
    paused_at: datetime | None
    resume_count: int


def pause_op(execution_id: int, request_id: str, reason: str | None,
             resume_at: datetime | None) -> _ops.Op[TransitionResult]:
    """``pause_execution(execution_id, request_id, reason, resume_at)``."""
    def decode(rows: list[Any]) -> TransitionResult:
        applied, status = rows[0]
        return TransitionResult("pause", execution_id, bool(applied), str(status), request_id)

    return _ops.Op("select * from pgbatch.pause_execution(%s, %s, reason => %s,"
                   " resume_at => %s)", (execution_id, request_id, reason, resume_at), decode)


def resume_op(execution_id: int, request_id: str,
              allow_definition_change: bool) -> _ops.Op[ResumeResult]:
    """``resume_execution(execution_id, request_id, allow_definition_change)``."""
    def decode(rows: list[Any]) -> ResumeResult:
        applied, status = rows[0]
        return ResumeResult(execution_id, bool(applied), str(status), request_id)

    return _ops.Op("select * from pgbatch.resume_execution(%s, %s, %s)",
                   (execution_id, request_id, bool(allow_definition_change)), decode)


def paused_op(job_name: str | None, limit: int) -> _ops.Op[list[PausedExecution]]:
    """``paused_executions(job_name, limit)``, newest first."""
    def decode(rows: list[Any]) -> list[PausedExecution]:
        return [PausedExecution(**row) for row in rows]

    return _ops.Op("select * from pgbatch.paused_executions(%s, %s)", (job_name, limit), decode,
                   dict_row)


def resume_due_op(batch_size: int) -> _ops.Op[int]:
    """``resume_due_executions(batch_size)`` → executions resumed."""
    def decode(rows: list[Any]) -> int:
        return int(rows[0][0])

    return _ops.Op("select pgbatch.resume_due_executions(%s)", (batch_size,), decode)
