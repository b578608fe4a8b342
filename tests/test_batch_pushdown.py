"""A SqlReader -> TableWriter chunk step with no processor, on the worker's own
database, runs in the server (pgbatch/batch/pushdown.py): one statement per
chunk. Through real workers: the copy is exact, a stop and a restart resume
from the cursor, the cursor is the one the Python path keeps (a step may switch
between the two), and a SIGKILLed worker process is recovered with every row
written exactly once."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgbatch import Worker
from pgbatch.batch import ChunkStep, Job, SqlReader, TableWriter, register_jobs, use_batch
from pgbatch.batch.faults import set_fault_hook
from tests.batch_helpers import (
    BatchProcs,
    execution,
    invariants_checked,  # noqa: F401 - the fixture of pytestmark
    launch,
    register_etl,
    seed_source,
    sink_counts,
    steps,
    wait_status,
)
from tests.conftest import TestDatabase
from tests.helpers import scalar
from tests.worker_harness import LoopThread, app_on, worker_dsn

pytestmark = pytest.mark.usefixtures("invariants_checked")

Conn = psycopg.Connection[Any]
ROWS = 1234
CHUNK = 100
#: A DSN no reader can connect to: a step that reads with it ran in the server.
NOWHERE = "host=/nonexistent/pgbatch-pushdown dbname=nowhere"
KILLED = -signal.SIGKILL


@pytest.fixture
def tables(conn: Conn) -> None:
    """``src(a int, b text, note)`` keyed by (a, b), and an empty ``dst`` like it."""
    conn.execute("create table public.src (a int not null, b text not null, note text,"
                 " primary key (a, b))")
    conn.execute("insert into public.src select i / 3, 'k' || (i %% 3), 'row ' || i"
                 " from generate_series(1, %s) i", [ROWS])
    conn.execute("create table public.dst (a int, b text, note text, primary key (a, b))")


@pytest.fixture
def hook() -> Iterator[Callable[[Callable[[str, dict[str, Any]], None] | None], None]]:
    """Installs a fault hook for the test; removed at the end."""
    yield set_fault_hook
    set_fault_hook(None)


def copy_job(reader_dsn: str, *, same_database: bool, processor: Any = None,
             query: str = "select a, b, note from public.src where a >= %s",
             table: str = "public.dst", on_conflict: str | None = None,
             params: list[Any] | dict[str, Any] | None = None) -> Job:
    """Job ``copy``: src -> dst, keyset on (a, b), chunks of CHUNK."""
    reader = SqlReader(reader_dsn, query, ["a", "b"], params=[0] if params is None else params,
                       rows="dict", name="src", same_database=same_database)
    writer = TableWriter(table, ["a", "b", "note"], method="insert" if on_conflict else "copy",
                         on_conflict=on_conflict)
    return Job("copy", [ChunkStep("copy", reader=reader, writer=writer, processor=processor,
                                  chunk_size=CHUNK)])


def run_until(db: TestDatabase, conn: Conn, job: Job, execution_id: int, status: str) -> None:
    """Run one in-process worker on ``job`` until the execution is ``status``."""
    with app_on(db.dsn) as app, LoopThread() as lt:
        use_batch(app, [job], recovery_interval=0.5)
        worker = lt.start(Worker(app, concurrency=1, poll_interval=0.2))
        wait_status(conn, execution_id, status)
        lt.stop(worker)


def stop_after_chunk(db: TestDatabase, execution_id: int, seq: int
                     ) -> Callable[[str, dict[str, Any]], None]:
    """A fault hook that asks the execution to stop once chunk ``seq`` committed."""
    def hook(name: str, info: dict[str, Any]) -> None:
        if name == "after_commit_before_ack" and info["seq"] == seq:
            with db.connect() as c:
                c.execute("select pgbatch.stop_execution(%s)", [execution_id])
    return hook


def dst_equals_src(conn: Conn) -> None:
    """dst holds exactly the rows of src (its primary key rules duplicates out)."""
    assert scalar(conn, "select count(*) from public.dst") == ROWS
    assert scalar(conn, "select count(*) from (select * from public.src except"
                        " select * from public.dst) d") == 0


def cursor(a: int, b: str, read: int) -> dict[str, Any]:
    """The checkpoint SqlReader keeps for key (a, b) after ``read`` rows."""
    return {"src": {"after": [{"t": "int", "v": a}, {"t": "str", "v": b}], "read": read}}


def test_a_same_database_copy_runs_in_the_server(db: TestDatabase, conn: Conn,
                                                 tables: None) -> None:
    job = copy_job(NOWHERE, same_database=True)
    register_jobs(conn, [job])
    exec_id = launch(conn, "copy")
    run_until(db, conn, job, exec_id, "COMPLETED")
    dst_equals_src(conn)
    step = steps(conn, exec_id)[0]
    chunks = -(-ROWS // CHUNK)  # the last one is short; the end (0 rows) commits nothing
    assert (step["status"], step["read_count"], step["write_count"], step["filter_count"],
            step["commit_count"]) == ("COMPLETED", ROWS, ROWS, 0, chunks)
    last = conn.execute("select a, b from public.src order by a desc, b desc limit 1").fetchone()
    assert last is not None
    assert step["context"] == cursor(last[0], last[1], ROWS)


def test_with_a_conflict_clause_the_rows_are_counted_before_the_insert(
        db: TestDatabase, conn: Conn, tables: None) -> None:
    conn.execute("insert into public.dst select * from public.src where a < 50")
    already = int(scalar(conn, "select count(*) from public.dst"))
    job = copy_job(NOWHERE, same_database=True, on_conflict="on conflict (a, b) do nothing",
                   query="select a, b, note from public.src where a >= %(low)s",
                   params={"low": 0})
    register_jobs(conn, [job])
    exec_id = launch(conn, "copy")
    run_until(db, conn, job, exec_id, "COMPLETED")
    dst_equals_src(conn)
    step = steps(conn, exec_id)[0]
    assert already > 0
    assert (step["read_count"], step["write_count"]) == (ROWS, ROWS)
    assert step["context"]["src"]["read"] == ROWS


@pytest.mark.parametrize("target", ["public.dst_heap", "public.dst_conflict"])
def test_a_null_key_fails_the_chunk_and_writes_nothing(db: TestDatabase, conn: Conn,
                                                       tables: None, target: str) -> None:
    conn.execute("create table public.dst_heap (a int, b text, note text)")
    conn.execute("create table public.dst_conflict (a int, b text, note text, unique (a, b))")
    job = copy_job(NOWHERE, same_database=True, table=target,
                   query="select a, nullif(b, 'k1') as b, note from public.src where a >= %s",
                   on_conflict="on conflict do nothing" if target.endswith("conflict") else None)
    register_jobs(conn, [job])
    exec_id = launch(conn, "copy")
    run_until(db, conn, job, exec_id, "FAILED")
    step = steps(conn, exec_id)[0]
    assert "is NULL in a row" in step["exit_message"]
    assert (step["commit_count"], step["read_count"]) == (0, 0)
    assert scalar(conn, f"select count(*) from {target}") == 0


def test_a_step_with_a_processor_reads_in_python(db: TestDatabase, conn: Conn,
                                                 tables: None) -> None:
    job = copy_job(NOWHERE, same_database=True, processor=lambda row: row)
    register_jobs(conn, [job])
    exec_id = launch(conn, "copy")
    run_until(db, conn, job, exec_id, "FAILED")  # its reader cannot connect
    assert scalar(conn, "select count(*) from public.dst") == 0


def test_a_stop_then_a_restart_resumes_from_the_cursor(db: TestDatabase, conn: Conn,
                                                       tables: None, hook: Any) -> None:
    job = copy_job(NOWHERE, same_database=True)
    register_jobs(conn, [job])
    exec_id = launch(conn, "copy")
    hook(stop_after_chunk(db, exec_id, 3))
    run_until(db, conn, job, exec_id, "STOPPED")
    hook(None)
    first = steps(conn, exec_id)[0]
    # the stop is read back by the commit of chunk 4
    assert (first["status"], first["read_count"], first["commit_count"]) == \
        ("STOPPED", 4 * CHUNK, 4)
    assert scalar(conn, "select count(*) from public.dst") == 4 * CHUNK
    second = int(scalar(conn, "select pgbatch.restart_execution(%s)", [exec_id]))
    run_until(db, conn, job, second, "COMPLETED")
    dst_equals_src(conn)  # a duplicate would have failed the step on dst's primary key
    assert steps(conn, second)[0]["read_count"] == ROWS - 4 * CHUNK
    assert steps(conn, second)[0]["context"]["src"]["read"] == ROWS


def test_switching_between_python_and_the_server_keeps_the_cursor(
        db: TestDatabase, conn: Conn, tables: None, hook: Any) -> None:
    # the same definition (a reader's fingerprint has no DSN): the Python path reads
    # with a DSN that is not the worker pool's, the server path says same_database
    python = copy_job(worker_dsn(db.dsn) + " application_name=pushdown-test",
                      same_database=False)
    server = copy_job(NOWHERE, same_database=True)
    register_jobs(conn, [python])
    exec_id = launch(conn, "copy")
    runs = [(python, 2), (server, 3), (python, 2)]  # chunk_seq counts per execution
    before = 0
    for job, seq in runs:
        hook(stop_after_chunk(db, exec_id, seq))
        run_until(db, conn, job, exec_id, "STOPPED")
        hook(None)
        step = steps(conn, exec_id)[0]
        committed = scalar(conn, "select count(*) from public.dst")
        assert step["read_count"] == committed - before > 0
        before = committed
        last = conn.execute("select a, b from public.dst order by a desc, b desc limit 1"
                            ).fetchone()
        assert last is not None
        assert step["context"] == cursor(last[0], last[1], committed)
        exec_id = int(scalar(conn, "select pgbatch.restart_execution(%s)", [exec_id]))
    run_until(db, conn, server, exec_id, "COMPLETED")
    dst_equals_src(conn)


@pytest.mark.parametrize("fault", ["after_write_before_commit:2", "after_commit_before_ack:3"])
def test_kill_9_of_a_worker_process_then_recovery_writes_each_row_once(
        db: TestDatabase, conn: Conn, tmp_path: Path, fault: str) -> None:
    items, chunk = 47, 5
    seed_source(conn, items)
    register_etl(conn, chunk_size=chunk, pushdown=True)
    exec_id = launch(conn, "etl")
    with BatchProcs(db.dsn, tmp_path) as procs:
        a = procs.spawn("a", node_id="n1", fault=fault, chunk_size=chunk, pushdown=1)
        assert a.wait_exit(60) == KILLED, a.describe()
        committed = int(steps(conn, exec_id)[0]["read_count"])
        assert scalar(conn, "select count(*) from public.out") == committed
        b = procs.spawn("b", node_id="n1", chunk_size=chunk, pushdown=1)
        x = wait_status(conn, exec_id, "COMPLETED", procs=[b])
        b.stop()
    distinct, most_writes, ext = sink_counts(conn)
    assert (distinct, most_writes, ext) == (items, 1, 0)
    assert x["recovery_count"] == 1
    assert steps(conn, exec_id)[0]["read_count"] == items
    assert execution(conn, exec_id)["lease_owner"] is None
