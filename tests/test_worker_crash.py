"""Crashes: killed workers, a crash-restarted server. No job is lost, none runs twice to completion.

Workers are real processes (``tests/worker_proc.py``). Completions are
counted by the ``record`` task, which writes its row in the ack's
transaction: a row exists exactly when the attempt that wrote it was acked,
and the primary key on the job id would reject a second one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import PgTestServer, TestDatabase
from tests.helpers import archive_row, counts, job_row, scalar
from tests.worker_harness import DONE_TABLE_DDL, ProcGroup, WorkerProcess, enqueue_jobs, wait_until

Conn = psycopg.Connection[Any]


def _done_rows(conn: Conn) -> int:
    return int(scalar(conn, "select count(*) from worker_test_done"))


def _done_at_least(conn: Conn, n: int) -> Callable[[], bool]:
    """A condition for ``wait_until``: at least ``n`` jobs are recorded done."""
    return lambda: _done_rows(conn) >= n


def _done_attempt(conn: Conn, job_id: object) -> int | None:
    row = conn.execute("select attempt from worker_test_done where job_id = %s",
                       [job_id]).fetchone()
    return None if row is None else int(row[0])


def test_a_job_of_a_killed_worker_is_redelivered_after_its_lease_and_completes_once(
        db: TestDatabase, tmp_path: Path) -> None:
    conn = db.connect()
    conn.execute(DONE_TABLE_DDL)
    worker_opts: dict[str, Any] = {"queue": "crash", "lease": 2, "maintenance_interval": 0.2}
    with ProcGroup(db.dsn, tmp_path) as group:
        a = group.spawn("a", node_id="node-a", **worker_opts)
        a.wait_event("idle")
        (jid,) = enqueue_jobs(conn, "crash", "record",
                              {"seconds": 60, "attempts": [1], "emit_events": True})
        a.wait_event("start", pred=lambda e: e["job"] == str(jid))
        a.kill()  # SIGKILL in the middle of the job
        row = job_row(conn, jid)
        assert row is not None
        assert row["state"] == "claimed"
        assert row["claimed_by"] == "node-a"
        lease_end = row["lease_expires_at"]  # nobody can renew it any more

        b = group.spawn("b", node_id="node-b", **worker_opts)
        wait_until(lambda: _done_attempt(conn, jid), 20, "the redelivered attempt to complete")
        b.stop()

    archived = archive_row(conn, jid)
    assert archived is not None
    assert (archived["state"], archived["attempt"], archived["claimed_by"]) == ("done", 2, "node-b")
    assert archived["finished_at"] > lease_end  # redelivered only after the lease expired
    assert archived["last_error"]["type"] == "LeaseExpired"
    assert _done_attempt(conn, jid) == 2
    assert _done_rows(conn) == 1
    assert [e["attempt"] for e in b.events_of("start")] == [2]


def test_a_worker_restarted_with_the_same_node_id_redelivers_its_claims_at_once(
        db: TestDatabase, tmp_path: Path) -> None:
    conn = db.connect()
    conn.execute(DONE_TABLE_DDL)
    worker_opts: dict[str, Any] = {"queue": "restart", "node_id": "node-r", "lease": 60}
    with ProcGroup(db.dsn, tmp_path) as group:
        first = group.spawn("first", **worker_opts)
        first.wait_event("idle")
        (jid,) = enqueue_jobs(conn, "restart", "record",
                              {"seconds": 60, "attempts": [1], "emit_events": True})
        first.wait_event("start", pred=lambda e: e["job"] == str(jid))
        first.kill()
        killed_at = time.monotonic()

        second = group.spawn("second", **worker_opts)
        wait_until(lambda: _done_attempt(conn, jid), 20, "the job to complete after the restart")
        elapsed = time.monotonic() - killed_at
        second.wait_event("log", pred=lambda e: "released 1 claims" in e["msg"])
        second.stop()

    assert elapsed < 15, elapsed  # the 60 s lease did not have to expire
    archived = archive_row(conn, jid)
    assert archived is not None
    assert (archived["state"], archived["attempt"]) == ("done", 2)
    assert archived["last_error"]["message"] == "node restarted"
    assert _done_rows(conn) == 1


def test_2000_jobs_survive_5_random_worker_kills_with_none_lost_and_each_done_once(
        db: TestDatabase, tmp_path: Path) -> None:
    total, kills = 2000, 5
    conn = db.connect()
    conn.execute(DONE_TABLE_DDL)
    rng = random.Random(20240611)
    worker_opts: dict[str, Any] = {"queue": "soak", "concurrency": 4, "lease": 5,
                                   "maintenance_interval": 0.5, "poll_interval": 5}
    with ProcGroup(db.dsn, tmp_path) as group:
        procs: dict[str, WorkerProcess] = {
            f"node-{i}": group.spawn(f"node-{i}-0", node_id=f"node-{i}", **worker_opts)
            for i in range(3)}
        for wp in procs.values():
            wp.wait_event("up")
        enqueue_jobs(conn, "soak", "record", {"seconds": 0.005}, n=total)
        for k in range(kills):
            target = (k + 1) * total // (kills + 2)
            wait_until(_done_at_least(conn, target), 60, f"{target} jobs done")
            node = rng.choice(sorted(procs))
            procs[node].kill()
            procs[node] = group.spawn(f"{node}-{k + 1}", node_id=node, **worker_opts)
            procs[node].wait_event("up")
        wait_until(lambda: _done_rows(conn) == total, 60, "every job to be done")
        wait_until(lambda: counts(conn, "soak")["done"] == total, 10, "queue_stats to agree")
        for wp in procs.values():
            wp.stop()

    assert counts(conn, "soak") == {"pending": 0, "scheduled": 0, "claimed": 0,
                                    "done": total, "dead": 0, "cancelled": 0}
    assert scalar(conn, "select count(*) from pgbatch.job") == 0
    assert scalar(conn, "select count(*) from pgbatch.job_archive where state = 'done'") == total
    # the kills did hit claimed jobs: some needed a second attempt
    assert scalar(conn, "select count(*) from pgbatch.job_archive where attempt > 1") >= 1
    # each completion row belongs to the attempt that was acked
    assert scalar(conn, "select count(*) from worker_test_done d join pgbatch.job_archive a"
                        " on a.id = d.job_id and a.attempt = d.attempt") == total


def test_workers_survive_a_server_crash_restart_and_every_job_ends_done(
        db: TestDatabase, pg_server: PgTestServer, tmp_path: Path) -> None:
    if pg_server.server is None:
        pytest.skip(f"cannot restart a {pg_server.kind} server that this session does not own")
    total = 5000
    conn = db.connect()
    # poll_interval 30: after the restart, only working LISTEN connections (or the
    # catch-up claims after reconnecting) can make jobs start promptly
    worker_opts: dict[str, Any] = {"queue": "restart", "concurrency": 8, "lease": 3,
                                   "maintenance_interval": 0.5, "poll_interval": 30}
    with ProcGroup(db.dsn, tmp_path) as group:
        procs = [group.spawn(f"w{i}", node_id=f"w{i}", **worker_opts) for i in range(2)]
        for wp in procs:
            wp.wait_event("idle")
        enqueue_jobs(conn, "restart", "noop", n=total)
        wait_until(lambda: counts(conn, "restart")["done"] >= total // 5, 60,
                   "a fifth of the jobs to be done")

        pg_server.restart("immediate")
        conn = db.connect()  # the old session died with the server

        wait_until(lambda: counts(conn, "restart")["done"] == total, 120,
                   "every job to be done after the restart")
        # the listeners reconnect by themselves (with backoff while the server recovers)
        for wp in procs:
            wp.wait_event("log", timeout=30, pred=lambda e: "listener reconnected" in e["msg"])
        assert all(wp.alive() for wp in procs)
        # and wake their waiters again: a new job starts without waiting for a poll
        enqueue_jobs(conn, "restart", "noop", n=10)
        wait_until(lambda: counts(conn, "restart")["done"] == total + 10, 5,
                   "jobs enqueued after the reconnect")
        reports = [wp.stop() for wp in procs]

    assert counts(conn, "restart") == {"pending": 0, "scheduled": 0, "claimed": 0,
                                       "done": total + 10, "dead": 0, "cancelled": 0}
    assert scalar(conn, "select count(*) from pgbatch.job") == 0
    for report in reports:
        assert report["error"] is None
        assert report["reconnects"] >= 1  # the listener came back by itself
