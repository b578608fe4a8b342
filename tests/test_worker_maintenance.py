"""Maintenance leadership: one leader at a time, failover when it stops, the leader reaps."""

from __future__ import annotations

from typing import Any

from pgbatch import App, MaintenanceConfig, Worker
from pgbatch._maintenance import LEADER_LOCK_KEY
from tests.conftest import TestDatabase
from tests.worker_harness import (
    LoopThread,
    enqueue_jobs,
    expire_lease,
    job_row,
    scalar,
    wait_until,
)

Conn = Any


def _lock_holders(conn: Conn) -> int:
    """Sessions holding the leader's advisory lock in this database."""
    return int(scalar(
        conn,
        "select count(*) from pg_locks where locktype = 'advisory' and granted"
        " and database = (select oid from pg_database where datname = current_database())"
        " and classid = %s and objid = %s and objsubid = 1",
        [LEADER_LOCK_KEY >> 32, LEADER_LOCK_KEY & 0xFFFFFFFF]))


def _claim_and_expire(conn: Conn, queue: str) -> Any:
    """A job claimed by a worker that vanished: its lease expired long ago."""
    (jid,) = enqueue_jobs(conn, queue, "nobody.runs.this")
    row = conn.execute("select id from pgbatch.claim(%s, 1, '1 hour', 'gone')", [queue]).fetchone()
    assert row is not None
    assert row[0] == jid
    expire_lease(conn, jid)
    return jid


def _reaped(conn: Conn, jid: Any) -> bool:
    row = job_row(conn, jid)
    return bool(row and row["state"] == "pending" and row["last_error"]
                and row["last_error"]["type"] == "LeaseExpired")


def test_exactly_one_worker_leads_maintenance_and_another_takes_over_when_it_stops(
        db: TestDatabase) -> None:
    conn = db.connect()
    app = App(db.dsn)

    @app.task(queue="lead")
    def noop() -> None:
        return None

    cfg = MaintenanceConfig(interval=0.2)
    workers = [Worker(app, concurrency=1, node_id=f"lead-{i}", poll_interval=30,
                      maintenance_config=cfg) for i in range(2)]
    try:
        with LoopThread() as lt:
            for w in workers:
                lt.start(w)

            def leaders() -> list[Worker]:
                return lt.call(lambda: [w for w in workers
                                        if w.maintenance is not None and w.maintenance.is_leader])

            def ticks() -> list[int]:
                return lt.call(lambda: [w.maintenance.stats.ticks if w.maintenance else 0
                                        for w in workers])

            def reaped(w: Worker) -> int:
                return lt.call(lambda: w.maintenance.stats.reaped if w.maintenance else 0)

            (leader,) = wait_until(leaders, 10, "a maintenance leader")
            (follower,) = [w for w in workers if w is not leader]
            # for five more ticks of each worker: never two leaders, one lock holder
            start = ticks()

            def five_more_ticks() -> bool:
                assert len(leaders()) == 1
                assert _lock_holders(conn) == 1
                return all(t >= s + 5 for t, s in zip(ticks(), start, strict=True))
            wait_until(five_more_ticks, 10, "five more maintenance ticks")

            # an expired claim is reaped, by the leader
            jid = _claim_and_expire(conn, "side")
            wait_until(lambda: _reaped(conn, jid), 5, "the expired claim to be reaped")
            # (the counter moves once the reaping call has returned)
            wait_until(lambda: reaped(leader) == 1, 5, "the leader to count the reaped claim")
            assert reaped(follower) == 0
            assert lt.call(lambda: follower.maintenance.stats.leader_ticks
                           if follower.maintenance else 0) == 0

            # the leader stops: the follower takes over within a few intervals
            lt.stop(leader)
            wait_until(lambda: leaders() == [follower], 5 * cfg.interval,
                       "the other worker to become leader")
            assert _lock_holders(conn) == 1
            jid2 = _claim_and_expire(conn, "side-2")
            wait_until(lambda: _reaped(conn, jid2), 5, "the new leader to reap")
            wait_until(lambda: reaped(follower) == 1, 5, "the new leader to count it")
    finally:
        app.close()


def test_a_worker_replaced_under_its_node_id_stops_claiming(db: TestDatabase) -> None:
    """Another incarnation registered the same node id: this one is stale and stops."""
    conn = db.connect()
    app = App(db.dsn)

    @app.task(queue="stale")
    def noop() -> None:
        return None

    worker = Worker(app, concurrency=2, node_id="stale-node", poll_interval=30,
                    maintenance_config=MaintenanceConfig(interval=0.1))
    with LoopThread() as lt:
        lt.start(worker)
        fut = lt._runs[id(worker)]
        # a new incarnation of the same node registers (e.g. a restarted pod)
        conn.execute("select pgbatch.register_node('stale-node', gen_random_uuid())")
        wait_until(fut.done, 10, "the stale worker to stop")
        fut.result(timeout=1)  # a clean stop, not a crash
        replaced = lt.call(lambda: worker.maintenance is not None
                           and worker.maintenance.stats.replaced)
        assert replaced
    # and it no longer claims: a job enqueued now stays pending
    (jid,) = enqueue_jobs(conn, "stale", "tests.noop")
    assert job_row(conn, jid)["state"] == "pending"
