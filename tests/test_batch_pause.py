# Test names carry BATCH.md acceptance ids (P1, P2, ...): upper case on purpose.
# ruff: noqa: N802
"""Pause from processing logic and resume of the same execution, through a real
worker: ``ctx.request_pause()`` commits the chunk and the pause in one
transaction, ``raise PauseJob`` rolls the chunk back and parks at the previous
checkpoint, tasklets pause, the NOTIFY and the ``on_parked`` hook report it,
and ``resume()`` continues the same execution and step row (P1, P2, P6)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from pgbatch import InvalidResumeAt, JobExecutionNotFound
from pgbatch.batch import PARKED_CHANNEL, JobOperator, Parked, PauseJob, parse_parked
from tests.batch_helpers import (
    event_count,
    events,
    execution,
    invariants_checked,  # noqa: F401 - the fixture
    steps,
    wait_status,
)
from tests.conftest import TestDatabase
from tests.helpers import scalar
from tests.pause_jobs import PausePlan, chunk_job, launch, prepare, tasklet_job, worker_on

Conn = psycopg.Connection[Any]
pytestmark = pytest.mark.usefixtures("invariants_checked")


@pytest.fixture
def op(db: TestDatabase) -> Iterator[JobOperator]:
    operator = JobOperator.connect(db.dsn, max_size=2)
    try:
        yield operator
    finally:
        operator.close()


def out_items(conn: Conn) -> list[int]:
    return list(scalar(conn, "select coalesce(array_agg(item_id order by item_id), '{}')"
                             " from public.out"))


def live_items(conn: Conn, execution_id: int) -> int:
    return int(scalar(conn, "select count(*) from pgbatch.job"
                            " where (payload ->> 'execution_id')::bigint = %s", [execution_id]))


def test_P1_P2_request_pause_and_pause_job_then_resume(db: TestDatabase, conn: Conn,
                                                       op: JobOperator) -> None:
    plan = PausePlan(at={7: "request", 13: "raise"})
    job = chunk_job(plan, n=23, chunk_size=5)
    prepare(conn, [job])
    listener = psycopg.Connection.connect(db.dsn, autocommit=True)
    listener.execute(f"listen {PARKED_CHANNEL}")
    parked: list[Parked] = []
    exec_id = launch(conn, job)
    with worker_on(db.dsn, [job], parked):
        # request_pause at item 7: items 6 and 7 are processed, written and committed with
        # the pause; no further item is read
        x = wait_status(conn, exec_id, "PAUSED")
        (load,) = steps(conn, exec_id)
        assert (load["status"], load["chunk_seq"], load["read_count"]) == ("PAUSED", 2, 7)
        assert load["context"] == {"next": 8}
        assert out_items(conn) == list(range(1, 8))
        assert (x["lease_owner"], x["lease_expires_at"]) == (None, None)
        assert x["pause_reason"] == "check item 7"
        assert live_items(conn, exec_id) == 0  # the work item was acked, nothing runs it
        note = next(listener.notifies(timeout=10, stop_after=1))
        assert parse_parked(note.payload) == Parked(exec_id, "pausing", "PAUSED", "load",
                                                    "check item 7")
        step_id = load["id"]

        # P2: resume -> the same execution and step row, read on from item 8; PauseJob at
        # item 13 rolls its chunk (13..17) back: the checkpoint stays after item 12
        first = op.resume(exec_id)
        assert (first.resumed, first.status) == (True, "STARTING")
        x = wait_status(conn, exec_id, "PAUSED")
        (load,) = steps(conn, exec_id)
        assert (load["id"], load["status"], load["chunk_seq"]) == (step_id, "PAUSED", 3)
        assert load["context"] == {"next": 13}
        assert out_items(conn) == list(range(1, 13))
        assert x["pause_reason"] == "item 13 needs a person"

        assert op.resume(exec_id).resumed
        wait_status(conn, exec_id, "COMPLETED")
    listener.close()
    (load,) = steps(conn, exec_id)
    assert (load["id"], load["status"], load["read_count"]) == (step_id, "COMPLETED", 23)
    assert out_items(conn) == list(range(1, 24))
    x = execution(conn, exec_id)
    assert (x["resume_count"], x["pause_reason"], x["resume_at"]) == (2, None, None)
    assert scalar(conn, "select count(*) from pgbatch.job_execution") == 1
    assert event_count(conn, exec_id, "paused") == 2
    assert event_count(conn, exec_id, "resumed") == 2
    assert [p.reason for p in parked] == ["check item 7", "item 13 needs a person"]
    detail = scalar(conn, "select detail from pgbatch.execution_event where kind = 'paused'"
                          " order by id limit 1")
    assert detail["source"] == "logic"


def test_P1_pause_at_the_end_of_a_step_and_in_a_tasklet(db: TestDatabase, conn: Conn,
                                                        op: JobOperator) -> None:
    plan = PausePlan(at={10: "request"}, tasklet={"b": "request", "c": "raise"})
    chunks = chunk_job(plan, n=10, chunk_size=5, name="ends")
    tasklets = tasklet_job(plan)
    prepare(conn, [chunks, tasklets])
    end_id = launch(conn, chunks)
    t_id = launch(conn, tasklets)
    with worker_on(db.dsn, [chunks, tasklets]):
        # the pause on the last item: the step is PAUSED with all items committed
        wait_status(conn, end_id, "PAUSED")
        assert steps(conn, end_id)[0]["chunk_seq"] == 2
        # tasklet b asked for a pause: b COMPLETED, the execution parked before c
        x = wait_status(conn, t_id, "PAUSED")
        assert x["current_step"] == "c"
        assert [(s["step_name"], s["status"]) for s in steps(conn, t_id)] == [
            ("a", "COMPLETED"), ("b", "COMPLETED")]
        assert op.resume(end_id).resumed
        assert op.resume(t_id).resumed
        wait_status(conn, end_id, "COMPLETED")
        # tasklet c raised PauseJob: c PAUSED, run again on resume
        wait_status(conn, t_id, "PAUSED")
        assert [s["status"] for s in steps(conn, t_id)] == ["COMPLETED", "COMPLETED", "PAUSED"]
        assert op.resume(t_id).resumed
        wait_status(conn, t_id, "COMPLETED")
    assert plan.ran == ["a", "b", "c", "c"]
    assert steps(conn, end_id)[0]["read_count"] == 10
    assert out_items(conn) == list(range(1, 11))


def test_operator_pause_of_a_running_and_of_a_waiting_execution(db: TestDatabase, conn: Conn,
                                                                op: JobOperator) -> None:
    plan = PausePlan()
    job = chunk_job(plan, n=40, chunk_size=5, name="op-paused")
    prepare(conn, [job])
    # T11: STARTING -> PAUSED, its work item cancelled: no worker runs it
    exec_id = launch(conn, job)
    result = op.pause(exec_id, reason="hold it")
    assert (result.applied, result.status) == (True, "PAUSED")
    assert live_items(conn, exec_id) == 0
    assert events(conn, exec_id) == ["launched", "paused"]
    # T10: STARTED -> PAUSING, parked at the next chunk commit: pause it while a worker
    # runs it (its first chunk waits on a lock this test holds)
    assert op.resume(exec_id).resumed
    locker = psycopg.Connection.connect(db.dsn)
    locker.execute("lock table public.out in exclusive mode")
    with worker_on(db.dsn, [job], idle=False):
        wait_status(conn, exec_id, "STARTED")
        result = op.pause(exec_id, reason="look at it")
        assert (result.applied, result.status) == (True, "PAUSING")
        locker.rollback()
        x = wait_status(conn, exec_id, "PAUSED")
        (load,) = steps(conn, exec_id)
        assert (load["status"], load["chunk_seq"]) == ("PAUSED", 1)
        assert x["pause_reason"] == "look at it"
        assert op.pause(exec_id).applied is False  # already PAUSED: a typed result
        assert op.resume(exec_id).resumed
        wait_status(conn, exec_id, "COMPLETED")
    locker.close()
    assert out_items(conn) == list(range(1, 41))
    assert [e for e in events(conn, exec_id) if e in ("pause", "paused", "resumed")] == [
        "paused", "resumed", "pause", "paused", "resumed"]


def test_P6_resume_retried_with_the_same_request_id(conn: Conn, op: JobOperator) -> None:
    plan = PausePlan()
    job = chunk_job(plan, name="retried")
    prepare(conn, [job])
    exec_id = launch(conn, job)
    assert op.pause(exec_id).applied
    first = op.resume(exec_id, request_id="ops-1")
    again = op.resume(exec_id, request_id="ops-1")
    assert (first.resumed, first.status) == (True, "STARTING")
    assert again == first
    other = op.resume(exec_id, request_id="ops-2")
    assert (other.resumed, other.status) == (False, "STARTING")
    assert event_count(conn, exec_id, "resumed") == 1
    assert execution(conn, exec_id)["resume_count"] == 1
    # from psql, by name
    row = conn.execute("select * from pgbatch.resume_execution(execution_id => %s,"
                       " request_id => 'ops-1')", [exec_id]).fetchone()
    assert row == (True, "STARTING")


def test_timed_pause_from_processing_logic_resumes_by_itself(db: TestDatabase, conn: Conn) -> None:
    now = scalar(conn, "select pgbatch.now()")
    plan = PausePlan(at={3: "request"}, resume_at=now + timedelta(seconds=2))
    job = chunk_job(plan, n=8, chunk_size=5, name="timed")
    prepare(conn, [job])
    exec_id = launch(conn, job)
    with worker_on(db.dsn, [job]):
        x = wait_status(conn, exec_id, "PAUSED", "COMPLETED")
        if x["status"] == "PAUSED":
            assert x["resume_at"] == plan.resume_at
        wait_status(conn, exec_id, "COMPLETED")
    detail = json.loads(json.dumps(scalar(
        conn, "select detail from pgbatch.execution_event where kind = 'resumed'")))
    assert detail["by"] == "schedule"
    assert out_items(conn) == list(range(1, 9))


def test_bad_pause_requests_from_python(db: TestDatabase, conn: Conn, op: JobOperator) -> None:
    naive = datetime(2030, 1, 1)  # the bad input under test: no time zone
    with pytest.raises(InvalidResumeAt, match="time zone"):
        PauseJob("later", naive)
    with pytest.raises(ValueError, match="non-empty"):
        PauseJob("  ")
    past = scalar(conn, "select pgbatch.now()") - timedelta(minutes=5)
    # a timed pause in the past from processing logic: refused by the database, the chunk
    # and the pause roll back, and the step ends FAILED saying why
    plan = PausePlan(at={4: "request"}, resume_at=past)
    job = chunk_job(plan, n=8, chunk_size=5, name="bad-pause")
    prepare(conn, [job])
    exec_id = launch(conn, job)
    with worker_on(db.dsn, [job]):
        x = wait_status(conn, exec_id, "FAILED")
    assert "InvalidResumeAt" in x["exit_message"]
    assert "not after now" in x["exit_message"]
    assert out_items(conn) == []
    # the operator API maps the error to its class and changes nothing
    other = launch(conn, job, {"n": 2})
    with pytest.raises(InvalidResumeAt, match="not after now"):
        op.pause(other, resume_at=past)
    assert execution(conn, other)["status"] == "STARTING"
    with pytest.raises(JobExecutionNotFound):
        op.resume(999_999)
