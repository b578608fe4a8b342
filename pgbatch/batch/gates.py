"""Approval gates (BATCH.md §4.4, docs/batch-gates.md): the executor's part of a
:class:`~pgbatch.batch.definition.Gate` step, and the operator calls that
decide and list gates, as data shared by the sync and async operators.

A worker that reaches a gate calls ``pgbatch.await_gate`` in one fenced
transaction with the ack of its work item (no follow-up work item): the
execution is AWAITING_APPROVAL with a PENDING approval row and holds no
worker. The transaction notifies :data:`~pgbatch.batch.parking.PARKED_CHANNEL`;
after it committed the worker calls the executor's ``on_parked`` hook.
``approve_gate`` / ``reject_gate`` decide it later, from any session, after
any restart: approving enqueues the work item of the step after the gate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from psycopg.rows import dict_row

from pgbatch import _ops
from pgbatch.batch.calls import call_row
from pgbatch.batch.definition import Gate, Job
from pgbatch.batch.parking import Parked, ParkedHook, call_parked_hook
from pgbatch.worker.context import JobContext

log = logging.getLogger("pgbatch.batch")

#: The gate decisions: the action name and its SQL function.
DECISIONS: Final = {"approve": "approve_gate", "reject": "reject_gate"}
#: Approval statuses, and the filters ``approvals()`` takes.
APPROVAL_STATUSES: Final = ("PENDING", "APPROVED", "REJECTED", "EXPIRED")
APPROVAL_FILTERS: Final = ("PENDING", "DECIDED", "APPROVED", "REJECTED", "EXPIRED")


def run_gate(ctx: JobContext, job: Job, gate: Gate, hook: ParkedHook | None) -> str:
    """Park the execution of ``ctx``'s work item at ``gate`` (``await_gate``, acked in
    the same transaction); then call ``hook``. Returns the execution's status
    (AWAITING_APPROVAL, or STOPPED when a stop was requested first)."""
    item = ctx.job
    execution_id = int(item.payload["execution_id"])
    with ctx.fenced_sync() as conn:
        row = call_row(conn, "select * from pgbatch.await_gate(%s, %s, %s, %s, timeout => %s,"
                             " on_timeout => %s, ack => false)",
                       [execution_id, gate.name, item.id, item.claim_token, gate.timeout_delta,
                        gate.on_timeout])
        ctx.ack_in_sync(conn)
    status = str(row["status"])
    log.info("batch execution %s at gate %s: %s", execution_id, gate.name, status)
    if status == "AWAITING_APPROVAL":
        call_parked_hook(hook, Parked(execution_id=execution_id, job_name=job.name,
                                      status=status, step=gate.name, gate=gate.name))
    return status


@dataclass(frozen=True)
class ApprovalResult:
    """What a gate decision did.

    ``applied``: this call (or an earlier one with the same ``request_id``)
    decided the gate; False when the approval was already decided or EXPIRED
    (a concurrent decision, a stop, an abandon or the timeout came first), and
    nothing changed. ``status``: the approval's status after the call
    (APPROVED, REJECTED, EXPIRED). ``execution_status``: the execution's
    (STARTING or COMPLETED after an approval, FAILED after a rejection).
    """

    action: str
    execution_id: int
    gate: str
    applied: bool
    status: str
    execution_status: str
    request_id: str


@dataclass(frozen=True)
class ApprovalInfo:
    """One row of ``pgbatch.approvals()``: a gate's approval and who decided it when."""

    approval_id: int
    execution_id: int
    job_name: str
    gate_name: str
    status: str
    execution_status: str
    requested_at: datetime
    expires_at: datetime | None
    on_timeout: str
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None


def decide_op(action: str, execution_id: int, gate: str, actor: str | None,
              comment: str | None, request_id: str) -> _ops.Op[ApprovalResult]:
    """``approve_gate`` / ``reject_gate`` (``action`` of :data:`DECISIONS`) → its result."""
    function = DECISIONS[action]

    def decode(rows: list[Any]) -> ApprovalResult:
        applied, status, execution_status = rows[0]
        return ApprovalResult(action, execution_id, gate, bool(applied), str(status),
                              str(execution_status), request_id)

    return _ops.Op(f"select * from pgbatch.{function}(%s, %s, %s, %s, %s)",
                   (execution_id, gate, actor, comment, request_id), decode)


def approvals_op(status: str | None, limit: int) -> _ops.Op[list[ApprovalInfo]]:
    """``approvals(status, limit)``, newest first."""
    def decode(rows: list[Any]) -> list[ApprovalInfo]:
        return [ApprovalInfo(status=row.pop("approval_status"), **row) for row in rows]

    return _ops.Op("select * from pgbatch.approvals(%s, %s)", (status, limit), decode, dict_row)


def expire_gates_op(batch_size: int) -> _ops.Op[int]:
    """``expire_gates(batch_size)`` → how many gate timeouts it applied."""
    def decode(rows: list[Any]) -> int:
        return int(rows[0][0])

    return _ops.Op("select pgbatch.expire_gates(%s)", (batch_size,), decode)
