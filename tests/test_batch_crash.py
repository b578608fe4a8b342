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
