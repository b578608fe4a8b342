# Test names carry BATCH.md acceptance ids (P3, P4, ...): upper case on purpose.
# ruff: noqa: N802
"""The pause and resume SQL functions, driven by a fake worker: the history after
1000 cycles (P3), concurrent resumes (P4), resume against stop (P5), timed
resumes with three sweepers (P8), a definition change while paused (P9) and
bad input."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tests.batch_helpers import (
    assert_invariants,
    batch_state,
    claim_item,
    commit_chunk,
    end_step,
    event_count,
    execution,
    launch,
    register,
    start,
    start_step,
    steps,
)
from tests.conftest import TestDatabase
from tests.helpers import db_now, raises_sqlstate, run_threads, scalar, set_clock
from tests.pause_sql import ONE_STEP, park, pause, resume, run_and_park, setup

Conn = psycopg.Connection[Any]


def paused_execution(conn: Conn, params: Any = None) -> int:
    """A launched execution, run for one chunk (items 1..3 written) and parked."""
    exec_id = launch(conn, "j", params)
    run_and_park(conn, [*range(1, 4)] if params is None else [])
    return exec_id


def counts(conn: Conn) -> tuple[int, int]:
    return (int(scalar(conn, "select count(*) from pgbatch.job_execution")),
            int(scalar(conn, "select count(*) from pgbatch.step_execution")))


def test_P3_history_after_1000_pause_resume_cycles(conn: Conn) -> None:
    setup(conn)
    exec_id = launch(conn)
    step_ids = set()
    for cycle in range(1000):
        item = run_and_park(conn, [cycle + 1])
        assert item.execution_id == exec_id
        step_ids.add(steps(conn, exec_id)[0]["id"])
        assert resume(conn, exec_id) == (True, "STARTING")
    item = claim_item(conn)
    start(conn, item)
    s = start_step(conn, item)
    assert end_step(conn, item, s["step_execution_id"])["job_status"] == "COMPLETED"
    x = execution(conn, exec_id)
    assert (x["status"], x["resume_count"]) == ("COMPLETED", 1000)
    assert counts(conn) == (1, 1)
    assert len(step_ids) == 1
    (load,) = steps(conn, exec_id)
    assert (load["id"], load["read_count"], load["chunk_seq"]) == (s["step_execution_id"], 1000,
                                                                    1000)
    assert event_count(conn, exec_id, "paused") == 1000
    assert event_count(conn, exec_id, "resumed") == 1000
    # besides the two events of each cycle: launched, a claim per run, the first
    # step_started and completed
    assert scalar(conn, "select count(*) from pgbatch.execution_event") == 2000 + 1001 + 3
    assert scalar(conn, "select count(*), count(distinct item_id) from public.out") == 1000
    assert scalar(conn, "select count(*) from pgbatch.job") == 0
    assert_invariants(conn)


def test_P4_concurrent_resumes_lock_interleaved(db: TestDatabase) -> None:
    with db.connect() as c:
        setup(c)
        exec_id = paused_execution(c)
        before = counts(c)
    holder = db.connect()
    holder.autocommit = False
    holder.execute("select 1 from pgbatch.job_execution where id = %s for update", [exec_id])
    results: list[tuple[bool, str]] = []

    def one(i: int) -> None:
        with db.connect() as c:
            c.execute("select set_config('application_name', %s, false)", [f"resume-{i}"])
            results.append(resume(c, exec_id))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    with db.connect() as watch:
        deadline = time.monotonic() + 60
        while scalar(watch, "select count(*) from pg_stat_activity where application_name"
                            " like 'resume-%%' and wait_event_type = 'Lock'") < 8:
            assert time.monotonic() < deadline, "the resumes never all waited on the lock"
            time.sleep(0.02)
    holder.rollback()
    holder.close()
    for t in threads:
        t.join(60)
    assert sorted(results) == [(False, "STARTING")] * 7 + [(True, "STARTING")]
    with db.connect() as c:
        assert event_count(c, exec_id, "resumed") == 1
        assert counts(c) == before
        assert execution(c, exec_id)["resume_count"] == 1
        assert scalar(c, "select count(*) from pgbatch.job where state = 'pending'") == 1
        assert_invariants(c)


def test_P4_concurrent_resumes_32_way(db: TestDatabase) -> None:
    with db.connect() as c:
        setup(c)
        exec_id = paused_execution(c)
        before = counts(c)
    barrier = threading.Barrier(32)
    results: list[tuple[bool, str]] = []

    def one() -> None:
        with db.connect() as c:
            barrier.wait()
            results.append(resume(c, exec_id))

    run_threads([one] * 32)
    assert [r for r in results if r[0]] == [(True, "STARTING")]
    assert sorted(r for r in results if not r[0]) == [(False, "STARTING")] * 31
    with db.connect() as c:
        assert event_count(c, exec_id, "resumed") == 1
        assert counts(c) == before
        assert scalar(c, "select count(*) from pgbatch.job where state = 'pending'") == 1
        assert_invariants(c)


def test_P5_resume_against_stop(db: TestDatabase) -> None:
    with db.connect() as c:
        setup(c)
        ids = [launch(c, "j", {"n": i}) for i in range(12)]
        for exec_id in ids:
            assert pause(c, exec_id) == (True, "PAUSED")  # T11: not claimed yet
    for exec_id in ids:
        barrier = threading.Barrier(2)
        out: dict[str, tuple[bool, str]] = {}

        def do_resume(exec_id: int = exec_id, barrier: threading.Barrier = barrier,
                      out: dict[str, tuple[bool, str]] = out) -> None:
            with db.connect() as c:
                barrier.wait()
                out["resume"] = resume(c, exec_id)

        def do_stop(exec_id: int = exec_id, barrier: threading.Barrier = barrier,
                    out: dict[str, tuple[bool, str]] = out) -> None:
            with db.connect() as c:
                barrier.wait()
                row = c.execute("select * from pgbatch.stop_execution(%s)", [exec_id]).fetchone()
                assert row is not None
                out["stop"] = (bool(row[0]), str(row[1]))

        run_threads([do_resume, do_stop])
        with db.connect() as c:
            x = execution(c, exec_id)
            # the stop always applies (a STARTING or a PAUSED execution stops at once); the
            # resume wins only when it came first, and then the stop ended the resumed run
            assert out["stop"] == (True, "STOPPED")
            assert x["status"] == "STOPPED"
            if out["resume"][0]:
                assert out["resume"] == (True, "STARTING")
                assert x["resume_count"] == 1
            else:
                assert out["resume"] == (False, "STOPPED")
                assert x["resume_count"] == 0
            assert event_count(c, exec_id, "resumed") == x["resume_count"]
    with db.connect() as c:
        assert scalar(c, "select count(*) from pgbatch.job where not cancel_requested") == 0
        assert_invariants(c)


def test_P8_timed_resume_exactly_once_with_three_sweepers(db: TestDatabase) -> None:
    with db.connect() as c:
        setup(c)
        now = db_now(c)
        ids = [launch(c, "j", {"n": i}) for i in range(30)]
        for i, exec_id in enumerate(ids):
            assert pause(c, exec_id, resume_at=now + timedelta(minutes=1 + i % 3)) == (
                True, "PAUSED")
        later = launch(c, "j", {"n": "later"})
        assert pause(c, later, resume_at=now + timedelta(hours=1))[0]
        set_clock(c, now + timedelta(seconds=59))
        assert scalar(c, "select pgbatch.resume_due_executions(100)") == 0
    barrier = threading.Barrier(3)
    resumed: list[int] = []

    def sweeper() -> None:
        with db.connect() as c:
            set_clock(c, now + timedelta(minutes=5))
            barrier.wait()
            while True:
                n = int(scalar(c, "select pgbatch.resume_due_executions(4)"))
                resumed.append(n)
                if n == 0:
                    return

    run_threads([sweeper] * 3)
    assert sum(resumed) == 30
    with db.connect() as c:
        for exec_id in ids:
            x = execution(c, exec_id)
            assert (x["status"], x["resume_count"], x["resume_at"]) == ("STARTING", 1, None)
            assert event_count(c, exec_id, "resumed") == 1
        assert execution(c, later)["status"] == "PAUSED"
        detail = scalar(c, "select detail from pgbatch.execution_event where kind = 'resumed'"
                           " limit 1")
        assert detail["by"] == "schedule"
        assert_invariants(c)


TWO: list[dict[str, Any]] = [{"name": "a", "kind": "tasklet"}, *ONE_STEP]


def test_P9_definition_changed_while_paused(conn: Conn) -> None:
    setup(conn, TWO)
    exec_id = launch(conn)
    item = claim_item(conn)
    start(conn, item)
    s = start_step(conn, item)
    end_step(conn, item, s["step_execution_id"])  # a done: hand-off to load
    item = claim_item(conn)
    start(conn, item)
    load = start_step(conn, item)
    assert park(conn, item)["status"] == "PAUSED"
    old_fp = execution(conn, exec_id)["definition_fp"]
    # a new version moves load first and adds a step after it (Akeneo #19813)
    new_fp = register(conn, "j", [ONE_STEP[0], {"name": "a", "kind": "tasklet"},
                                  {"name": "z", "kind": "tasklet"}], version="2")
    before = batch_state(conn)
    with raises_sqlstate("PB049", "was paused with definition"):
        resume(conn, exec_id)
    assert batch_state(conn) == before
    # the timed-resume sweep leaves it for an operator
    conn.execute("update pgbatch.job_execution set resume_at = pgbatch.now() - interval '1 s'"
                 " where id = %s", [exec_id])
    assert scalar(conn, "select pgbatch.resume_due_executions()") == 0
    assert resume(conn, exec_id, allow_definition_change=True) == (True, "STARTING")
    x = execution(conn, exec_id)
    assert (x["definition_fp"], x["current_step"]) == (new_fp, "load")
    assert {r["step_name"]: r["step_index"] for r in steps(conn, exec_id)} == {"a": 1, "load": 0}
    item = claim_item(conn)
    start(conn, item)
    again = start_step(conn, item)
    assert (again["action"], again["step_execution_id"]) == ("run", load["step_execution_id"])
    # load is now first: the next step is a (COMPLETED in this execution, so it is skipped
    # by the restart rules only in later executions); this execution goes on with z
    assert end_step(conn, item, again["step_execution_id"])["next_step"] == "a"
    assert old_fp != new_fp
    assert_invariants(conn)


def test_P9_a_missing_current_step_fails_the_resume(conn: Conn) -> None:
    setup(conn, TWO)
    exec_id = launch(conn)
    assert pause(conn, exec_id) == (True, "PAUSED")  # parked at a
    register(conn, "j", ONE_STEP, version="2")
    assert resume(conn, exec_id, "r1", allow_definition_change=True) == (True, "FAILED")
    x = execution(conn, exec_id)
    assert (x["status"], x["exit_code"]) == ("FAILED", "STEP_MISSING")
    assert resume(conn, exec_id, "r1", allow_definition_change=True) == (True, "FAILED")
    assert event_count(conn, exec_id, "resumed") == 1
    assert_invariants(conn)


def test_bad_input_changes_nothing(conn: Conn) -> None:
    setup(conn)
    exec_id = paused_execution(conn)
    now = db_now(conn)
    for fn in ("pause_execution", "resume_execution"):
        with raises_sqlstate("PB047", "not found"):
            conn.execute(f"select * from pgbatch.{fn}(0)")
    running = launch(conn, "j", {"n": 2})
    before = batch_state(conn)
    with raises_sqlstate("PB050", "more than"):
        pause(conn, running, resume_at=now.max.replace(tzinfo=now.tzinfo))
    for at in ("infinity", "-infinity"):
        with raises_sqlstate("PB050", "finite"):
            conn.execute("select * from pgbatch.pause_execution(%s, resume_at => %s)",
                         [running, at])
    with raises_sqlstate("PB050", "not after now"):
        pause(conn, running, resume_at=now - timedelta(seconds=1))
    with raises_sqlstate("PB050", "more than"):
        pause(conn, running, resume_at=now + timedelta(days=365 * 20))
    for size in (0, -1, 10001):
        with raises_sqlstate("PB007", "batch_size"):
            conn.execute("select pgbatch.resume_due_executions(%s)", [size])
    # a resume of an execution that is not PAUSED: a typed result, nothing changes
    assert resume(conn, running) == (False, "STARTING")
    assert batch_state(conn) == before
    conn.execute("select pgbatch.stop_execution(%s)", [running])
    assert resume(conn, running) == (False, "STOPPED")
    assert pause(conn, running) == (False, "STOPPED")
    # a worker's pause with a resume_at in the past: refused, the chunk transaction with it
    assert resume(conn, exec_id) == (True, "STARTING")
    item = claim_item(conn)
    start(conn, item)
    start_step(conn, item)
    state = batch_state(conn)
    with raises_sqlstate("PB050", "not after now"):
        park(conn, item, resume_at=now - timedelta(minutes=1))
    with raises_sqlstate("PB007", "source"):
        park(conn, item, source="bored")
    assert batch_state(conn) == state
    assert_invariants(conn)


def test_the_reaper_parks_a_pausing_execution_whose_worker_was_lost(db: TestDatabase,
                                                                    conn: Conn) -> None:
    setup(conn)
    exec_id = launch(conn)
    item = claim_item(conn)
    start(conn, item)
    s = start_step(conn, item)
    conn.execute("insert into public.out values (1)")
    commit_chunk(conn, item, s["step_execution_id"], 0, {"done": 1}, read_count=1, write_count=1)
    assert pause(conn, exec_id) == (True, "PAUSING")
    listener = psycopg.Connection.connect(db.dsn, autocommit=True)
    listener.execute("listen pgbatch_batch_parked")
    conn.execute("update pgbatch.job set lease_expires_at = now() - interval '1 minute'"
                 " where id = %s", [item.job_id])
    assert scalar(conn, "select pgbatch.recover_executions()") == 1
    x = execution(conn, exec_id)
    assert (x["status"], x["pause_reason"]) == ("PAUSED", "paused by an operator")
    (load,) = steps(conn, exec_id)
    assert (load["status"], load["chunk_seq"]) == ("PAUSED", 1)
    note = next(listener.notifies(timeout=10, stop_after=1))
    assert f'"execution_id": {exec_id}' in note.payload
    listener.close()
    assert resume(conn, exec_id) == (True, "STARTING")
    item = claim_item(conn)
    start(conn, item)
    assert start_step(conn, item)["context"] == {"done": 1}
    assert_invariants(conn)


@pytest.mark.parametrize("status", ["STARTING", "PAUSED"])
def test_abandon_and_stop_of_a_paused_execution(conn: Conn, status: str) -> None:
    setup(conn)
    exec_id = paused_execution(conn)
    if status == "STARTING":
        assert resume(conn, exec_id) == (True, "STARTING")
    row = conn.execute("select * from pgbatch.abandon_execution(%s)", [exec_id]).fetchone()
    assert row == ((True, "ABANDONED") if status == "PAUSED" else (False, "STARTING"))
    assert_invariants(conn)
