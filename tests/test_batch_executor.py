# Test names carry BATCH.md acceptance ids (S5, T21): upper case on purpose.
# ruff: noqa: N802
"""The batch step executor end to end: a real worker runs a tasklet step and a
chunk step of a launched job through the executor seam; a failing chunk step is
restarted from its checkpoint and every item is written exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from pgbatch import IndeterminateWriteError, InvalidJobDefinition, Worker
from pgbatch.batch import (
    BATCH_KIND,
    BatchExecutor,
    ChunkStep,
    ExecutionContext,
    Job,
    RestartAll,
    RestartFrom,
    StepContext,
    TaskletStep,
    register_jobs,
    step_context,
    use_batch,
)
from tests.batch_helpers import assert_invariants, events, execution, steps
from tests.conftest import TestDatabase
from tests.helpers import scalar
from tests.worker_harness import LoopThread, app_on, wait_until

Conn = psycopg.Connection[Any]
ITEMS = 23


def write_out(conn: Conn, items: Sequence[Any]) -> None:
    """The same-database sink: a duplicate item is a unique violation."""
    with conn.cursor() as cur:
        cur.executemany("insert into public.out (item_id) values (%s)", [[i] for i in items])


def launch(conn: Conn, params: dict[str, Any]) -> int:
    return int(scalar(conn, "select pgbatch.launch_job('load-items', %s)", [Jsonb(params)]))


def wait_status(conn: Conn, execution_id: int, status: str) -> None:
    wait_until(lambda: execution(conn, execution_id)["status"] == status, 30,
               f"execution {execution_id} to be {status}")


def test_a_worker_runs_a_tasklet_and_a_chunk_step(db: TestDatabase, conn: Conn) -> None:
    conn.execute("create table public.out (item_id int primary key)")
    prepared = threading.Event()
    fail_at: list[int] = [15]

    def read(start: int) -> Iterable[int]:
        for i in range(start, ITEMS):
            if fail_at and i == fail_at[0]:
                raise RuntimeError(f"item {i} is unreadable")
            yield i

    job = Job("load-items", [TaskletStep("prepare", prepared.set),
                             ChunkStep("load", read, write_out, chunk_size=5)])
    register_jobs(conn, [job])
    first = launch(conn, {"day": "2026-12-01"})
    with app_on(db.dsn) as app, LoopThread() as lt:
        app.register_executor(BATCH_KIND, BatchExecutor([job]))
        assert app.queues() == ["batch"]
        lt.start(Worker(app, concurrency=1, poll_interval=0.2, maintenance=False))
        wait_status(conn, first, "FAILED")
        assert prepared.is_set()
        # three chunks committed before the unreadable item; the fourth rolled back
        load = steps(conn, first)[1]
        assert (load["status"], load["chunk_seq"], load["read_count"]) == ("FAILED", 3, 15)
        assert load["context"] == {"read": 15}
        assert "unreadable" in execution(conn, first)["exit_message"]
        assert scalar(conn, "select count(*) from public.out") == 15

        fail_at.clear()
        second = int(scalar(conn, "select pgbatch.restart_execution(%s)", [first]))
        wait_status(conn, second, "COMPLETED")

    # the restart skipped the completed tasklet and read on from item 15
    assert [(s["step_name"], s["read_count"]) for s in steps(conn, second)] == [("load", 8)]
    written = scalar(conn, "select array_agg(item_id order by item_id) from public.out")
    assert written == list(range(ITEMS))
    assert events(conn, second) == ["launched", "claimed", "step_started", "completed"]
    assert scalar(conn, "select count(*) from pgbatch.job") == 0
    assert_invariants(conn)


class CountingReader:
    """An ItemReader and ItemStream over 1..n with its cursor in the context."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.next = 1
        self.reads = 0

    def open(self, context: ExecutionContext) -> None:
        self.next = int(context.get("next", 1))

    def read(self) -> int | None:
        if self.next > self.n:
            return None
        self.reads += 1
        self.next += 1
        return self.next - 1

    def update(self, context: ExecutionContext) -> None:
        context["next"] = self.next

    def close(self) -> None:
        return None


class OutWriter:
    """An ItemWriter into public.out in the chunk's transaction."""

    def write(self, conn: Conn, items: Sequence[Any]) -> None:
        write_out(conn, items)


def run_job(db: TestDatabase, conn: Conn, job: Job, status: str,
            params: dict[str, Any] | None = None) -> int:
    """Register and launch ``job``, run a worker until the execution is ``status``."""
    register_jobs(conn, [job])
    exec_id = int(scalar(conn, "select pgbatch.launch_job(%s, %s)",
                         [job.name, Jsonb(params or {})]))
    with app_on(db.dsn) as app, LoopThread() as lt:
        use_batch(app, [job], recovery_interval=0.5)
        worker = lt.start(Worker(app, concurrency=1, poll_interval=0.2))
        wait_status(conn, exec_id, status)
        lt.stop(worker)
    return exec_id


def test_S5_request_stop_from_processing_logic_reads_no_extra_chunk(db: TestDatabase,
                                                                   conn: Conn) -> None:
    conn.execute("create table public.out (item_id int primary key)")
    reader = CountingReader(30)

    def process(item: int) -> int | None:
        if item == 7:
            step_context().request_stop()
        return None if item % 10 == 0 else item * 100

    job = Job("stop-self", [ChunkStep("load", reader=lambda: reader, writer=OutWriter(),
                                      processor=process, chunk_size=5)])
    exec_id = run_job(db, conn, job, "STOPPED")
    load = steps(conn, exec_id)[0]
    # chunk 1 (items 1-5) and chunk 2 cut after item 7: nothing after it was read
    assert (load["status"], load["read_count"], load["write_count"], load["commit_count"]) == \
        ("STOPPED", 7, 7, 2)
    assert reader.reads == 7
    assert load["context"] == {"next": 8}
    assert scalar(conn, "select array_agg(item_id order by item_id) from public.out") == \
        [100, 200, 300, 400, 500, 600, 700]
    # a restart reads on from the checkpoint; item 10 is filtered
    reader.reads = 0
    second = int(scalar(conn, "select pgbatch.restart_execution(%s)", [exec_id]))
    with app_on(db.dsn) as app, LoopThread() as lt:
        use_batch(app, [job], recovery_interval=0.5)
        worker = lt.start(Worker(app, concurrency=1, poll_interval=0.2))
        wait_status(conn, second, "COMPLETED")
        lt.stop(worker)
    again = steps(conn, second)[0]
    assert (again["read_count"], again["filter_count"], again["write_count"]) == (23, 3, 20)
    assert scalar(conn, "select count(*) from public.out") == 27
    assert_invariants(conn)


def test_tasklet_steps_see_stops_and_can_stop_themselves(db: TestDatabase, conn: Conn) -> None:
    seen: list[bool] = []
    running = threading.Event()

    def wait_for_stop(ctx: StepContext) -> None:
        running.set()
        wait_until(ctx.stop_requested, 30, "the operator's stop")
        seen.append(True)

    def stop_self(ctx: StepContext) -> None:
        ctx.request_stop()

    job = Job("tasklets", [TaskletStep("wait", wait_for_stop), TaskletStep("more", stop_self)])
    register_jobs(conn, [job])
    exec_id = int(scalar(conn, "select pgbatch.launch_job('tasklets', '{}')"))
    with app_on(db.dsn) as app, LoopThread() as lt:
        use_batch(app, [job], recovery_interval=0.5, poll_interval=0.05)
        worker = lt.start(Worker(app, concurrency=1, poll_interval=0.2), idle=False)
        assert running.wait(30)
        assert scalar(conn, "select applied from pgbatch.stop_execution(%s)", [exec_id])
        wait_status(conn, exec_id, "STOPPED")
        lt.stop(worker)
    assert seen == [True]
    # the tasklet returned normally: the step completed, the stop ends the job before "more"
    assert [(s["step_name"], s["status"]) for s in steps(conn, exec_id)] == [("wait", "COMPLETED")]
    second = int(scalar(conn, "select pgbatch.restart_execution(%s)", [exec_id]))
    with app_on(db.dsn) as app, LoopThread() as lt:
        use_batch(app, [job], recovery_interval=0.5)
        worker = lt.start(Worker(app, concurrency=1, poll_interval=0.2))
        wait_status(conn, second, "STOPPED")
        lt.stop(worker)
    assert [(s["step_name"], s["status"]) for s in steps(conn, second)] == [("more", "STOPPED")]
    assert_invariants(conn)


def test_T21_an_indeterminate_write_makes_the_execution_unknown(db: TestDatabase,
                                                               conn: Conn) -> None:
    class Unsure:
        def write(self, conn: Conn, items: Sequence[Any]) -> None:
            raise IndeterminateWriteError("the remote sink timed out mid-request")

    job = Job("unsure", [ChunkStep("send", reader=lambda: CountingReader(3), writer=Unsure)])
    exec_id = run_job(db, conn, job, "UNKNOWN")
    assert execution(conn, exec_id)["exit_code"] == "UNKNOWN"
    assert steps(conn, exec_id)[0]["status"] == "UNKNOWN"
    assert conn.execute("select * from pgbatch.recover_execution(%s)", [exec_id]).fetchone() == \
        (True, "FAILED")
    assert_invariants(conn)


def test_definitions_are_checked_when_declared() -> None:
    reader, writer = CountingReader(1), OutWriter()
    with pytest.raises(InvalidJobDefinition, match="chunk_size must be a positive integer"):
        ChunkStep("s", reader, writer, chunk_size=0)
    with pytest.raises(InvalidJobDefinition, match="has no such step"):
        Job("j", [ChunkStep("s", reader, writer)], recovery_policy=RestartFrom("t"))
    with pytest.raises(InvalidJobDefinition, match="steps 1 to 1"):
        Job("j", [ChunkStep("s", reader, writer)], recovery_policy=RestartFrom(2))
    with pytest.raises(InvalidJobDefinition, match="only be Fail"):
        Job("j", [ChunkStep("s", reader, writer)], restartable=False, recovery_policy=RestartAll())
    with pytest.raises(InvalidJobDefinition, match="on_shutdown"):
        Job("j", [ChunkStep("s", reader, writer)], on_shutdown="sleep")  # type: ignore[arg-type]
    job = Job("j", [TaskletStep("t", lambda: None), ChunkStep("s", reader, writer)],
              recovery_policy=RestartFrom(2), max_recoveries=0, on_shutdown="stop", version="3")
    d = job.definition()
    assert (d["recovery_policy"], d["max_recoveries"], d["on_shutdown"], d["version"]) == \
        ("RestartFrom:s", 0, "stop", "3")
    assert d["steps"][1]["reader"] == "tests.test_batch_executor.CountingReader"
    assert Job("k", [TaskletStep("t", lambda: None)], restartable=False).definition()[
        "recovery_policy"] == "Fail"
