"""The operator API of the batch engine: :class:`JobOperator` (sync) and
:class:`AsyncJobOperator` (asyncio), the Python face of the SQL functions of
BATCH.md §10.

Each method is one SQL function call (one transaction), run through the
queue's client (:class:`~pgbatch.Client` / :class:`~pgbatch.AsyncClient`): on
its pool, or with ``conn=`` on the caller's connection and inside the
caller's transaction. Database errors become the classes of the error table
(``pgbatch._errors``): ``JobNotRegistered``, ``JobExecutionNotFound``,
``JobExecutionAlreadyRunningError``, ``JobRestartError``, …

Every state-changing call carries a ``request_id`` (a fresh UUID when the
caller gives none): a retry of a call with the same ``request_id`` returns
the first call's result and changes nothing again, so a caller that lost the
answer (a timeout, a dropped connection) retries safely. Transitions return
a :class:`TransitionResult`; a lost race (the execution had moved to a status
the call does not apply to) is ``applied=False`` with that status, not an
exception.

The sync and async classes run the same ``Op`` objects (the SQL and the
decoding live once, in the functions below).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar
from uuid import uuid4

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pgbatch import _ops
from pgbatch._aio_client import AnyConn as AsyncConn
from pgbatch._aio_client import AsyncClient
from pgbatch._client import AnyConn as SyncConn
from pgbatch._client import Client

R = TypeVar("R")

#: Statuses of a job execution that end it (it has an end_time).
TERMINAL_STATUSES: Final = ("COMPLETED", "FAILED", "STOPPED", "ABANDONED")
#: Statuses of a job execution that block a new execution of its instance.
ACTIVE_STATUSES: Final = ("STARTING", "STARTED", "STOPPING", "PAUSING", "PAUSED",
                          "AWAITING_APPROVAL", "UNKNOWN")
#: Every job execution status.
EXECUTION_STATUSES: Final = (*ACTIVE_STATUSES, *TERMINAL_STATUSES)
#: The operator transitions: the action name and its SQL function.
TRANSITIONS: Final = {"stop": "stop_execution", "abandon": "abandon_execution",
                      "recover": "recover_execution", "cancel": "cancel_execution"}


@dataclass(frozen=True)
class TransitionResult:
    """What an operator transition did.

    ``applied``: the call changed the execution (or an earlier call with the
    same ``request_id`` did); False when the execution's status does not
    allow it (a lost race), and nothing changed. ``status``: the execution's
    status after the call (e.g. ``STOPPING`` after a stop of a running
    execution, ``COMPLETED`` when it finished first). ``request_id``: pass it
    again to retry the same call idempotently.
    """

    action: str
    execution_id: int
    applied: bool
    status: str
    request_id: str


@dataclass(frozen=True)
class JobExecutionInfo:
    """One row of ``pgbatch.job_executions()``."""

    execution_id: int
    instance_id: int
    job: str
    job_key: str
    execution_status: str
    exit_code: str
    exit_message: str | None
    current_step: str | None
    params: dict[str, Any]
    create_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    resume_count: int
    recovery_count: int
    handoff_count: int

    @property
    def status(self) -> str:
        """The execution's status (``execution_status``)."""
        return self.execution_status

    def duration(self, now: datetime | None = None) -> timedelta | None:
        """From the start to the end (to ``now`` while it runs); None before it started."""
        if self.start_time is None:
            return None
        end = self.end_time or now
        return None if end is None else end - self.start_time


@dataclass(frozen=True)
class JobExecutionDetail(JobExecutionInfo):
    """One execution as ``pgbatch.get_execution()`` returns it: the columns of
    :class:`JobExecutionInfo`, what an operator decides by, and the step
    counters summed over its step executions."""

    recovery_policy: str
    definition_fp: str
    lease_owner: str | None
    lease_epoch: int
    lease_expires_at: datetime | None
    stop_requested_at: datetime | None
    last_updated: datetime
    read_count: int
    write_count: int
    filter_count: int
    commit_count: int
    skip_count: int
    rollback_count: int


@dataclass(frozen=True)
class StepExecutionInfo:
    """One row of ``pgbatch.step_executions()``: a step execution, its counters and checkpoint."""

    step_execution_id: int
    step_name: str
    step_index: int
    status: str
    exit_code: str
    exit_message: str | None
    read_count: int
    write_count: int
    filter_count: int
    commit_count: int
    rollback_count: int
    read_skip_count: int
    process_skip_count: int
    write_skip_count: int
    chunk_seq: int
    context: dict[str, Any]
    start_time: datetime | None
    end_time: datetime | None


@dataclass(frozen=True)
class ExecutionEvent:
    """One row of ``pgbatch.execution_events()``: a state change of an execution."""

    event_id: int
    step_execution_id: int | None
    at: datetime
    kind: str
    from_status: str | None
    to_status: str | None
    actor: str | None
    request_id: str | None
    detail: Any


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


class JobOperator:
    """Launch, restart, stop, abandon, recover and cancel job executions, and
    read their history (sync). Built on a :class:`~pgbatch.Client` (its pool,
    or ``conn=`` per call)."""

    def __init__(self, client: Client) -> None:
        """Run every call through ``client``."""
        self.client = client

    @classmethod
    def connect(cls, conninfo: str, *, min_size: int = 1, max_size: int = 4,
                pooler: str | None = None) -> JobOperator:
        """An operator on a new client pool to ``conninfo`` (close it with :meth:`close`)."""
        return cls(Client.connect(conninfo, min_size=min_size, max_size=max_size, pooler=pooler))

    def close(self) -> None:
        """Close the client's pool."""
        self.client.close()

    def launch(self, job_name: str, params: Mapping[str, Any] | None = None, *,
               request_id: str | None = None, conn: SyncConn | None = None) -> int:
        """Launch ``job_name`` with ``params`` (``launch_job``); returns the execution id.

        A plain value in ``params`` is an identifying parameter; ``{"value": …,
        "type": …, "identifying": false}`` spells type and flag out
        (docs/batch.md "Identity"). Raises JobNotRegistered, InvalidJobParameters,
        JobExecutionAlreadyRunningError, JobInstanceAlreadyCompleteError,
        JobRestartError. The same ``request_id`` returns the first launch's execution.
        """
        return self.client.run(launch_op(job_name, params, request_id_or_new(request_id)), conn)

    def restart(self, execution_id: int, *, request_id: str | None = None,
                conn: SyncConn | None = None) -> int:
        """Restart the instance of ``execution_id`` (``restart_execution``); the new id."""
        return self.client.run(restart_op(execution_id, request_id_or_new(request_id)), conn)

    def next_instance(self, job_name: str, params: Mapping[str, Any] | None = None, *,
                      conn: SyncConn | None = None) -> dict[str, Any]:
        """``params`` with the identifying ``run_id`` of a new instance ("run it again")."""
        return self.client.run(next_instance_op(job_name, params), conn)

    def stop(self, execution_id: int, *, request_id: str | None = None,
             conn: SyncConn | None = None) -> TransitionResult:
        """Stop an execution (``stop_execution``): a running one stops at its next chunk
        commit (status STOPPING); a waiting one is STOPPED at once."""
        return self._transition("stop", execution_id, request_id, conn)

    def abandon(self, execution_id: int, *, request_id: str | None = None,
                conn: SyncConn | None = None) -> TransitionResult:
        """Give up on an execution for good (``abandon_execution``); its instance can no
        longer be restarted. JobExecutionAlreadyRunningError while its lease is live."""
        return self._transition("abandon", execution_id, request_id, conn)

    def recover(self, execution_id: int, *, request_id: str | None = None,
                conn: SyncConn | None = None) -> TransitionResult:
        """End an UNKNOWN execution (or a running one whose lease expired) FAILED
        (``recover_execution``), so that it can be restarted."""
        return self._transition("recover", execution_id, request_id, conn)

    def cancel(self, execution_id: int, *, request_id: str | None = None,
               conn: SyncConn | None = None) -> TransitionResult:
        """End an execution as cancelled (``cancel_execution``), the administrative end."""
        return self._transition("cancel", execution_id, request_id, conn)

    def executions(self, job_name: str | None = None, status: str | None = None,
                   limit: int = 100, *, conn: SyncConn | None = None) -> list[JobExecutionInfo]:
        """Executions of ``job_name`` in ``status`` (None: any), newest first."""
        return self.client.run(executions_op(job_name, status, limit), conn)

    def execution(self, execution_id: int, *, conn: SyncConn | None = None) -> JobExecutionDetail:
        """One execution with its summed step counters (``get_execution``)."""
        return self.client.run(execution_op(execution_id), conn)

    def steps(self, execution_id: int, *,
              conn: SyncConn | None = None) -> list[StepExecutionInfo]:
        """The step executions of ``execution_id`` in step order (``step_executions``)."""
        return self.client.run(steps_op(execution_id), conn)

    def events(self, execution_id: int, *, conn: SyncConn | None = None) -> list[ExecutionEvent]:
        """The events of ``execution_id``, oldest first (``execution_events``)."""
        return self.client.run(events_op(execution_id), conn)

    def _transition(self, action: str, execution_id: int, request_id: str | None,
                    conn: SyncConn | None) -> TransitionResult:
        return self.client.run(
            transition_op(action, execution_id, request_id_or_new(request_id)), conn)


class AsyncJobOperator:
    """:class:`JobOperator` for asyncio, on an :class:`~pgbatch.AsyncClient`; the same
    methods, each a coroutine."""

    def __init__(self, client: AsyncClient) -> None:
        """Run every call through ``client``."""
        self.client = client

    @classmethod
    async def connect(cls, conninfo: str, *, min_size: int = 1, max_size: int = 4,
                      pooler: str | None = None) -> AsyncJobOperator:
        """An operator on a new client pool to ``conninfo`` (close it with :meth:`close`)."""
        return cls(await AsyncClient.connect(conninfo, min_size=min_size, max_size=max_size,
                                             pooler=pooler))

    async def close(self) -> None:
        """Close the client's pool."""
        await self.client.close()

    async def launch(self, job_name: str, params: Mapping[str, Any] | None = None, *,
                     request_id: str | None = None, conn: AsyncConn | None = None) -> int:
        """See :meth:`JobOperator.launch`."""
        return await self.client.run(
            launch_op(job_name, params, request_id_or_new(request_id)), conn)

    async def restart(self, execution_id: int, *, request_id: str | None = None,
                      conn: AsyncConn | None = None) -> int:
        """See :meth:`JobOperator.restart`."""
        return await self.client.run(restart_op(execution_id, request_id_or_new(request_id)),
                                     conn)

    async def next_instance(self, job_name: str, params: Mapping[str, Any] | None = None, *,
                            conn: AsyncConn | None = None) -> dict[str, Any]:
        """See :meth:`JobOperator.next_instance`."""
        return await self.client.run(next_instance_op(job_name, params), conn)

    async def stop(self, execution_id: int, *, request_id: str | None = None,
                   conn: AsyncConn | None = None) -> TransitionResult:
        """See :meth:`JobOperator.stop`."""
        return await self._transition("stop", execution_id, request_id, conn)

    async def abandon(self, execution_id: int, *, request_id: str | None = None,
                      conn: AsyncConn | None = None) -> TransitionResult:
        """See :meth:`JobOperator.abandon`."""
        return await self._transition("abandon", execution_id, request_id, conn)

    async def recover(self, execution_id: int, *, request_id: str | None = None,
                      conn: AsyncConn | None = None) -> TransitionResult:
        """See :meth:`JobOperator.recover`."""
        return await self._transition("recover", execution_id, request_id, conn)

    async def cancel(self, execution_id: int, *, request_id: str | None = None,
                     conn: AsyncConn | None = None) -> TransitionResult:
        """See :meth:`JobOperator.cancel`."""
        return await self._transition("cancel", execution_id, request_id, conn)

    async def executions(self, job_name: str | None = None, status: str | None = None,
                         limit: int = 100, *,
                         conn: AsyncConn | None = None) -> list[JobExecutionInfo]:
        """See :meth:`JobOperator.executions`."""
        return await self.client.run(executions_op(job_name, status, limit), conn)

    async def execution(self, execution_id: int, *,
                        conn: AsyncConn | None = None) -> JobExecutionDetail:
        """See :meth:`JobOperator.execution`."""
        return await self.client.run(execution_op(execution_id), conn)

    async def steps(self, execution_id: int, *,
                    conn: AsyncConn | None = None) -> list[StepExecutionInfo]:
        """See :meth:`JobOperator.steps`."""
        return await self.client.run(steps_op(execution_id), conn)

    async def events(self, execution_id: int, *,
                     conn: AsyncConn | None = None) -> list[ExecutionEvent]:
        """See :meth:`JobOperator.events`."""
        return await self.client.run(events_op(execution_id), conn)

    async def _transition(self, action: str, execution_id: int, request_id: str | None,
                          conn: AsyncConn | None) -> TransitionResult:
        return await self.client.run(
            transition_op(action, execution_id, request_id_or_new(request_id)), conn)
