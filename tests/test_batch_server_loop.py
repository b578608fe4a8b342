"""The chunk loop of a step run in the server, in the database (pgbatch/batch/server_loop.py,
``pgbatch.run_server_chunks``): one CALL commits chunk after chunk, each its own durable
commit. Through real workers: the copy and its bookkeeping equal those of the worker's own
chunk loop, and every chunk was written inside the CALL; an operator's stop or pause read
back at chunk N leaves exactly N chunks; a backend terminated in the middle of a call is
resolved from the committed checkpoint with every row written once; a SIGKILLed worker's
backend ends by itself (it does not keep committing) and recovery writes each row once; a
SIGSTOPped one, once another node took its execution over, changes nothing when it comes
back; a server restarted in the middle of a call (``pg_ctl restart -m immediate``) loses
the chunk in progress only, and the worker goes on with its claim.
Bad input to the procedure is refused.

A chunk is held in the middle of its insert by a statement trigger on the target table that
takes a shared advisory lock when the number of committed chunks is the one in ``hold_at``
(the test holds the exclusive lock): the backend then waits in ``pg_stat_activity``.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgbatch.batch import Job, register_jobs
from tests.batch_helpers import (
    BatchProcs,
    event_count,
    execution,
    invariants_checked,  # noqa: F401 - the fixture of pytestmark
    launch,
    register_etl,
    seed_source,
    sink_counts,
    steps,
    wait_status,
)
from tests.conftest import PgTestServer, TestDatabase
from tests.helpers import scalar
from tests.test_batch_pipeline import (
    CHUNKS,
    backend,
    bookkeeping,
    run_until,
    tables,  # noqa: F401 - a fixture
)
from tests.test_batch_pushdown import CHUNK, NOWHERE, ROWS, copy_job, cursor, dst_equals_src
from tests.worker_harness import wait_until

pytestmark = pytest.mark.usefixtures("invariants_checked")

Conn = psycopg.Connection[Any]
KILLED = -signal.SIGKILL
#: The advisory lock a held chunk waits for.
HOLD = 4243
IN_CALL = "query like 'call pgbatch.run_server_chunks(%'"


def log_chunks(conn: Conn, table: str) -> None:
    """A statement trigger on ``table`` logs each insert: the backend, the rows, whether
    it ran inside ``run_server_chunks``; and waits on HOLD at the chunk in ``hold_at``."""
    conn.execute("create table if not exists public.loop_log (id bigserial primary key,"
                 " pid int not null, n bigint not null, in_call boolean not null)")
    conn.execute("create table if not exists public.hold_at (k bigint not null)")
    conn.execute("create or replace function public.hold_chunk() returns trigger"
                 " language plpgsql as $$ begin"
                 " if exists (select from public.hold_at h where h.k ="
                 " (select count(*) from public.loop_log l where l.n > 0)) then"
                 f" perform pg_advisory_xact_lock_shared({HOLD}); end if;"
                 " return null; end $$")
    conn.execute("create or replace function public.loop_chunk() returns trigger"
                 " language plpgsql as $$ begin"
                 " insert into public.loop_log (pid, n, in_call)"
                 " select pg_backend_pid(), count(*), (select a.query from pg_stat_activity a"
                 " where a.pid = pg_backend_pid()) like 'call pgbatch.run_server_chunks(%'"
                 " from new_rows; return null; end $$")
    # the hold at the start of the insert (before the statement's commit_chunk), the log
    # at its end
    conn.execute(f"create trigger hold_chunk before insert on {table}"
                 " for each statement execute function public.hold_chunk()")
    conn.execute(f"create trigger loop_chunk after insert on {table} referencing new table"
                 " as new_rows for each statement execute function public.loop_chunk()")


def logged(conn: Conn) -> list[tuple[int, bool]]:
    """(pid, in_call) of each committed chunk insert, in chunk order."""
    return [(int(r[0]), bool(r[1])) for r in conn.execute(
        "select pid, in_call from public.loop_log where n > 0 order by id").fetchall()]


def held_backend(conn: Conn) -> int:
    """The pid of the backend waiting on HOLD in a chunk's insert."""
    return backend(conn, "wait_event_type = 'Lock' and wait_event = 'advisory' and " + IN_CALL)


@pytest.mark.usefixtures("tables")
def test_the_loop_in_the_database_equals_the_workers_loop(
        db: TestDatabase, conn: Conn) -> None:
    log_chunks(conn, "public.dst")
    job = copy_job(NOWHERE, same_database=True)
    register_jobs(conn, [job])
    seen: dict[str, tuple[Any, ...]] = {}
    for run, server_loop in (("in the database", True), ("from the worker", False)):
        conn.execute("truncate public.dst, public.loop_log")
        exec_id = launch(conn, "copy", {"run": run})
        run_until(db, conn, job, exec_id, "COMPLETED", server_loop=server_loop)
        dst_equals_src(conn)
        seen[run] = bookkeeping(conn, exec_id)
        chunks = logged(conn)
        assert len(chunks) == CHUNKS, run
        assert all(in_call for _, in_call in chunks) == server_loop, (run, chunks)
        assert any(in_call for _, in_call in chunks) == server_loop, (run, chunks)
    last = conn.execute("select a, b from public.src order by a desc, b desc limit 1").fetchone()
    assert last is not None
    expected = ("COMPLETED", ROWS, ROWS, 0, CHUNKS, CHUNKS, cursor(last[0], last[1], ROWS))
    assert seen == {"in the database": expected, "from the worker": expected}


def run_in_thread(db: TestDatabase, job: Job, execution_id: int,
                  status: str) -> threading.Thread:
    """``run_until`` (the loop in the database) on a thread of its own, its own connection."""
    done = threading.Thread(target=run_until, args=(db, db.connect(), job, execution_id, status),
                            kwargs={"server_loop": True})
    done.start()
    return done


def hold(db: TestDatabase, conn: Conn, k: int) -> psycopg.Connection[Any]:
    """Hold the chunk after ``k`` committed ones in its insert; the holding connection."""
    conn.execute("insert into public.hold_at values (%s)", [k])
    holder = db.connect()
    holder.execute("select pg_advisory_lock(%s)", [HOLD])
    return holder


@pytest.mark.usefixtures("tables")
@pytest.mark.parametrize("ask", ["stop", "pause"])
def test_a_stop_or_pause_read_back_inside_the_loop_leaves_exactly_n_chunks(
        db: TestDatabase, conn: Conn, ask: str) -> None:
    log_chunks(conn, "public.dst")
    job = copy_job(NOWHERE, same_database=True)
    register_jobs(conn, [job])
    exec_id = launch(conn, "copy")
    holder = hold(db, conn, 3)
    status = "STOPPED" if ask == "stop" else "PAUSED"
    try:
        done = run_in_thread(db, job, exec_id, status)
        held_backend(conn)  # chunk 4 is in its insert, inside the call
        conn.execute(f"select pgbatch.{ask}_execution(%s)", [exec_id])
        holder.execute("select pg_advisory_unlock(%s)", [HOLD])
        done.join(60)
        assert not done.is_alive()
    finally:
        holder.close()
    # chunk 4's commit read the request back: the call ended there, no chunk 5
    state, read, written, _, commits, seq, context = bookkeeping(conn, exec_id)
    assert (state, read, written, commits, seq) == ("STOPPED" if ask == "stop" else "PAUSED",
                                                    4 * CHUNK, 4 * CHUNK, 4, 4)
    assert scalar(conn, "select count(*) from public.dst") == 4 * CHUNK
    assert [in_call for _, in_call in logged(conn)] == [True] * 4
    assert context["src"]["read"] == 4 * CHUNK
    if ask == "stop":
        exec_id = int(scalar(conn, "select pgbatch.restart_execution(%s)", [exec_id]))
    else:
        conn.execute("select pgbatch.resume_execution(%s)", [exec_id])
    conn.execute("delete from public.hold_at")
    run_until(db, conn, job, exec_id, "COMPLETED", server_loop=True)
    dst_equals_src(conn)
    assert max(s["context"]["src"]["read"] for s in steps(conn, exec_id)) == ROWS


@pytest.mark.usefixtures("tables")
def test_a_backend_terminated_in_the_middle_of_a_call_continues_from_the_checkpoint(
        db: TestDatabase, conn: Conn, caplog: pytest.LogCaptureFixture) -> None:
    log_chunks(conn, "public.dst")
    job = copy_job(NOWHERE, same_database=True)
    register_jobs(conn, [job])
    exec_id = launch(conn, "copy")
    holder = hold(db, conn, 5)
    caplog.set_level(logging.WARNING, logger="pgbatch.batch")
    try:
        done = run_in_thread(db, job, exec_id, "COMPLETED")
        pid = held_backend(conn)
        conn.execute("select pg_terminate_backend(%s, 5000)", [pid])
        conn.execute("delete from public.hold_at")
        holder.execute("select pg_advisory_unlock(%s)", [HOLD])
        done.join(60)
        assert not done.is_alive()
    finally:
        holder.close()
    dst_equals_src(conn)  # a chunk written twice would have failed on dst's primary key
    chunks = logged(conn)
    assert len(chunks) == CHUNKS
    assert all(in_call for _, in_call in chunks)
    assert [p for p, _ in chunks[:5]] == [pid] * 5  # five chunks committed before the end
    assert pid not in {p for p, _ in chunks[5:]}
    s = steps(conn, exec_id)[0]
    assert (s["status"], s["read_count"], s["commit_count"]) == ("COMPLETED", ROWS, CHUNKS)
    assert any("chunk loop in the server: connection lost" in r.getMessage()
               for r in caplog.records)


#: The ETL job of the worker-process tests: items and chunk size (its steps run in the server).
ITEMS, ETL_CHUNK = 97, 5


def launch_held_etl(db: TestDatabase, conn: Conn) -> tuple[int, psycopg.Connection[Any]]:
    """Launch batch_worker_proc's ETL job (run in the server) with its fifth chunk held in its
    insert; the execution id and the holding connection."""
    seed_source(conn, ITEMS)
    log_chunks(conn, "public.out")
    register_etl(conn, chunk_size=ETL_CHUNK, pushdown=True)
    return launch(conn, "etl"), hold(db, conn, 4)


def test_kill_9_of_a_worker_in_a_call_ends_its_backend_and_recovery_writes_each_row_once(
        db: TestDatabase, conn: Conn, tmp_path: Path) -> None:
    items, chunk = ITEMS, ETL_CHUNK
    exec_id, holder = launch_held_etl(db, conn)
    try:
        with BatchProcs(db.dsn, tmp_path) as procs:
            a = procs.spawn("a", node_id="n1", chunk_size=chunk, pushdown=1)
            pid = held_backend(conn)
            a.signal(signal.SIGKILL)
            assert a.wait_exit(60) == KILLED, a.describe()
            # still held: its backend notices its client is gone and ends, chunk 5 uncommitted
            wait_until(lambda: scalar(conn, "select count(*) from pg_stat_activity"
                                      " where pid = %s", [pid]) == 0, 30,
                       "the backend of the killed worker to end")
            holder.execute("select pg_advisory_unlock(%s)", [HOLD])
            assert steps(conn, exec_id)[0]["commit_count"] == 4
            assert scalar(conn, "select count(*) from public.out") == 4 * chunk
            conn.execute("delete from public.hold_at")
            b = procs.spawn("b", node_id="n1", chunk_size=chunk, pushdown=1)
            x = wait_status(conn, exec_id, "COMPLETED", procs=[b])
            b.stop()
    finally:
        holder.close()
    distinct, most_writes, ext = sink_counts(conn)
    assert (distinct, most_writes, ext) == (items, 1, 0)
    assert x["recovery_count"] == 1
    assert steps(conn, exec_id)[0]["read_count"] == items
    assert execution(conn, exec_id)["lease_owner"] is None


def test_a_postgres_restart_in_the_middle_of_a_call_then_the_step_completes_once(
        db: TestDatabase, conn: Conn, tmp_path: Path, pg_server: PgTestServer) -> None:
    items, chunk = ITEMS, ETL_CHUNK
    exec_id, holder = launch_held_etl(db, conn)  # its lock ends with the server
    with BatchProcs(db.dsn, tmp_path) as procs:
        w = procs.spawn("w", node_id="w", chunk_size=chunk, pushdown=1)
        held_backend(conn)
        conn.close()
        pg_server.restart("immediate")
        holder.close()
        conn = db.connect()
        wait_status(conn, exec_id, "COMPLETED", timeout=120, procs=[w])
        w.stop(60)
    assert sink_counts(conn)[:2] == (items, 1), "every item exactly once"
    s = steps(conn, exec_id)[0]
    assert (s["read_count"], s["commit_count"]) == (items, -(-items // chunk))
    assert all(in_call for _, in_call in logged(conn))
    # shorter than the lease: the worker went on with its claim, nothing was recovered
    assert event_count(conn, exec_id, "recovered") == 0


def test_a_sigstopped_worker_in_a_call_is_fenced_when_it_comes_back(
        db: TestDatabase, conn: Conn, tmp_path: Path) -> None:
    items, chunk = ITEMS, ETL_CHUNK
    exec_id, holder = launch_held_etl(db, conn)
    try:
        with BatchProcs(db.dsn, tmp_path) as procs:
            a = procs.spawn("a", node_id="a", lease=2, chunk_size=chunk, pushdown=1)
            pid = held_backend(conn)
            a.signal(signal.SIGSTOP)
            epoch = execution(conn, exec_id)["lease_epoch"]
            conn.execute("delete from public.hold_at")
            holder.execute("select pg_advisory_unlock(%s)", [HOLD])
            # the call ends (its time is up, or the input) and its backend waits for the
            # frozen worker: nothing extends the lease any more
            wait_until(lambda: scalar(conn, "select state from pg_stat_activity where pid = %s",
                                      [pid]) == "idle", 30, "the frozen worker's call to end")
            b = procs.spawn("b", node_id="b", lease=2, chunk_size=chunk, pushdown=1)
            x = wait_status(conn, exec_id, "COMPLETED", procs=[b])
            assert x["lease_epoch"] == epoch + 1
            b.stop()
            before = (sink_counts(conn), steps(conn, exec_id), execution(conn, exec_id))
            a.signal(signal.SIGCONT)
            wait_until(lambda: "lost claim" in a.stderr_path.read_text(), 60,
                       "the zombie to find its claim lost")
            a.stop()
    finally:
        holder.close()
    after = (sink_counts(conn), steps(conn, exec_id), execution(conn, exec_id))
    assert after == before, "the zombie changed nothing"
    assert sink_counts(conn)[:2] == (items, 1)


@pytest.mark.usefixtures("tables")
def test_without_the_procedure_the_worker_sends_the_chunks(
        db: TestDatabase, conn: Conn, caplog: pytest.LogCaptureFixture) -> None:
    # a database not migrated to 0028_server_chunks yet
    conn.execute("drop procedure pgbatch.run_server_chunks")
    log_chunks(conn, "public.dst")
    job = copy_job(NOWHERE, same_database=True)
    register_jobs(conn, [job])
    exec_id = launch(conn, "copy")
    caplog.set_level(logging.WARNING, logger="pgbatch.batch")
    run_until(db, conn, job, exec_id, "COMPLETED", server_loop=True)
    dst_equals_src(conn)
    chunks = logged(conn)
    assert len(chunks) == CHUNKS
    assert not any(in_call for _, in_call in chunks)
    assert bookkeeping(conn, exec_id)[:6] == ("COMPLETED", ROWS, ROWS, 0, CHUNKS, CHUNKS)
    said = [r.getMessage() for r in caplog.records if "no pgbatch.run_server_chunks" in
            r.getMessage()]
    assert len(said) == 1, said


def test_bad_input_to_the_procedure_is_refused(conn: Conn) -> None:
    call = "call pgbatch.run_server_chunks(null, 'select 1', %s::jsonb, %s::bigint, %s)"
    for context, seq, seconds, what in (("{}", 0, 0.0, "max_seconds"),
                                        ("{}", 0, 7200.0, "max_seconds"),
                                        ("[]", 0, 1.0, "context object"),
                                        ("{}", -1, 1.0, "chunk_seq")):
        with pytest.raises(psycopg.Error) as err:
            conn.execute(call, [context, seq, seconds])
        assert err.value.sqlstate is not None
        assert what in str(err.value), err.value
        assert err.value.diag.message_primary is not None
    # it commits: inside a transaction block it cannot run its first chunk's commit
    with pytest.raises(psycopg.Error), conn.transaction():
        conn.execute("call pgbatch.run_server_chunks(null, 'select 1::bigint, 0::bigint,"
                     " ''{}''::jsonb, 1::bigint, true, ''STARTED''::text, false, false',"
                     " '{}'::jsonb, 0::bigint, 1)")
