# Test names carry BATCH.md acceptance ids (C2, H1, S8, ...): upper case on purpose.
# ruff: noqa: N802
"""Crash tests of the batch engine with real worker processes (BATCH.md
acceptance C2, H1, H2, H6, H7, S6, S8, H9): workers are SIGKILLed at named
fault points, SIGSTOPped past their lease, SIGTERMed, and the server is
restarted; the parent test observes PostgreSQL. The job
(tests/batch_worker_proc.py) copies ``src`` into a same-database sink
(``out``: ``writes`` > 1 is a duplicate) and an external one (``ext``)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import psycopg
import pytest

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
from tests.helpers import expire_lease, scalar
from tests.worker_harness import wait_until

pytestmark = pytest.mark.usefixtures("invariants_checked")

Conn = psycopg.Connection[Any]
ITEMS = 30
CHUNK = 5
KILLED = -signal.SIGKILL


def executions_of_instance(conn: Conn, execution_id: int) -> list[int]:
    """Every execution id of the instance of ``execution_id``, oldest first."""
    rows = conn.execute("select id from pgbatch.job_execution where instance_id ="
                        " (select instance_id from pgbatch.job_execution where id = %s)"
                        " order by id", [execution_id]).fetchall()
    return [int(r[0]) for r in rows]


def committed_items(conn: Conn, execution_id: int) -> int:
    """Items the execution's steps committed (their read counts)."""
    return int(scalar(conn, "select coalesce(sum(read_count), 0) from pgbatch.step_execution"
                            " where job_execution_id = %s", [execution_id]))


@pytest.mark.parametrize("policy", ["ResumeForward", "RestartAll", "RestartFrom:1", "Fail"])
@pytest.mark.parametrize("fault", ["after_read:13", "after_write_before_commit:2",
                                   "after_commit_before_ack:3"])
def test_C2_kill_9_mid_chunk(db: TestDatabase, conn: Conn, tmp_path: Path, fault: str,
                             policy: str) -> None:
    seed_source(conn, ITEMS)
    register_etl(conn, chunk_size=CHUNK, policy=policy)
    first = launch(conn, "etl")
    with BatchProcs(db.dsn, tmp_path) as procs:
        a = procs.spawn("a", node_id="n1", fault=fault, policy=policy, chunk_size=CHUNK)
        assert a.wait_exit(60) == KILLED, a.describe()
        before = committed_items(conn, first)
        # the node restarts: its previous incarnation's claim ends at once (no lease wait)
        b = procs.spawn("b", node_id="n1", policy=policy, chunk_size=CHUNK)
        if policy == "ResumeForward":
            final = first
        else:
            old = wait_status(conn, first, "FAILED", procs=[b])
            assert old["exit_code"] == "HOST_LOST"
            if policy == "Fail":
                assert executions_of_instance(conn, first) == [first], "nothing launched"
                final = int(scalar(conn, "select pgbatch.restart_execution(%s)", [first]))
            else:
                final = wait_until(lambda: executions_of_instance(conn, first)[1:], 30,
                                   "the new execution")[0]
        x = wait_status(conn, final, "COMPLETED", procs=[b])
        b.stop()
    assert executions_of_instance(conn, first) == sorted({first, final})
    distinct, most_writes, ext = sink_counts(conn)
    assert distinct == ITEMS
    load = steps(conn, final)[0]
    assert load["status"] == "COMPLETED"
    if policy in ("ResumeForward", "Fail"):
        # exactly once in the same database; the external sink repeats at most one chunk
        assert most_writes == 1
        assert ITEMS <= ext <= ITEMS + CHUNK
        assert load["read_count"] == ITEMS - (before if policy == "Fail" else 0)
    else:
        # a restart from scratch writes the committed items again (the sink is an upsert)
        assert load["read_count"] == ITEMS
        assert most_writes == (2 if before else 1)
    if policy == "ResumeForward":
        assert x["recovery_count"] == 1
        assert event_count(conn, first, "recovered") == 1
    assert execution(conn, first)["lease_owner"] is None


def test_H1_resume_forward_on_another_node_after_the_lease(db: TestDatabase, conn: Conn,
                                                           tmp_path: Path) -> None:
    seed_source(conn, ITEMS)
    register_etl(conn, chunk_size=CHUNK)
    exec_id = launch(conn, "etl")
    with BatchProcs(db.dsn, tmp_path) as procs:
        a = procs.spawn("a", node_id="a", fault="after_read:13", lease=2, chunk_size=CHUNK)
        assert a.wait_exit(60) == KILLED, a.describe()
        lease = scalar(conn, "select lease_expires_at from pgbatch.job_execution where id = %s",
                       [exec_id])
        b = procs.spawn("b", node_id="b", lease=2, chunk_size=CHUNK)
        x = wait_status(conn, exec_id, "COMPLETED", procs=[b])
        b.stop()
    recovered_at = scalar(conn, "select at from pgbatch.execution_event"
                                " where job_execution_id = %s and kind = 'recovered'", [exec_id])
    assert recovered_at > lease, "another node waits for the lease to expire"
    assert (x["recovery_count"], x["lease_epoch"]) == (1, 2)
    assert executions_of_instance(conn, exec_id) == [exec_id]
    assert len(steps(conn, exec_id)) == 1, "the same step row went on"
    assert sink_counts(conn)[:2] == (ITEMS, 1)


def test_H2_a_restarted_node_recovers_its_own_executions_without_waiting(
        db: TestDatabase, conn: Conn, tmp_path: Path) -> None:
    seed_source(conn, ITEMS)
    register_etl(conn, chunk_size=CHUNK)
    exec_id = launch(conn, "etl")
    with BatchProcs(db.dsn, tmp_path) as procs:
        a = procs.spawn("a", node_id="n1", fault="after_commit_before_ack:2", lease=600,
                        chunk_size=CHUNK)
        assert a.wait_exit(60) == KILLED, a.describe()
        lease = scalar(conn, "select lease_expires_at from pgbatch.job_execution where id = %s",
                       [exec_id])
        b = procs.spawn("b", node_id="n1", lease=600, chunk_size=CHUNK)
        x = wait_status(conn, exec_id, "COMPLETED", procs=[b])
        b.stop()
    recovered_at = scalar(conn, "select at from pgbatch.execution_event"
                                " where job_execution_id = %s and kind = 'recovered'", [exec_id])
    assert recovered_at < lease, "recovered long before the 10-minute lease ran out"
    assert x["recovery_count"] == 1
    assert sink_counts(conn)[:2] == (ITEMS, 1)


def test_H6_a_crash_loop_ends_failed_at_the_recovery_limit(db: TestDatabase, conn: Conn,
                                                          tmp_path: Path) -> None:
    seed_source(conn, ITEMS)
    register_etl(conn, chunk_size=CHUNK, max_recoveries=2)
    exec_id = launch(conn, "etl")
    with BatchProcs(db.dsn, tmp_path) as procs:
        for n in range(3):  # the first run and two recoveries die on item 17
            w = procs.spawn(f"w{n}", node_id="n1", kill_on_item=17, max_recoveries=2,
                            chunk_size=CHUNK)
            assert w.wait_exit(60) == KILLED, w.describe()
        last = procs.spawn("last", node_id="n1", kill_on_item=17, max_recoveries=2,
                           chunk_size=CHUNK)
        x = wait_status(conn, exec_id, "FAILED", procs=[last])
        last.stop()
    assert x["exit_code"] == "RECOVERY_LIMIT"
    assert x["recovery_count"] == 2
    assert event_count(conn, exec_id, "recovered") == 3
    # the chunks before item 17 committed once; nothing was recovered forever
    assert steps(conn, exec_id)[0]["read_count"] == 15
    assert sink_counts(conn)[:2] == (15, 1)


@pytest.mark.parametrize("fold", [0, 1])
def test_H7_zombie_fencing(db: TestDatabase, conn: Conn, tmp_path: Path, fold: int) -> None:
    """``fold``: the zombie's same-database writes are one statement with its
    chunk commit (a writer's ``chunk_statement``): fenced all the same."""
    seed_source(conn, ITEMS)
    register_etl(conn, chunk_size=CHUNK)
    exec_id = launch(conn, "etl")
    with BatchProcs(db.dsn, tmp_path) as procs:
        a = procs.spawn("a", node_id="a", lease=2, chunk_size=CHUNK, item_delay=0.3,
                        fold=fold)
        wait_until(lambda: committed_items(conn, exec_id) >= CHUNK, 60, "a's first chunk")
        a.signal(signal.SIGSTOP)
        epoch = execution(conn, exec_id)["lease_epoch"]
        b = procs.spawn("b", node_id="b", lease=2, chunk_size=CHUNK)
        x = wait_status(conn, exec_id, "COMPLETED", procs=[b])
        assert x["lease_epoch"] == epoch + 1
        b.stop()
        before = (sink_counts(conn), steps(conn, exec_id), execution(conn, exec_id))
        a.signal(signal.SIGCONT)
        wait_until(lambda: "lost claim" in a.stderr_path.read_text(), 60,
                   "the zombie to find its claim lost")
        a.stop()
    after = (sink_counts(conn), steps(conn, exec_id), execution(conn, exec_id))
    assert after == before, "the zombie changed nothing"
    assert sink_counts(conn)[:2] == (ITEMS, 1)


@pytest.mark.parametrize("fault", ["after_write_before_commit:2", "after_commit_before_ack:3"])
def test_C2_kill_9_mid_chunk_with_writes_folded_into_the_commit(
        db: TestDatabase, conn: Conn, tmp_path: Path, fault: str) -> None:
    """A writer whose chunk is one statement with the commit (``chunk_statement``):
    killed before that statement or after it, the resumed step writes every item
    exactly once in the same database."""
    seed_source(conn, ITEMS)
    register_etl(conn, chunk_size=CHUNK)
    first = launch(conn, "etl")
    with BatchProcs(db.dsn, tmp_path) as procs:
        a = procs.spawn("a", node_id="n1", fault=fault, chunk_size=CHUNK, fold=1)
        assert a.wait_exit(60) == KILLED, a.describe()
        before = committed_items(conn, first)
        assert before == (2 * CHUNK if fault.startswith("after_write") else 3 * CHUNK)
        b = procs.spawn("b", node_id="n1", chunk_size=CHUNK, fold=1)
        x = wait_status(conn, first, "COMPLETED", procs=[b])
        b.stop()
    assert sink_counts(conn)[:2] == (ITEMS, 1)
    assert steps(conn, first)[0]["read_count"] == ITEMS
    assert x["recovery_count"] == 1


def test_S6_a_worker_killed_while_stopping_ends_stopped(db: TestDatabase, conn: Conn,
                                                       tmp_path: Path) -> None:
    seed_source(conn, ITEMS)
    register_etl(conn, chunk_size=CHUNK)
    exec_id = launch(conn, "etl")
    with BatchProcs(db.dsn, tmp_path) as procs:
        a = procs.spawn("a", node_id="a", chunk_size=CHUNK, item_delay=0.5)
        wait_until(lambda: committed_items(conn, exec_id) >= CHUNK, 60, "a's first chunk")
        assert scalar(conn, "select applied from pgbatch.stop_execution(%s)", [exec_id])
        a.kill()
        assert execution(conn, exec_id)["status"] == "STOPPING"
    expire_lease(conn)
    assert scalar(conn, "select pgbatch.recover_executions()") == 1
    x = execution(conn, exec_id)
    assert (x["status"], x["exit_code"], x["recovery_count"]) == ("STOPPED", "STOPPED", 0)
    load = steps(conn, exec_id)[0]
    assert (load["status"], load["read_count"]) == ("STOPPED", committed_items(conn, exec_id))
    assert executions_of_instance(conn, exec_id) == [exec_id], "not resumed"
    assert scalar(conn, "select count(*) from pgbatch.job") == 0


@pytest.mark.parametrize("on_shutdown", ["handoff", "stop"])
def test_S8_sigterm_hands_the_execution_to_another_worker(db: TestDatabase, conn: Conn,
                                                          tmp_path: Path, on_shutdown: str) -> None:
    seed_source(conn, ITEMS)
    register_etl(conn, chunk_size=CHUNK, on_shutdown=on_shutdown)
    exec_id = launch(conn, "etl")
    with BatchProcs(db.dsn, tmp_path) as procs:
        a = procs.spawn("a", node_id="a", chunk_size=CHUNK, item_delay=0.1,
                        on_shutdown=on_shutdown)
        wait_until(lambda: committed_items(conn, exec_id) >= CHUNK, 60, "a's first chunk")
        a.stop(60)
        done_by_a = committed_items(conn, exec_id)
        assert CHUNK <= done_by_a < ITEMS
        if on_shutdown == "stop":
            x = execution(conn, exec_id)
            assert (x["status"], x["handoff_count"]) == ("STOPPED", 0)
            assert steps(conn, exec_id)[0]["status"] == "STOPPED"
            return
        assert execution(conn, exec_id)["status"] == "STARTING"
        b = procs.spawn("b", node_id="b", chunk_size=CHUNK)
        x = wait_status(conn, exec_id, "COMPLETED", procs=[b])
        b.stop()
    assert (x["handoff_count"], x["recovery_count"]) == (1, 0)
    assert executions_of_instance(conn, exec_id) == [exec_id]
    assert len(steps(conn, exec_id)) == 1
    # the current chunk committed before the hand-off: nothing written twice anywhere
    assert sink_counts(conn) == (ITEMS, 1, ITEMS)
    assert event_count(conn, exec_id, "handoff") == 1


def test_H9_postgres_restart_during_running_jobs(db: TestDatabase, conn: Conn, tmp_path: Path,
                                                 pg_server: PgTestServer) -> None:
    parts = 5
    seed_source(conn, ITEMS * parts)
    register_etl(conn, chunk_size=CHUNK)
    ids = [launch(conn, "etl", {"part": p, "parts": parts}) for p in range(parts)]
    with BatchProcs(db.dsn, tmp_path) as procs:
        w = procs.spawn("w", node_id="w", chunk_size=CHUNK, item_delay=0.05, concurrency=parts)
        wait_until(lambda: all(committed_items(conn, i) >= CHUNK for i in ids), 60,
                   "every job's first chunk")
        conn.close()
        pg_server.restart("immediate")
        conn = db.connect()
        for i in ids:
            wait_status(conn, i, "COMPLETED", timeout=120, procs=[w])
        w.stop(60)
    assert sink_counts(conn)[:2] == (ITEMS * parts, 1), "every item exactly once"
    for i in ids:
        assert executions_of_instance(conn, i) == [i]
        assert steps(conn, i)[0]["read_count"] == ITEMS
        # shorter than the lease: the workers went on with their claims, nothing was recovered
        assert event_count(conn, i, "recovered") == 0
    assert scalar(conn, "select count(*) from pgbatch.job_execution"
                        " where status in ('STARTED', 'STOPPING', 'PAUSING')") == 0
