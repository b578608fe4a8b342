# Test names carry BATCH.md acceptance ids (P7): upper case on purpose.
# ruff: noqa: N802
"""Paused executions with real worker processes (tests/batch_worker_proc.py):
a PAUSED execution survives the restart of every node and of PostgreSQL and
resumes afterwards (P7); a worker's SIGTERM with ``on_shutdown='pause'`` parks
its execution after the current chunk commit (BATCH.md §5)."""

from __future__ import annotations

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
from tests.helpers import scalar
from tests.worker_harness import wait_until

pytestmark = pytest.mark.usefixtures("invariants_checked")

Conn = psycopg.Connection[Any]
ITEMS = 30
CHUNK = 5


def committed(conn: Conn, execution_id: int) -> int:
    return int(scalar(conn, "select coalesce(sum(read_count), 0) from pgbatch.step_execution"
                            " where job_execution_id = %s", [execution_id]))


def assert_parked(conn: Conn, execution_id: int, done: int) -> None:
    x = execution(conn, execution_id)
    assert (x["status"], x["lease_owner"], x["lease_expires_at"]) == ("PAUSED", None, None)
    (s1,) = steps(conn, execution_id)
    assert (s1["status"], s1["read_count"]) == ("PAUSED", done)
    assert scalar(conn, "select count(*) from pgbatch.job where"
                        " (payload ->> 'execution_id')::bigint = %s", [execution_id]) == 0


def test_P7_paused_execution_survives_restarts_of_nodes_and_postgres(
        db: TestDatabase, conn: Conn, tmp_path: Path, pg_server: PgTestServer) -> None:
    seed_source(conn, ITEMS * 2)
    register_etl(conn, chunk_size=CHUNK)
    exec_id = launch(conn, "etl", {"part": 0, "parts": 2})
    with BatchProcs(db.dsn, tmp_path) as procs:
        a = procs.spawn("a", node_id="a", chunk_size=CHUNK, item_delay=0.05)
        wait_until(lambda: committed(conn, exec_id) >= CHUNK, 60, "a's first chunk")
        assert scalar(conn, "select status from pgbatch.pause_execution(%s, 'p7',"
                            " reason => 'verify the first rows')", [exec_id]) == "PAUSING"
        wait_status(conn, exec_id, "PAUSED", procs=[a])
        done = committed(conn, exec_id)
        assert CHUNK <= done < ITEMS
        a.stop(60)  # every node is down
        conn.close()
        pg_server.restart("immediate")
        conn = db.connect()
        assert_parked(conn, exec_id, done)

        # two nodes boot (recovery sweeps at their start) and run another execution to its
        # end: they never touch the paused one
        b = procs.spawn("b", node_id="b", chunk_size=CHUNK)
        c = procs.spawn("c", node_id="c", chunk_size=CHUNK)
        b.wait_event("up", 60)
        c.wait_event("up", 60)
        other = launch(conn, "etl", {"part": 1, "parts": 2})
        wait_status(conn, other, "COMPLETED", procs=[b, c])
        conn.close()
        pg_server.restart("fast")  # and the server once more, with the nodes up
        conn = db.connect()
        assert_parked(conn, exec_id, done)
        assert execution(conn, exec_id)["pause_reason"] == "verify the first rows"

        row = conn.execute("select * from pgbatch.resume_execution(%s, 'p7-resume')",
                           [exec_id]).fetchone()
        assert row == (True, "STARTING")
        x = wait_status(conn, exec_id, "COMPLETED", timeout=120, procs=[b, c])
        b.stop(60)
        c.stop(60)
    assert (x["resume_count"], x["recovery_count"]) == (1, 0)
    assert scalar(conn, "select count(*) from pgbatch.job_execution where instance_id ="
                        " (select instance_id from pgbatch.job_execution where id = %s)",
                  [exec_id]) == 1
    (s1,) = steps(conn, exec_id)
    assert (s1["status"], s1["read_count"]) == ("COMPLETED", ITEMS)
    # every item of both executions exactly once in the same-database sink
    assert sink_counts(conn)[:2] == (ITEMS * 2, 1)
    assert event_count(conn, exec_id, "paused") == 1
    assert event_count(conn, exec_id, "resumed") == 1


def test_sigterm_with_on_shutdown_pause_parks_the_execution(db: TestDatabase, conn: Conn,
                                                            tmp_path: Path) -> None:
    seed_source(conn, ITEMS)
    register_etl(conn, chunk_size=CHUNK, on_shutdown="pause")
    exec_id = launch(conn, "etl")
    with BatchProcs(db.dsn, tmp_path) as procs:
        a = procs.spawn("a", node_id="a", chunk_size=CHUNK, item_delay=0.1, on_shutdown="pause")
        wait_until(lambda: committed(conn, exec_id) >= CHUNK, 60, "a's first chunk")
        a.stop(60)
        done = committed(conn, exec_id)
        assert CHUNK <= done < ITEMS
        assert_parked(conn, exec_id, done)
        x = execution(conn, exec_id)
        assert (x["pause_reason"], x["handoff_count"]) == ("paused at the worker's shutdown", 0)
        detail = scalar(conn, "select detail from pgbatch.execution_event where kind = 'paused'")
        assert detail["source"] == "shutdown"
        b = procs.spawn("b", node_id="b", chunk_size=CHUNK, on_shutdown="pause")
        b.wait_event("up", 60)
        assert scalar(conn, "select applied from pgbatch.resume_execution(%s)", [exec_id])
        wait_status(conn, exec_id, "COMPLETED", procs=[b])
        b.stop(60)
    assert sink_counts(conn) == (ITEMS, 1, ITEMS)
    assert steps(conn, exec_id)[0]["read_count"] == ITEMS
