# Test names carry BATCH.md acceptance ids (G5): upper case on purpose.
# ruff: noqa: N802
"""Approval gates survive host and server restarts (BATCH.md §4.4, §7;
acceptance G5), with real worker processes (tests/batch_worker_proc.py, job
``etl`` with a gate ``check`` between its chunk steps ``s1`` and ``s2``) and a
real PostgreSQL restart (``pg_ctl restart -m immediate``)."""

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
    launch,
    register_etl,
    seed_source,
    sink_counts,
    steps,
    wait_status,
)
from tests.conftest import PgTestServer, TestDatabase
from tests.gate_helpers import approval, decide, gates_checked  # noqa: F401 - pytestmark's fixture
from tests.helpers import scalar

pytestmark = pytest.mark.usefixtures("gates_checked")

Conn = psycopg.Connection[Any]
ITEMS = 20
CHUNK = 5
KILLED = -signal.SIGKILL


def test_G5_a_pending_gate_survives_worker_and_server_restarts(
        db: TestDatabase, conn: Conn, tmp_path: Path, pg_server: PgTestServer) -> None:
    seed_source(conn, ITEMS)
    register_etl(conn, steps_count=2, chunk_size=CHUNK, gate="check")
    exec_id = launch(conn, "etl")
    with BatchProcs(db.dsn, tmp_path) as procs:
        a = procs.spawn("a", node_id="a", steps=2, gate="check", chunk_size=CHUNK, lease=2)
        wait_status(conn, exec_id, "AWAITING_APPROVAL", procs=[a])
        before = (execution(conn, exec_id), steps(conn, exec_id), approval(conn, exec_id))
        # the host dies, then the database server crashes and restarts
        a.kill()
        assert a.wait_exit(30) == KILLED
        conn.close()
        pg_server.restart("immediate")
        conn = db.connect()
        # a new node boots: its recovery sweep has nothing to recover, the gate still waits
        b = procs.spawn("b", node_id="a", steps=2, gate="check", chunk_size=CHUNK, lease=2)
        b.wait_event("up", 60)
        assert scalar(conn, "select pgbatch.recover_executions('0 seconds', 100)") == 0
        assert (execution(conn, exec_id), steps(conn, exec_id), approval(conn, exec_id)) == before
        assert before[2]["status"] == "PENDING"
        assert before[0]["status"] == "AWAITING_APPROVAL"
        assert scalar(conn, "select count(*) from pgbatch.job") == 0
        # a decision taken now still resolves it: s2 runs in the same execution
        assert decide(conn, "approve", exec_id, actor="ops") == (True, "APPROVED", "STARTING")
        x = wait_status(conn, exec_id, "COMPLETED", procs=[b])
        b.stop(60)
    assert x["recovery_count"] == 0
    assert event_count(conn, exec_id, "recovered") == 0
    assert scalar(conn, "select count(*) from pgbatch.job_execution") == 1
    assert [(s["step_name"], s["status"]) for s in steps(conn, exec_id)] == [
        ("s1", "COMPLETED"), ("check", "COMPLETED"), ("s2", "COMPLETED")]
    assert sink_counts(conn, "s1")[:2] == (ITEMS, 1)
    assert sink_counts(conn, "s2")[:2] == (ITEMS, 1)


def test_G5_a_decision_while_the_server_restarts_under_a_running_worker(
        db: TestDatabase, conn: Conn, tmp_path: Path, pg_server: PgTestServer) -> None:
    seed_source(conn, ITEMS)
    register_etl(conn, steps_count=2, chunk_size=CHUNK, gate="check")
    exec_id = launch(conn, "etl")
    with BatchProcs(db.dsn, tmp_path) as procs:
        w = procs.spawn("w", node_id="w", steps=2, gate="check", chunk_size=CHUNK)
        wait_status(conn, exec_id, "AWAITING_APPROVAL", procs=[w])
        conn.close()
        pg_server.restart("immediate")
        conn = db.connect()
        assert execution(conn, exec_id)["status"] == "AWAITING_APPROVAL"
        # rejected after the restart: the worker, reconnected, is not needed for that
        assert decide(conn, "reject", exec_id) == (True, "REJECTED", "FAILED")
        restarted = int(scalar(conn, "select pgbatch.restart_execution(%s)", [exec_id]))
        # the same worker (it reconnected) runs the restart up to the gate again: s1 is skipped
        wait_status(conn, restarted, "AWAITING_APPROVAL", procs=[w])
        assert decide(conn, "approve", restarted) == (True, "APPROVED", "STARTING")
        wait_status(conn, restarted, "COMPLETED", procs=[w])
        w.stop(60)
    assert [s["step_name"] for s in steps(conn, restarted)] == ["check", "s2"]
    assert sink_counts(conn, "s1")[:2] == (ITEMS, 1)
    assert sink_counts(conn, "s2")[:2] == (ITEMS, 1)
