"""A stuck maintenance leader does not stall recovery: another node takes the lease over.

Two real worker processes. The leader holds claims and is frozen with
SIGSTOP: its session stays open, but it stops renewing both its job leases and
its leadership lease. The other node must become leader once the leadership
lease has run out and reap the frozen node's claims within the lease plus two
ticks. After SIGCONT the old leader learns at its next call that it lost the
lease, steps down without acting as leader, goes on working, and exits
cleanly when stopped.

The bounds are checked in database time, from the rows themselves (the lease
row, each reaped job's ``run_at``, which reaping sets to its own time), plus a
fixed allowance for process scheduling on a busy test machine.
"""

from __future__ import annotations

import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.conftest import TestDatabase
from tests.helpers import scalar
from tests.worker_harness import (
    SERVICE_RUNS_DDL,
    ProcGroup,
    WorkerProcess,
    enqueue_jobs,
    wait_until,
)

Conn = psycopg.Connection[Any]
Row = dict[str, Any]

JOBS = 4
JOB_LEASE = 2.0
LEADER_LEASE = 2.0
TICK = 0.25
#: Process scheduling delays on a test machine shared with other work.
SCHEDULING_ALLOWANCE = timedelta(seconds=1.0)


def _lease_row(conn: Conn) -> Row | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("select * from pgbatch.leader where scope = 'maintenance'").fetchone()


def _jobs(conn: Conn, queue: str) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("select * from pgbatch.job where queue = %s order by id",
                           [queue]).fetchall()


def _stopped(wp: WorkerProcess) -> bool:
    """Whether the process is in the stopped state (``T`` in /proc/<pid>/stat)."""
    stat = Path(f"/proc/{wp.pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def _db_clock(conn: Conn) -> datetime:
    value = scalar(conn, "select clock_timestamp()")
    assert isinstance(value, datetime)
    return value


def test_a_stopped_leader_loses_the_lease_its_claims_are_reaped_and_it_steps_down_when_resumed(
        db: TestDatabase, tmp_path: Path) -> None:
    conn = db.connect()
    conn.execute(SERVICE_RUNS_DDL)
    opts: dict[str, Any] = {"lease": JOB_LEASE, "leader_lease": LEADER_LEASE,
                            "maintenance_interval": TICK, "record_service": "leader",
                            "shutdown_grace": 1, "poll_interval": 0.5}
    with ProcGroup(db.dsn, tmp_path) as group:
        a = group.spawn("a", node_id="node-a", queue="stuck", concurrency=JOBS, **opts)
        wait_until(lambda: (_lease_row(conn) or {}).get("node_id") == "node-a", 30,
                   "node-a to lead")
        a.wait_event("idle")
        b = group.spawn("b", node_id="node-b", queue="elsewhere", **opts)
        b.wait_event("idle")

        # the leader holds claims: jobs that sleep 4 s on their first attempt
        ids = enqueue_jobs(conn, "stuck", "sleep", {"seconds": 4, "attempts": [1]}, n=JOBS)
        for jid in ids:
            a.wait_event("start", pred=lambda e, j=str(jid): e["job"] == j)  # type: ignore[misc]
        assert all(j["state"] == "claimed" and j["claimed_by"] == "node-a"
                   for j in _jobs(conn, "stuck"))
        old = _lease_row(conn)
        assert old is not None
        assert (old["node_id"], old["term"]) == ("node-a", 1)

        a.signal(signal.SIGSTOP)
        wait_until(lambda: _stopped(a), 10, "node-a to be stopped")
        stopped_at = _db_clock(conn)

        # node-b takes the lease over once node-a's has run out, not before
        last_of_a = _lease_row(conn)

        def taken_over() -> Row | None:
            nonlocal last_of_a
            row = _lease_row(conn)
            if row is not None and row["node_id"] == "node-a":
                last_of_a = row
                return None
            return row
        new = wait_until(taken_over, 30, "node-b to take the lease over")
        assert new is not None
        assert last_of_a is not None
        old_expiry = last_of_a["lease_expires_at"]
        assert old_expiry <= stopped_at + timedelta(seconds=LEADER_LEASE)
        assert (new["node_id"], new["term"]) == ("node-b", last_of_a["term"] + 1)
        assert new["acquired_at"] >= old_expiry  # never two valid leases at one instant
        assert new["acquired_at"] <= old_expiry + timedelta(seconds=TICK) + SCHEDULING_ALLOWANCE

        # and reaps the frozen node's claims within the lease plus two ticks
        def reaped() -> list[Row] | None:
            rows = _jobs(conn, "stuck")
            done = [r for r in rows if r["state"] == "pending" and r["last_error"]
                    and r["last_error"]["type"] == "LeaseExpired"]
            return rows if len(done) == JOBS else None
        rows = wait_until(reaped, 30, "node-a's claims to be reaped")
        assert rows is not None
        bound = (stopped_at + timedelta(seconds=max(JOB_LEASE, LEADER_LEASE) + 2 * TICK)
                 + SCHEDULING_ALLOWANCE)
        for r in rows:
            assert r["attempt"] == 1
            assert r["last_error"]["worker"] == "node-a"
            assert r["run_at"] <= bound, (r["run_at"] - stopped_at, r)  # reaped at run_at
        holder = _lease_row(conn)
        assert holder is not None
        assert (holder["node_id"], holder["term"], holder["acquired_at"]) == \
            ("node-b", new["term"], new["acquired_at"])

        # node-a resumes: it learns it lost the lease and steps down
        resumed = len(a.events)
        a.signal(signal.SIGCONT)
        a.wait_event("log", since=resumed, timeout=30,
                     pred=lambda e: "lost the maintenance leadership" in e["msg"])
        mark = int(scalar(conn, "select coalesce(max(id), 0) from worker_test_service_runs"))
        wait_until(lambda: scalar(conn, "select count(*) from worker_test_service_runs"
                                        " where node = 'node-b' and id > %s", [mark]) >= 3,
                   30, "three more leader-only runs of node-b")
        # it goes on working: its claims' results are refused (ClaimLost), then it claims
        # the requeued jobs again and completes them
        wait_until(lambda: scalar(conn, "select count(*) from pgbatch.job_archive"
                                        " where queue = 'stuck' and state = 'done'") == JOBS,
                   30, "node-a to complete the requeued jobs")
        lease_now = _lease_row(conn)
        assert lease_now is not None
        assert (lease_now["node_id"], lease_now["term"]) == ("node-b", new["term"])
        report_a = a.stop()
        report_b = b.stop()

    # node-a ran no leader-only service after it learnt it had lost the lease
    assert scalar(conn, "select count(*) from worker_test_service_runs"
                        " where node = 'node-a' and id > %s", [mark]) == 0
    # no run of node-a's that the database accepted as the leader's started after the takeover
    assert scalar(conn, "select count(*) from worker_test_service_runs where node = 'node-a'"
                        " and holds and at >= %s", [new["acquired_at"]]) == 0
    # a run that was already past its check when node-a froze may land once, refused
    assert scalar(conn, "select count(*) from worker_test_service_runs"
                        " where node = 'node-a' and not holds") <= 1
    # every run of node-b's while it led was the valid leader's
    assert scalar(conn, "select bool_and(holds) from worker_test_service_runs"
                        " where node = 'node-b'") is True
    archived = conn.execute("select attempt, claimed_by from pgbatch.job_archive"
                            " where queue = 'stuck'").fetchall()
    assert sorted(archived) == [(2, "node-a")] * JOBS
    assert report_a["error"] is None
    assert report_a["maintenance"]["became_leader"] == 1
    assert report_a["maintenance"]["lost_leadership"] == 1
    assert report_a["maintenance"]["term"] is None
    assert report_b["error"] is None
    assert report_b["maintenance"]["became_leader"] == 1
    assert report_b["maintenance"]["lost_leadership"] == 0
    assert report_b["maintenance"]["services"]["reap_expired"]["failures"] == 0
