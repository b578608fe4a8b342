"""The operator calls of the batch engine as data: one ``Op`` per SQL function
of BATCH.md §10 (the SQL and the decoding of its rows), run by both
:class:`~pgbatch.batch.operator.JobOperator` and
:class:`~pgbatch.batch.operator.AsyncJobOperator`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any, TypeVar
from uuid import uuid4

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pgbatch import _ops
from pgbatch.batch.records import (
    TRANSITIONS,
    ExecutionEvent,
    JobExecutionDetail,
    JobExecutionInfo,
    StepExecutionInfo,
    TransitionResult,
)

R = TypeVar("R")


def _rows_as(cls: type[R]) -> Callable[[list[Any]], list[R]]:
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]

    def decode(rows: list[Any]) -> list[R]:
        return [cls(**{n: row[n] for n in names}) for row in rows]

    return decode


def _scalar_int(rows: list[Any]) -> int:
    return int(rows[0][0])


def _params(params: Mapping[str, Any] | None) -> Jsonb:
    return Jsonb(dict(params or {}))


def request_id_or_new(request_id: str | None) -> str:
    """``request_id``, or a fresh random one (a UUID as text)."""
    return request_id if request_id is not None else str(uuid4())


# -- the calls, as data (shared by the sync and async operators) -------------------------

def launch_op(job_name: str, params: Mapping[str, Any] | None, request_id: str) -> _ops.Op[int]:
    """``launch_job(job_name, params, request_id)`` → the new execution's id."""
    return _ops.Op("select pgbatch.launch_job(%s, %s, %s)",
                   (job_name, _params(params), request_id), _scalar_int)


def restart_op(execution_id: int, request_id: str) -> _ops.Op[int]:
    """``restart_execution(execution_id, request_id)`` → the new execution's id."""
    return _ops.Op("select pgbatch.restart_execution(%s, %s)", (execution_id, request_id),
                   _scalar_int)


def next_instance_op(job_name: str, params: Mapping[str, Any] | None) -> _ops.Op[dict[str, Any]]:
    """``next_instance(job_name, params)`` → ``params`` with the next ``run_id``."""
    def decode(rows: list[Any]) -> dict[str, Any]:
        value: dict[str, Any] = rows[0][0]
        return value

    return _ops.Op("select pgbatch.next_instance(%s, %s)", (job_name, _params(params)), decode)


def transition_op(action: str, execution_id: int, request_id: str) -> _ops.Op[TransitionResult]:
    """One of the operator transitions of :data:`TRANSITIONS` → its result."""
    function = TRANSITIONS[action]

    def decode(rows: list[Any]) -> TransitionResult:
        applied, status = rows[0]
        return TransitionResult(action, execution_id, bool(applied), str(status), request_id)

    return _ops.Op(f"select * from pgbatch.{function}(%s, %s)", (execution_id, request_id),
                   decode)


def executions_op(job_name: str | None, status: str | None,
                  limit: int) -> _ops.Op[list[JobExecutionInfo]]:
    """``job_executions(job_name, status, limit)``, newest first."""
    return _ops.Op("select * from pgbatch.job_executions(%s, %s, %s)", (job_name, status, limit),
                   _rows_as(JobExecutionInfo), dict_row)


def execution_op(execution_id: int) -> _ops.Op[JobExecutionDetail]:
    """``get_execution(execution_id)``."""
    decode = _rows_as(JobExecutionDetail)
    return _ops.Op("select * from pgbatch.get_execution(%s)", (execution_id,),
                   lambda rows: decode(rows)[0], dict_row)


def steps_op(execution_id: int) -> _ops.Op[list[StepExecutionInfo]]:
    """``step_executions(execution_id)``, in step order."""
    return _ops.Op("select * from pgbatch.step_executions(%s)", (execution_id,),
                   _rows_as(StepExecutionInfo), dict_row)


def events_op(execution_id: int) -> _ops.Op[list[ExecutionEvent]]:
    """``execution_events(execution_id)``, oldest first."""
    return _ops.Op("select * from pgbatch.execution_events(%s)", (execution_id,),
                   _rows_as(ExecutionEvent), dict_row)
