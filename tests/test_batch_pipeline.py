"""Pipelined chunk commits of a step run in the server (pgbatch/batch/pipeline.py): two
connections take the chunks in turn, chunk N's commit_chunk and COMMIT in flight on one
while chunk N+1's page insert runs on the other. Through real workers: the copy and its
step bookkeeping equal the unpipelined run's and the Python path's; a stop read back at
chunk N leaves exactly N chunks; a backend terminated while its COMMIT is in flight, or
while it holds the next chunk's open transaction, is resolved with every row written once;
a SIGKILLed worker process is recovered with every row once.

Which backend wrote a chunk is recorded by a statement trigger on the target table
(``chunk_log``: its rows vanish with a rolled-back chunk), so the tests see that two
connections took the chunks in turn. A COMMIT is held in flight by a deferred constraint
trigger on the step's checkpoint row that takes a shared advisory lock (the test holds
the exclusive one): the COMMIT then waits in ``pg_stat_activity`` until it is let go or
its backend is terminated.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgbatch import Worker
from pgbatch.batch import Job, register_jobs, use_batch
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
from tests.test_batch_pushdown import CHUNK, NOWHERE, ROWS, copy_job, cursor, dst_equals_src
from tests.worker_harness import LoopThread, app_on, wait_until, worker_dsn

pytestmark = pytest.mark.usefixtures("invariants_checked")

Conn = psycopg.Connection[Any]
Hook = Callable[[str, dict[str, Any]], None]
KILLED = -signal.SIGKILL
CHUNKS = -(-ROWS // CHUNK)  # the last one is short; the end (0 rows) commits nothing
#: The advisory lock a held COMMIT waits for.
HOLD = 4242


@pytest.fixture
def tables(conn: Conn) -> None:
    """``src(a int, b text, note)`` keyed by (a, b), an empty ``dst`` like it, and the
    chunk log of the backends that wrote dst."""
    conn.execute("create table public.src (a int not null, b text not null, note text,"
                 " primary key (a, b))")
    conn.execute("insert into public.src select i / 3, 'k' || (i %% 3), 'row ' || i"
                 " from generate_series(1, %s) i", [ROWS])
    conn.execute("create table public.dst (a int, b text, note text, primary key (a, b))")
    log_writers(conn, "public.dst")


def log_writers(conn: Conn, table: str) -> None:
    """A statement trigger on ``table`` logs (backend pid, rows) of every insert."""
    conn.execute("create table if not exists public.chunk_log (id bigserial primary key,"
                 " pid int not null, n bigint not null)")
    conn.execute("create or replace function public.log_chunk() returns trigger"
                 " language plpgsql security definer set search_path = pg_catalog as $$"
                 " begin insert into public.chunk_log (pid, n)"
                 " select pg_backend_pid(), count(*) from new_rows; return null; end $$")
    conn.execute(f"create trigger log_chunk after insert on {table} referencing new table"
                 " as new_rows for each statement execute function public.log_chunk()")


def writers(conn: Conn) -> list[int]:
    """The pids of the backends whose chunk inserts committed, in chunk order."""
    return [int(r[0]) for r in conn.execute(
        "select pid from public.chunk_log where n > 0 order by id").fetchall()]


def alternating(pids: list[int]) -> bool:
    """Whether two backends took the chunks in turn."""
    return len(set(pids)) == 2 and all(a != b for a, b in pairwise(pids))


@pytest.fixture
def hook() -> Iterator[Callable[[Hook | None], None]]:
    """Installs a fault hook for the test; removed at the end."""
    yield set_fault_hook
    set_fault_hook(None)


def run_until(db: TestDatabase, conn: Conn, job: Job, execution_id: int, status: str, *,
              pipeline: bool = True, server_loop: bool = False) -> None:
    """Run one in-process worker (concurrency 1) on ``job`` until the execution is ``status``
    (the worker sends each chunk: no chunk loop in the database unless ``server_loop``)."""
    with app_on(db.dsn) as app, LoopThread() as lt:
        use_batch(app, [job], recovery_interval=0.5, pipeline=pipeline, server_loop=server_loop)
        worker = lt.start(Worker(app, concurrency=1, poll_interval=0.2))
        wait_status(conn, execution_id, status)
        lt.stop(worker)


def bookkeeping(conn: Conn, execution_id: int) -> tuple[Any, ...]:
    """The step's status, counters, commit count, chunk count and checkpoint."""
    s = steps(conn, execution_id)[0]
    return (s["status"], s["read_count"], s["write_count"], s["filter_count"],
            s["commit_count"], s["chunk_seq"], s["context"])


def test_a_pipelined_run_equals_the_unpipelined_run_and_the_python_path(
        db: TestDatabase, conn: Conn, tables: None) -> None:
    server = copy_job(NOWHERE, same_database=True)
    python = copy_job(worker_dsn(db.dsn) + " application_name=pipeline-test",
                      same_database=False, processor=lambda row: row)
    register_jobs(conn, [server])
    seen: dict[str, tuple[Any, ...]] = {}
    for run, job, pipeline in (("pipelined", server, True), ("one by one", server, False),
                               ("python", python, True)):
        conn.execute("truncate public.dst, public.chunk_log")
        register_jobs(conn, [job])  # the definition the worker runs (a processor or not)
        exec_id = launch(conn, "copy", {"run": run})
        run_until(db, conn, job, exec_id, "COMPLETED", pipeline=pipeline)
        dst_equals_src(conn)
        seen[run] = bookkeeping(conn, exec_id)
        pids = writers(conn)
        assert len(pids) == CHUNKS, run
        if run == "pipelined":
            assert alternating(pids), pids
    last = conn.execute("select a, b from public.src order by a desc, b desc limit 1").fetchone()
    assert last is not None
    expected = ("COMPLETED", ROWS, ROWS, 0, CHUNKS, CHUNKS, cursor(last[0], last[1], ROWS))
    assert seen == {"pipelined": expected, "one by one": expected, "python": expected}


@pytest.mark.parametrize("ask", ["stop", "pause"])
def test_a_stop_or_pause_read_back_at_chunk_n_leaves_exactly_n_chunks(
        db: TestDatabase, conn: Conn, tables: None, hook: Any, ask: str) -> None:
    job = copy_job(NOWHERE, same_database=True)
    register_jobs(conn, [job])
    exec_id = launch(conn, "copy")

    def asks(name: str, info: dict[str, Any]) -> None:
        # asked once chunk 3 committed (chunk 4's insert is open on the other connection):
        # chunk 4's commit reads it back, and chunk 5's open transaction is rolled back
        if name == "after_commit_before_ack" and info["seq"] == 3:
            with db.connect() as c:
                c.execute(f"select pgbatch.{ask}_execution(%s)", [exec_id])

    hook(asks)
    run_until(db, conn, job, exec_id, "STOPPED" if ask == "stop" else "PAUSED")
    hook(None)
    status, read, written, _, commits, seq, context = bookkeeping(conn, exec_id)
    assert (read, written, commits, seq) == (4 * CHUNK, 4 * CHUNK, 4, 4)
    assert scalar(conn, "select count(*) from public.dst") == 4 * CHUNK
    assert scalar(conn, "select count(*) from public.chunk_log") == 4
    assert alternating(writers(conn))
    assert context["src"]["read"] == 4 * CHUNK
    if ask == "stop":
        assert status == "STOPPED"
        exec_id = int(scalar(conn, "select pgbatch.restart_execution(%s)", [exec_id]))
    else:
        conn.execute("select pgbatch.resume_execution(%s)", [exec_id])
    run_until(db, conn, job, exec_id, "COMPLETED")
    dst_equals_src(conn)  # a duplicate would have failed the step on dst's primary key
    assert max(s["context"]["src"]["read"] for s in steps(conn, exec_id)) == ROWS


def hold_commits(conn: Conn) -> None:
    """A COMMIT that changes the step's checkpoint waits while HOLD is held exclusively."""
    conn.execute("create or replace function public.hold_commit() returns trigger"
                 " language plpgsql as $$ begin perform pg_advisory_xact_lock_shared("
                 f"{HOLD}); return null; end $$")
    conn.execute("create constraint trigger hold_commit after update on"
                 " pgbatch.step_execution_context deferrable initially deferred"
                 " for each row execute function public.hold_commit()")


def backend(conn: Conn, where: str) -> int:
    """The pid of the one other backend of this database matching ``where``."""
    def find() -> int | None:
        rows = conn.execute("select pid from pg_stat_activity where datname ="
                            " current_database() and pid <> pg_backend_pid() and " + where
                            ).fetchall()
        return int(rows[0][0]) if len(rows) == 1 else None

    pid = wait_until(find, 30, f"a backend with {where}")
    assert pid is not None
    return pid


@pytest.mark.parametrize("victim", ["commit_in_flight", "open_insert"])
def test_a_terminated_backend_is_resolved_and_every_row_is_written_once(
        db: TestDatabase, conn: Conn, tables: None, hook: Any, victim: str,
        caplog: pytest.LogCaptureFixture) -> None:
    hold_commits(conn)
    job = copy_job(NOWHERE, same_database=True)
    register_jobs(conn, [job])
    exec_id = launch(conn, "copy")
    holder = db.connect()
    held = threading.Event()

    def hold(name: str, info: dict[str, Any]) -> None:
        # once 3 chunks committed: the next COMMIT (the 4th chunk's) waits for HOLD
        if name == "after_commit_before_ack" and info["seq"] == 3 and not held.is_set():
            holder.execute("select pg_advisory_lock(%s)", [HOLD])
            held.set()

    hook(hold)
    with app_on(db.dsn) as app, LoopThread() as lt:
        use_batch(app, [job], recovery_interval=0.5)
        worker = lt.start(Worker(app, concurrency=1, poll_interval=0.2), idle=False)
        committing = backend(conn, "query = 'commit' and wait_event_type = 'Lock'"
                                   " and wait_event = 'advisory'")
        # the 5th chunk's insert ran on the other connection meanwhile: its transaction
        # is open
        inserting = backend(conn, "state = 'idle in transaction' and query like"
                                  " '%_pgbatch_write%'")
        assert committing != inserting
        assert steps(conn, exec_id)[0]["chunk_seq"] == 3
        pid = committing if victim == "commit_in_flight" else inserting
        assert scalar(conn, "select pg_terminate_backend(%s)", [pid]) is True
        if victim == "commit_in_flight":
            # the run asks the database whether the 4th chunk committed (a rolled-back
            # probe), then writes it again: its COMMIT waits for HOLD too
            wait_until(lambda: int(scalar(conn, "select count(*) from pg_stat_activity where"
                                              " pid = %s", [pid])) == 0, 30, "the backend gone")
        holder.execute("select pg_advisory_unlock(%s)", [HOLD])
        hook(None)
        wait_status(conn, exec_id, "COMPLETED")
        lt.stop(worker)
    lost = [r.getMessage() for r in caplog.records
            if "pipelined in the server: connection lost" in r.getMessage()]
    # the commit in flight was the 4th chunk's in both cases: when its backend was
    # terminated its outcome was asked; else the 5th chunk's commit found its own lost
    assert len(lost) == 1, lost
    assert lost[0].startswith("chunk 3 " if victim == "commit_in_flight" else "chunk 4 ")
    assert lost[0].endswith("checking whether it committed")
    dst_equals_src(conn)  # every row once (dst's primary key fails a duplicate)
    status, read, written, _, commits, seq, context = bookkeeping(conn, exec_id)
    assert (status, read, written, commits, seq) == ("COMPLETED", ROWS, ROWS, CHUNKS, CHUNKS)
    assert context["src"]["read"] == ROWS
    assert len(writers(conn)) == CHUNKS  # every committed insert is one chunk's


@pytest.mark.parametrize("fault", ["after_write_before_commit:3", "after_commit_before_ack:4"])
def test_kill_9_of_a_pipelining_worker_process_then_recovery_writes_each_row_once(
        db: TestDatabase, conn: Conn, tmp_path: Path, fault: str) -> None:
    items, chunk = 97, 5
    seed_source(conn, items)
    log_writers(conn, "public.out")
    register_etl(conn, chunk_size=chunk, pushdown=True)
    exec_id = launch(conn, "etl")
    with BatchProcs(db.dsn, tmp_path) as procs:
        a = procs.spawn("a", node_id="n1", fault=fault, chunk_size=chunk, pushdown=1,
                        server_loop=0)
        assert a.wait_exit(60) == KILLED, a.describe()
        committed = int(steps(conn, exec_id)[0]["read_count"])
        assert scalar(conn, "select count(*) from public.out") == committed
        assert committed >= 2 * chunk
        assert alternating(writers(conn))  # process a pipelined its chunks
        b = procs.spawn("b", node_id="n1", chunk_size=chunk, pushdown=1,
                        server_loop=0)
        x = wait_status(conn, exec_id, "COMPLETED", procs=[b])
        b.stop()
    distinct, most_writes, ext = sink_counts(conn)
    assert (distinct, most_writes, ext) == (items, 1, 0)
    assert x["recovery_count"] == 1
    assert steps(conn, exec_id)[0]["read_count"] == items
    assert execution(conn, exec_id)["lease_owner"] is None


def test_a_reader_that_reads_the_writers_table_commits_one_by_one(
        db: TestDatabase, conn: Conn, tables: None, caplog: pytest.LogCaptureFixture) -> None:
    # the next chunk's insert would run before the chunk before commits: its snapshot
    # would not see that chunk's rows, so such a step is not pipelined
    job = copy_job(NOWHERE, same_database=True,
                   query="select s.a, s.b, s.note from public.src s left join public.dst d"
                         " using (a, b) where d.a is null and s.a >= %s")
    register_jobs(conn, [job])
    exec_id = launch(conn, "copy")
    caplog.set_level(logging.INFO, logger="pgbatch.batch")
    run_until(db, conn, job, exec_id, "COMPLETED")
    dst_equals_src(conn)
    assert bookkeeping(conn, exec_id)[:6] == ("COMPLETED", ROWS, ROWS, 0, CHUNKS, CHUNKS)
    assert any("chunks committed one by one (the reader's query may read the writer's table)"
               in r.getMessage() for r in caplog.records)
