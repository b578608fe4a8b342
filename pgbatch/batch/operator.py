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
decoding live once, in :mod:`pgbatch.batch.operations`); the records they
return are in :mod:`pgbatch.batch.records`.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pgbatch._aio_client import AnyConn as AsyncConn
from pgbatch._aio_client import AsyncClient
from pgbatch._client import AnyConn as SyncConn
from pgbatch._client import Client
from pgbatch.batch.gates import ApprovalInfo, ApprovalResult, approvals_op, decide_op
from pgbatch.batch.operations import (
    events_op,
    execution_op,
    executions_op,
    launch_op,
    next_instance_op,
    request_id_or_new,
    restart_op,
    steps_op,
    transition_op,
)
from pgbatch.batch.pause_calls import (
    PausedExecution,
    ResumeResult,
    pause_op,
    paused_op,
    resume_op,
)
from pgbatch.batch.records import (
    ACTIVE_STATUSES,
    EXECUTION_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    ExecutionEvent,
    JobExecutionDetail,
    JobExecutionInfo,
    StepExecutionInfo,
    TransitionResult,
)

__all__ = ["ACTIVE_STATUSES", "EXECUTION_STATUSES", "TERMINAL_STATUSES", "TRANSITIONS",
           "ApprovalInfo", "ApprovalResult", "AsyncJobOperator", "ExecutionEvent",
           "JobExecutionDetail", "JobExecutionInfo", "JobOperator", "PausedExecution",
           "ResumeResult", "StepExecutionInfo",
           "TransitionResult"]


class JobOperator:
    """Launch, restart, stop, pause, resume, abandon, recover and cancel job executions, and
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

    # -- pause and resume (docs/batch-pause.md) ---------------------------------------------
    def pause(self, execution_id: int, *, reason: str | None = None,
              resume_at: datetime | None = None, request_id: str | None = None,
              conn: SyncConn | None = None) -> TransitionResult:
        """Pause an execution (``pause_execution``): a running one is PAUSING and parks
        PAUSED at its next chunk commit or step start; a STARTING one is PAUSED at once.
        ``resume_at`` (tz-aware, in the future, else ``InvalidResumeAt``): resume it
        then by itself. ``applied=False`` in any other status."""
        return self.client.run(
            pause_op(execution_id, request_id_or_new(request_id), reason, resume_at), conn)

    def resume(self, execution_id: int, request_id: str | None = None,
               allow_definition_change: bool = False, *,
               conn: SyncConn | None = None) -> ResumeResult:
        """Resume a PAUSED execution (``resume_execution``): the same execution and step
        go on from the checkpoint. ``resumed=False`` with the current status when it was
        not PAUSED (another resume won). ``JobDefinitionChangedError`` when the job's
        definition changed while paused, unless ``allow_definition_change`` (steps are
        then matched by name)."""
        return self.client.run(resume_op(execution_id, request_id_or_new(request_id),
                                         allow_definition_change), conn)

    def paused(self, job_name: str | None = None, limit: int = 100, *,
               conn: SyncConn | None = None) -> list[PausedExecution]:
        """The PAUSED executions (of ``job_name``), newest first, with reason and resume_at."""
        return self.client.run(paused_op(job_name, limit), conn)

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

    # -- approval gates (docs/batch-gates.md) ---------------------------------------------
    def approve(self, execution_id: int, gate: str, actor: str | None = None,
                comment: str | None = None, request_id: str | None = None, *,
                conn: SyncConn | None = None) -> ApprovalResult:
        """Approve ``gate`` of an execution AWAITING_APPROVAL at it (``approve_gate``):
        the next step runs in the same execution. ``applied=False`` with the
        approval's status when it was already decided or expired. Raises
        JobExecutionNotFound, UnknownGate, GateNotPending."""
        return self.client.run(decide_op("approve", execution_id, gate, actor, comment,
                                         request_id_or_new(request_id)), conn)

    def reject(self, execution_id: int, gate: str, actor: str | None = None,
               comment: str | None = None, request_id: str | None = None, *,
               conn: SyncConn | None = None) -> ApprovalResult:
        """Reject ``gate`` (``reject_gate``): the execution ends FAILED with exit
        ``APPROVAL_REJECTED``; restarting it asks again. As :meth:`approve` otherwise."""
        return self.client.run(decide_op("reject", execution_id, gate, actor, comment,
                                         request_id_or_new(request_id)), conn)

    def approvals(self, status: str | None = None, limit: int = 100, *,
                  conn: SyncConn | None = None) -> list[ApprovalInfo]:
        """Gate approvals, newest first (``approvals``): ``status`` PENDING (the
        inbox), DECIDED, APPROVED, REJECTED, EXPIRED or None (all)."""
        return self.client.run(approvals_op(status, limit), conn)


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

    # -- pause and resume (docs/batch-pause.md) ---------------------------------------------
    async def pause(self, execution_id: int, *, reason: str | None = None,
                    resume_at: datetime | None = None, request_id: str | None = None,
                    conn: AsyncConn | None = None) -> TransitionResult:
        """See :meth:`JobOperator.pause`."""
        return await self.client.run(
            pause_op(execution_id, request_id_or_new(request_id), reason, resume_at), conn)

    async def resume(self, execution_id: int, request_id: str | None = None,
                     allow_definition_change: bool = False, *,
                     conn: AsyncConn | None = None) -> ResumeResult:
        """See :meth:`JobOperator.resume`."""
        return await self.client.run(resume_op(execution_id, request_id_or_new(request_id),
                                               allow_definition_change), conn)

    async def paused(self, job_name: str | None = None, limit: int = 100, *,
                     conn: AsyncConn | None = None) -> list[PausedExecution]:
        """See :meth:`JobOperator.paused`."""
        return await self.client.run(paused_op(job_name, limit), conn)

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

    # -- approval gates (docs/batch-gates.md) ---------------------------------------------
    async def approve(self, execution_id: int, gate: str, actor: str | None = None,
                      comment: str | None = None, request_id: str | None = None, *,
                      conn: AsyncConn | None = None) -> ApprovalResult:
        """See :meth:`JobOperator.approve`."""
        return await self.client.run(decide_op("approve", execution_id, gate, actor, comment,
                                               request_id_or_new(request_id)), conn)

    async def reject(self, execution_id: int, gate: str, actor: str | None = None,
                     comment: str | None = None, request_id: str | None = None, *,
                     conn: AsyncConn | None = None) -> ApprovalResult:
        """See :meth:`JobOperator.reject`."""
        return await self.client.run(decide_op("reject", execution_id, gate, actor, comment,
                                               request_id_or_new(request_id)), conn)

    async def approvals(self, status: str | None = None, limit: int = 100, *,
                        conn: AsyncConn | None = None) -> list[ApprovalInfo]:
        """See :meth:`JobOperator.approvals`."""
        return await self.client.run(approvals_op(status, limit), conn)
