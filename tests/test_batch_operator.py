"""JobOperator and AsyncJobOperator against the real database: launch, restart,
next_instance, stop, abandon and the history calls, with request ids, typed
results for lost races and the error table's classes for refusals."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pgbatch import (
    InvalidArgument,
    InvalidJobParameters,
    JobExecutionAlreadyRunningError,
    JobExecutionNotFound,
    JobInstanceAlreadyCompleteError,
    JobNotRegistered,
    JobRestartError,
)
from pgbatch.batch import (
    AsyncJobOperator,
    ExecutionEvent,
    JobExecutionDetail,
    JobOperator,
    StepExecutionInfo,
    TransitionResult,
)
from tests.batch_helpers import (
    assert_invariants,
    batch_state,
    claim_item,
    register,
    run_to_end,
    start,
)
from tests.conftest import TestDatabase

Conn = psycopg.Connection[Any]


@pytest.fixture
def op(db: TestDatabase) -> Iterator[JobOperator]:
    operator = JobOperator.connect(db.dsn, max_size=2)
    try:
        yield operator
    finally:
        operator.close()


@pytest.fixture
def job(conn: Conn) -> str:
    register(conn)
    return "j"


def test_launch_lists_and_is_idempotent_per_request_id(op: JobOperator, conn: Conn,
                                                       job: str) -> None:
    first = op.launch(job, {"day": "2026-12-01"}, request_id="r-1")
    assert op.launch(job, {"day": "2026-12-01"}, request_id="r-1") == first
    with pytest.raises(JobExecutionAlreadyRunningError):
        op.launch(job, {"day": "2026-12-01"})  # a fresh request id: a second launch
    other = op.launch(job, {"day": "2026-12-02"})
    listed = op.executions(job)
    assert [(e.execution_id, e.status) for e in listed] == [(other, "STARTING"),
                                                            (first, "STARTING")]
    assert listed[1].params == {"day": {"type": "str", "value": "2026-12-01",
                                        "identifying": True}}
    assert listed[0].duration() is None
    assert op.executions(job, limit=1)[0].execution_id == other
    assert op.executions("other-job") == []
    assert_invariants(conn)


def test_refused_launches_raise_their_own_errors_and_change_nothing(op: JobOperator,
                                                                    conn: Conn,
                                                                    job: str) -> None:
    before = batch_state(conn)
    with pytest.raises(JobNotRegistered):
        op.launch("nobody-registered-this")
    with pytest.raises(InvalidJobParameters):
        op.launch(job, {"n": {"type": "money", "value": 1}})
    with pytest.raises(InvalidArgument):
        op.executions(limit=0)
    for call in (op.restart, op.stop, op.abandon, op.execution, op.steps, op.events):
        with pytest.raises(JobExecutionNotFound):
            call(424242)
    assert batch_state(conn) == before


def test_stop_a_waiting_execution_then_lose_the_race(op: JobOperator, conn: Conn,
                                                     job: str) -> None:
    x = op.launch(job)
    stopped = op.stop(x, request_id="stop-1")
    assert stopped == TransitionResult("stop", x, True, "STOPPED", "stop-1")
    assert op.stop(x, request_id="stop-1") == stopped  # the retry: the first result
    again = op.stop(x)
    assert (again.applied, again.status) == (False, "STOPPED")
    assert len(again.request_id) == 36  # generated
    kinds = [e.kind for e in op.events(x)]
    assert kinds.count("stop") == 1
    assert_invariants(conn)


def test_stop_a_running_execution_asks_its_worker(op: JobOperator, conn: Conn, job: str) -> None:
    x = op.launch(job)
    assert start(conn, claim_item(conn))["status"] == "STARTED"
    result = op.stop(x)
    assert (result.applied, result.status) == (True, "STOPPING")
    detail = op.execution(x)
    assert detail.status == "STOPPING"
    assert detail.stop_requested_at is not None
    assert detail.lease_epoch == 1
    with pytest.raises(JobExecutionAlreadyRunningError):
        op.abandon(x)  # its worker still holds a live lease
    assert_invariants(conn)


def test_restart_and_abandon_follow_the_restart_rules(op: JobOperator, conn: Conn,
                                                      job: str) -> None:
    x = op.launch(job, {"n": 1})
    assert op.stop(x).status == "STOPPED"
    y = op.restart(x, request_id="again")
    assert y != x
    assert op.restart(x, request_id="again") == y
    assert (op.abandon(y).applied, op.execution(y).status) == (False, "STARTING")
    assert op.stop(y).status == "STOPPED"
    abandoned = op.abandon(y)
    assert (abandoned.applied, abandoned.status) == (True, "ABANDONED")
    with pytest.raises(JobRestartError) as err:
        op.restart(y)
    assert err.value.reason == "abandoned"

    z = op.launch(job, {"n": 2})
    assert run_to_end(conn, z) == "COMPLETED"
    with pytest.raises(JobInstanceAlreadyCompleteError):
        op.restart(z)
    assert_invariants(conn)


def test_next_instance_runs_a_job_again(op: JobOperator, conn: Conn, job: str) -> None:
    params = op.next_instance(job, {"day": "2026-12-01"})
    assert params["run_id"] == {"type": "int", "value": 1, "identifying": True}
    x = op.launch(job, params)
    assert run_to_end(conn, x) == "COMPLETED"
    again = op.next_instance(job, {"day": "2026-12-01"})
    assert again["run_id"]["value"] == 2
    y = op.launch(job, again)
    assert op.execution(y).instance_id != op.execution(x).instance_id
    assert_invariants(conn)


def test_history_of_a_completed_execution(op: JobOperator, conn: Conn, job: str) -> None:
    x = op.launch(job)
    assert run_to_end(conn, x, chunks=3) == "COMPLETED"
    detail = op.execution(x)
    assert isinstance(detail, JobExecutionDetail)
    assert (detail.status, detail.exit_code, detail.job) == ("COMPLETED", "COMPLETED", job)
    # run_to_end commits 3 chunks of 10 in each of the two steps
    assert (detail.read_count, detail.write_count, detail.commit_count) == (60, 60, 6)
    assert detail.end_time is not None
    assert detail.duration() == detail.end_time - detail.start_time  # type: ignore[operator]
    steps = op.steps(x)
    assert all(isinstance(s, StepExecutionInfo) for s in steps)
    assert [(s.step_name, s.status, s.chunk_seq) for s in steps] == [
        ("prepare", "COMPLETED", 3), ("load", "COMPLETED", 3)]
    assert steps[1].context == {"done": 30}
    events = op.events(x)
    assert all(isinstance(e, ExecutionEvent) for e in events)
    assert events[0].kind == "launched"
    assert events[-1].to_status == "COMPLETED"


def test_calls_with_conn_run_in_the_callers_transaction(op: JobOperator, db: TestDatabase,
                                                        job: str) -> None:
    with psycopg.connect(db.dsn) as tx:
        x = op.launch(job, conn=tx)
        assert op.execution(x, conn=tx).status == "STARTING"
        tx.rollback()
    assert op.executions(job) == []


def test_the_async_operator_does_the_same(db: TestDatabase, conn: Conn, job: str) -> None:
    async def scenario() -> None:
        op = await AsyncJobOperator.connect(db.dsn, max_size=2)
        try:
            x = await op.launch(job, {"a": 1}, request_id="ar")
            assert await op.launch(job, {"a": 1}, request_id="ar") == x
            stopped = await op.stop(x)
            assert (stopped.applied, stopped.status) == (True, "STOPPED")
            y = await op.restart(x)
            assert (await op.abandon(y)).applied is False
            assert [e.execution_id for e in await op.executions(job)] == [y, x]
            assert (await op.execution(y)).status == "STARTING"
            assert await op.steps(x) == []
            assert [e.kind for e in await op.events(x)] == ["launched", "stop"]
            assert (await op.next_instance(job))["run_id"]["value"] == 1
            with pytest.raises(JobExecutionNotFound):
                await op.stop(99999)
        finally:
            await op.close()

    asyncio.run(scenario())
    assert_invariants(conn)


def _public(cls: type[Any]) -> dict[str, list[str]]:
    return {name: list(inspect.signature(fn).parameters)
            for name, fn in vars(cls).items() if callable(fn) and not name.startswith("_")}


def test_sync_and_async_operators_have_the_same_methods() -> None:
    sync, aio = _public(JobOperator), _public(AsyncJobOperator)
    assert sync == aio
    assert {"launch", "restart", "next_instance", "stop", "abandon", "recover", "cancel",
            "executions", "execution", "steps", "events"} <= set(sync)
    for name in sync:
        if name != "connect":
            assert inspect.iscoroutinefunction(getattr(AsyncJobOperator, name)), name
