"""Maintenance leadership: one leader at a time (a lease in pgbatch.leader), failover when it
stops, the leader reaps and vacuums."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import psycopg
import pytest

from pgbatch import App, MaintenanceConfig, VacuumStat, Worker
from pgbatch._aio_client import AsyncClient
from pgbatch.worker.maintenance import Maintenance, MaintenanceStats
from pgbatch.worker.vacuum import vacuum_table
from tests.conftest import TestDatabase
from tests.helpers import expire_lease, job_row, scalar
from tests.worker_harness import LoopThread, enqueue_jobs, wait_until

Conn = Any


def _lease_holder(conn: Conn) -> str | None:
    """The node holding a valid maintenance leadership lease now (database time), or None."""
    row = conn.execute("select node_id from pgbatch.leader where scope = 'maintenance'"
                       " and lease_expires_at > pgbatch.now()").fetchone()
    return None if row is None else str(row[0])


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
            # for five more ticks of each worker: never two leaders, the lease is the leader's
            start = ticks()

            def five_more_ticks() -> bool:
                assert len(leaders()) == 1
                assert _lease_holder(conn) == leader.node_id
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

            # the leader stops and resigns: the follower takes over within a few intervals,
            # long before the lease would have run out
            lt.stop(leader)
            wait_until(lambda: leaders() == [follower], 5 * cfg.interval,
                       "the other worker to become leader")
            assert _lease_holder(conn) == follower.node_id
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
    assert (job_row(conn, jid) or {}).get("state") == "pending"


def _dead_tuples(conn: Conn) -> int:
    return int(scalar(conn, "select coalesce(n_dead_tup, 0) from pg_stat_user_tables"
                            " where relid = 'pgbatch.job'::regclass"))


def _churn(conn: Conn, n: int) -> None:
    """Enqueue, claim and ack ``n`` jobs: two dead row versions each in pgbatch.job."""
    enqueue_jobs(conn, "churn", "noop", n=n)
    rows = conn.execute("select id, claim_token from pgbatch.claim('churn', %s)", [n]).fetchall()
    conn.execute("select * from pgbatch.ack_ids(%s, %s)",
                 [[r[0] for r in rows], [r[1] for r in rows]])


async def _one_leader_tick(dsn: str, cfg: MaintenanceConfig) -> MaintenanceStats:
    client = await AsyncClient.connect(dsn, max_size=2)
    boot = uuid.uuid4()
    maintenance = Maintenance(dsn, client, "vacuum-node", boot, cfg)
    try:
        await client.register_node("vacuum-node", boot, {})
        await maintenance.tick()  # renews the lease, then runs every due service in turn
        assert maintenance.is_leader
        return maintenance.stats
    finally:
        maintenance.stop()
        await maintenance.run()  # returns at once (stopped) and resigns the lease
        await client.close()


def test_the_leader_vacuums_the_live_table_once_it_holds_many_dead_rows(
        db: TestDatabase) -> None:
    conn = db.connect()
    cfg = MaintenanceConfig(vacuum_dead_tuples=300, vacuum_min_seconds=0)
    _churn(conn, 100)  # 200 dead rows: below the threshold
    wait_until(lambda: _dead_tuples(conn) >= 200, 30, "statistics to count 200 dead rows")
    assert asyncio.run(_one_leader_tick(db.dsn, cfg)).vacuums == 0
    _churn(conn, 100)
    wait_until(lambda: _dead_tuples(conn) >= 300, 30, "statistics to count 300 dead rows")
    assert asyncio.run(_one_leader_tick(db.dsn, cfg)).vacuums == 1
    wait_until(lambda: scalar(conn, "select vacuum_count from pg_stat_user_tables"
                                    " where relid = 'pgbatch.job'::regclass"), 30,
               "the VACUUM to show in the statistics")
    assert _dead_tuples(conn) < 300


def _vacuum_count(conn: Conn) -> int:
    return int(scalar(conn, "select vacuum_count from pg_stat_user_tables"
                            " where relid = 'pgbatch.job'::regclass"))


async def _vacuum_twice(dsn: str, cfg: MaintenanceConfig) -> Maintenance:
    """A leader tick (which runs the vacuum service), then the vacuum service once more."""
    client = await AsyncClient.connect(dsn, max_size=2)
    boot = uuid.uuid4()
    maintenance = Maintenance(dsn, client, "vacuum-node", boot, cfg)
    try:
        await client.register_node("vacuum-node", boot, {})
        await maintenance.tick()
        assert maintenance.is_leader
        await maintenance.run_now("vacuum")
        return maintenance
    finally:
        maintenance.stop()
        await maintenance.run()
        await client.close()


def test_a_leader_that_may_not_vacuum_says_so_once_and_leaves_it_to_autovacuum(
        db: TestDatabase, caplog: pytest.LogCaptureFixture) -> None:
    conn = db.connect()
    role = f"pgbatch_nonowner_{uuid.uuid4().hex[:8]}"
    conn.execute(f'create role "{role}" login')
    try:
        # everything a worker needs, but neither ownership nor MAINTAIN on pgbatch.job
        conn.execute(f'grant usage on schema pgbatch to "{role}"')
        # every function, but not MAINTAIN (which pgbatch_worker has on PostgreSQL 17+)
        conn.execute(f'grant execute on all functions in schema pgbatch to "{role}"')
        _churn(conn, 200)
        wait_until(lambda: _dead_tuples(conn) >= 300, 30, "statistics to count dead rows")
        dsn = psycopg.conninfo.make_conninfo(db.dsn, user=role)
        cfg = MaintenanceConfig(vacuum_dead_tuples=300, vacuum_min_seconds=0)
        with caplog.at_level(logging.WARNING, logger="pgbatch.maintenance"):
            maintenance = asyncio.run(_vacuum_twice(dsn, cfg))
        assert maintenance.stats.vacuums == 0
        assert maintenance.queue_services.vacuumer.refused == {"pgbatch.job"}
        refusals = [r for r in caplog.records if "may not VACUUM pgbatch.job" in r.getMessage()]
        assert len(refusals) == 1  # logged once; the second run did not try again
        assert maintenance.stats.services["vacuum"].failures == 0
        assert _vacuum_count(conn) == 0

        # the server's own refusal (a WARNING, not an error) is recognised too
        stat = VacuumStat("pgbatch", "job", 300, may_vacuum=True)
        outcome = asyncio.run(vacuum_table(dsn, stat))
        assert outcome.refused is not None
        assert "job" in outcome.refused
        assert _vacuum_count(conn) == 0

        if conn.info.server_version >= 170000:
            # PostgreSQL 17+: MAINTAIN on the table is enough
            conn.execute(f'grant maintain on pgbatch.job to "{role}"')
            assert asyncio.run(_vacuum_twice(dsn, cfg)).stats.vacuums >= 1
            wait_until(lambda: _vacuum_count(conn) >= 1, 30, "the VACUUM in the statistics")
    finally:
        conn.execute(f'drop owned by "{role}"')
        conn.execute(f'drop role "{role}"')
