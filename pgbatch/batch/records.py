"""The records of the batch operator API: execution, step and event rows as
dataclasses, transition results, and the status constants (docs/batch.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

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
