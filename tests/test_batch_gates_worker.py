# Test names carry BATCH.md acceptance ids (G1, G3, G4): upper case on purpose.
# ruff: noqa: N802
"""Approval gates with a real worker (in process, as the workers' role): the
executor parks an execution at a ``Gate`` step (NOTIFY and the ``on_parked``
hook observed), JobOperator / AsyncJobOperator decide it and list approvals,
the next step runs in the same execution, a rejected gate asks again on
restart, and the gate-timeout maintenance service applies a timeout."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from pgbatch import GateNotPending, InvalidJobDefinition, MaintenanceConfig, UnknownGate, Worker
from pgbatch.batch import (
    BATCH_KIND,
    ApprovalInfo,
    ApprovalResult,
    AsyncJobOperator,
    BatchExecutor,
    Gate,
    Job,
    JobOperator,
    TaskletStep,
    register_jobs,
)
from pgbatch.batch.parking import PARKED_CHANNEL, Parked, parse_parked
from tests.batch_helpers import batch_state, events, execution, steps
from tests.conftest import TestDatabase
from tests.gate_helpers import approval, gates_checked  # noqa: F401 - the fixture of pytestmark
from tests.helpers import collect_notifies, listen, scalar
from tests.worker_harness import LoopThread, app_on, wait_until

pytestmark = pytest.mark.usefixtures("gates_checked")

Conn = psycopg.Connection[Any]


class Recorder:
    """The job's tasklets and the on_parked hook: what ran, what parked."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.parked: list[Parked] = []
        self.parked_event = threading.Event()

    def tasklet(self, name: str) -> TaskletStep:
        return TaskletStep(name, lambda: self.ran.append(name))

    def hook(self, parked: Parked) -> None:
        self.parked.append(parked)
        self.parked_event.set()


def review_job(rec: Recorder, gate: Gate | None = None) -> Job:
    return Job("review", [rec.tasklet("prepare"), gate or Gate("check", timeout=3600),
                          rec.tasklet("publish")])


@pytest.fixture
def op(db: TestDatabase) -> Iterator[JobOperator]:
    operator = JobOperator.connect(db.dsn, max_size=2)
    try:
        yield operator
    finally:
        operator.close()


def wait_status(conn: Conn, execution_id: int, status: str) -> None:
    wait_until(lambda: execution(conn, execution_id)["status"] == status, 30,
               f"execution {execution_id} to be {status}")


def test_G1_a_worker_parks_at_a_gate_notifies_and_goes_on_after_approval(
        db: TestDatabase, conn: Conn, op: JobOperator) -> None:
    rec = Recorder()
    job = review_job(rec)
    register_jobs(conn, [job])
    exec_id = op.launch("review", {"day": "2026-12-01"})
    with db.connect() as listener, app_on(db.dsn) as app, LoopThread() as lt:
        listen(listener, PARKED_CHANNEL)
        app.register_executor(BATCH_KIND, BatchExecutor([job], on_parked=rec.hook))
        lt.start(Worker(app, concurrency=1, poll_interval=0.2, maintenance=False))
        wait_status(conn, exec_id, "AWAITING_APPROVAL")
        assert rec.parked_event.wait(30)
        assert rec.ran == ["prepare"]
        expected = Parked(execution_id=exec_id, job_name="review", status="AWAITING_APPROVAL",
                          step="check", gate="check")
        assert rec.parked == [expected]
        assert [parse_parked(p) for p in collect_notifies(listener, conn, PARKED_CHANNEL)] == [
            expected]
        a = approval(conn, exec_id)
        assert a["expires_at"] - a["requested_at"] == timedelta(hours=1)
        assert scalar(conn, "select count(*) from pgbatch.job") == 0

        inbox = op.approvals("PENDING")
        assert [(i.execution_id, i.gate_name, i.status, i.execution_status) for i in inbox] == [
            (exec_id, "check", "PENDING", "AWAITING_APPROVAL")]
        assert isinstance(inbox[0], ApprovalInfo)
        result = op.approve(exec_id, "check", actor="alice", comment="ok",
                            request_id="approve-1")
        assert result == ApprovalResult("approve", exec_id, "check", True, "APPROVED",
                                        "STARTING", "approve-1")
        wait_status(conn, exec_id, "COMPLETED")
    assert rec.ran == ["prepare", "publish"]
    assert [(s["step_name"], s["exit_code"]) for s in steps(conn, exec_id)] == [
        ("prepare", "COMPLETED"), ("check", "APPROVED"), ("publish", "COMPLETED")]
    assert "approve" in events(conn, exec_id)
    decided = op.approvals("DECIDED")
    assert [(d.status, d.decided_by, d.comment) for d in decided] == [("APPROVED", "alice", "ok")]
    # a retry of the same request returns the first result; the execution has moved on
    assert op.approve(exec_id, "check", request_id="approve-1") == result
    assert op.approve(exec_id, "check").applied is False


def test_G3_a_rejected_gate_fails_and_the_restart_asks_again(
        db: TestDatabase, conn: Conn) -> None:
    rec = Recorder()
    job = review_job(rec)
    register_jobs(conn, [job])

    async def operate(op: AsyncJobOperator) -> tuple[ApprovalResult, int, ApprovalResult]:
        first = await op.launch("review")
        await asyncio.to_thread(wait_status, conn, first, "AWAITING_APPROVAL")
        rejected = await op.reject(first, "check", actor="bob", comment="totals are off")
        second = await op.restart(first)
        await asyncio.to_thread(wait_status, conn, second, "AWAITING_APPROVAL")
        pending = await op.approvals("PENDING")
        assert [p.execution_id for p in pending] == [second]
        approved = await op.approve(second, "check")
        await asyncio.to_thread(wait_status, conn, second, "COMPLETED")
        return rejected, second, approved

    async def main() -> tuple[ApprovalResult, int, ApprovalResult]:
        op = await AsyncJobOperator.connect(db.dsn, max_size=2)
        try:
            return await operate(op)
        finally:
            await op.close()

    with app_on(db.dsn) as app, LoopThread() as lt:
        app.register_executor(BATCH_KIND, BatchExecutor([job], on_parked=rec.hook))
        lt.start(Worker(app, concurrency=1, poll_interval=0.2, maintenance=False))
        rejected, second, approved = asyncio.run(main())
    assert (rejected.applied, rejected.status, rejected.execution_status) == (
        True, "REJECTED", "FAILED")
    assert (approved.applied, approved.status) == (True, "APPROVED")
    first = rejected.execution_id
    assert execution(conn, first)["exit_code"] == "APPROVAL_REJECTED"
    # the restart skipped the completed tasklet and asked again at the gate
    assert rec.ran == ["prepare", "publish"]
    assert [s["step_name"] for s in steps(conn, second)] == ["check", "publish"]
    assert len(rec.parked) == 2


def test_G4_the_gate_timeout_service_applies_on_timeout(db: TestDatabase, conn: Conn) -> None:
    rec = Recorder()
    job = review_job(rec, Gate("check", timeout=timedelta(hours=2), on_timeout="approve"))
    register_jobs(conn, [job])
    exec_id = int(scalar(conn, "select pgbatch.launch_job('review')"))
    with app_on(db.dsn) as app, LoopThread() as lt:
        app.register_executor(BATCH_KIND, BatchExecutor([job]))
        lt.start(Worker(app, concurrency=1, poll_interval=0.2,
                        maintenance_config=MaintenanceConfig(interval=0.2)))
        wait_status(conn, exec_id, "AWAITING_APPROVAL")
        # the deadline passes (as a superuser, backdated instead of waiting two hours)
        conn.execute("update pgbatch.approval set expires_at = requested_at - interval '1 second'"
                     " where job_execution_id = %s", [exec_id])
        wait_status(conn, exec_id, "COMPLETED")
    a = approval(conn, exec_id)
    assert (a["status"], a["decided_by"]) == ("APPROVED", "timeout")
    assert rec.ran == ["prepare", "publish"]


def test_operator_refusals_are_the_error_classes(conn: Conn, op: JobOperator) -> None:
    rec = Recorder()
    register_jobs(conn, [review_job(rec)])
    exec_id = op.launch("review")
    before = batch_state(conn)
    with pytest.raises(UnknownGate, match="no gate"):
        op.approve(exec_id, "nope")
    with pytest.raises(GateNotPending, match="not awaiting"):
        op.reject(exec_id, "check")
    assert batch_state(conn) == before


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"timeout": -1.0},
                                    {"timeout": float("inf")}, {"timeout": "soon"},
                                    {"timeout": timedelta(days=4000)}, {"on_timeout": "skip"},
                                    {"name": " "}])
def test_bad_gate_definitions_are_refused(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"name": "check", **kwargs}
    with pytest.raises(InvalidJobDefinition):
        Gate(**args)


def test_a_gate_is_a_step_of_the_definition() -> None:
    job = Job("j", [Gate("check", timeout=timedelta(minutes=5), allow_start_if_complete=True)])
    assert job.definition()["steps"] == [
        {"name": "check", "kind": "gate", "allow_start_if_complete": True}]
    assert Gate("g", timeout=90).timeout_delta == timedelta(seconds=90)
    assert Gate("g").timeout_delta is None
