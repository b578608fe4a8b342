"""Retention of batch history: pgbatch.purge_batch_history and the maintenance
leader's purge_batch_history service, with the database clock moved forward."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pgbatch import AsyncClient, InvalidArgument, MaintenanceConfig
from pgbatch.worker.batch_services import BatchServices
from pgbatch.worker.maintenance import Maintenance, MaintenanceStats
from tests.batch_helpers import (
    assert_invariants,
    batch_state,
    claim_item,
    end_step,
    launch,
    register,
    run_to_end,
    start,
    start_step,
)
from tests.conftest import TestDatabase
from tests.helpers import db_now, raises_sqlstate, scalar, set_clock

Conn = psycopg.Connection[Any]
DAY = timedelta(days=1)


def stop(conn: Conn, execution_id: int) -> str:
    return str(scalar(conn, "select status from pgbatch.stop_execution(%s)", [execution_id]))


def fail(conn: Conn, execution_id: int) -> None:
    item = claim_item(conn)
    assert item.execution_id == execution_id
    start(conn, item)
    s = start_step(conn, item)
    assert end_step(conn, item, s["step_execution_id"], "FAILED")["job_status"] == "FAILED"


def purge(conn: Conn, older_than: str = "30 days", batch_size: int = 1000) -> int:
    return int(scalar(conn, "select pgbatch.purge_batch_history(%s::interval, %s)",
                      [older_than, batch_size]))


def rows_of(conn: Conn, execution_ids: list[int]) -> dict[str, int]:
    """Rows left that belong to these executions, per table."""
    queries = {
        "job_execution": "select count(*) from pgbatch.job_execution where id = any(%s)",
        "job_execution_context": "select count(*) from pgbatch.job_execution_context"
                                 " where job_execution_id = any(%s)",
        "step_execution": "select count(*) from pgbatch.step_execution"
                          " where job_execution_id = any(%s)",
        "step_execution_context": "select count(*) from pgbatch.step_execution_context c"
                                  " join pgbatch.step_execution s on s.id = c.step_execution_id"
                                  " where s.job_execution_id = any(%s)",
        "execution_event": "select count(*) from pgbatch.execution_event"
                           " where job_execution_id = any(%s)",
    }
    return {t: int(scalar(conn, q, [execution_ids])) for t, q in queries.items()}


def instances(conn: Conn) -> list[int]:
    """The ``n`` parameter of every job instance left."""
    return [int(r[0]) for r in conn.execute(
        "select (identifying_params -> 'n' ->> 'v')::int from pgbatch.job_instance order by 1")]


def one_of_each(conn: Conn) -> dict[str, int]:
    """A terminal execution in each terminal status, instances n = 1..4."""
    register(conn)
    done = launch(conn, params={"n": 1})
    assert run_to_end(conn, done) == "COMPLETED"
    stopped = launch(conn, params={"n": 2})
    assert stop(conn, stopped) == "STOPPED"
    failed = launch(conn, params={"n": 3})
    fail(conn, failed)
    abandoned = launch(conn, params={"n": 4})
    stop(conn, abandoned)
    assert scalar(conn, "select status from pgbatch.abandon_execution(%s)", [abandoned]) == \
        "ABANDONED"
    return {"COMPLETED": done, "STOPPED": stopped, "FAILED": failed, "ABANDONED": abandoned}


def test_terminal_executions_older_than_the_age_go_with_everything_of_theirs(conn: Conn) -> None:
    t0 = db_now(conn)
    old = one_of_each(conn)
    # an instance with an active execution keeps its whole history
    kept_old = launch(conn, params={"n": 5})
    stop(conn, kept_old)
    kept_new = int(scalar(conn, "select pgbatch.restart_execution(%s)", [kept_old]))
    # an instance whose later execution is recent keeps the instance and that one
    set_clock(conn, t0 - 10 * DAY)
    early = launch(conn, params={"n": 6})
    stop(conn, early)
    set_clock(conn, t0 + 5 * DAY)
    later = int(scalar(conn, "select pgbatch.restart_execution(%s)", [early]))
    stop(conn, later)
    gone = [*old.values(), early]
    before = rows_of(conn, gone)
    assert before["step_execution"] > 0
    assert before["execution_event"] > 0

    set_clock(conn, t0 + 29 * DAY)  # `early` ended 39 days before: it alone is old enough
    assert purge(conn) == 1
    assert rows_of(conn, [early])["job_execution"] == 0
    set_clock(conn, t0 + 30 * DAY + timedelta(minutes=1))
    assert purge(conn) == 4
    assert rows_of(conn, gone) == dict.fromkeys(before, 0)
    assert instances(conn) == [5, 6]
    left = [r[0] for r in conn.execute("select id from pgbatch.job_execution order by id")]
    assert left == sorted([kept_old, kept_new, later])
    assert purge(conn) == 0
    assert_invariants(conn)


def test_batch_size_bounds_each_call(conn: Conn) -> None:
    t0 = db_now(conn)
    one_of_each(conn)
    set_clock(conn, t0 + 31 * DAY)
    assert [purge(conn, batch_size=3), purge(conn, batch_size=3), purge(conn)] == [3, 1, 0]
    assert instances(conn) == []
    assert purge(conn, "0 seconds") == 0
    assert_invariants(conn)


@pytest.mark.parametrize(("older_than", "batch_size", "match"), [
    ("30 days", 0, "batch_size"), ("30 days", 100_001, "batch_size"),
    ("30 days", None, "batch_size"), ("-1 day", 10, "older_than"),
    ("100000 years", 10, "older_than"), (None, 10, "older_than")])
def test_bad_arguments_are_refused_and_change_nothing(conn: Conn, older_than: str | None,
                                                      batch_size: int | None,
                                                      match: str) -> None:
    t0 = db_now(conn)
    one_of_each(conn)
    set_clock(conn, t0 + 31 * DAY)
    before = batch_state(conn)
    with raises_sqlstate("PB007", match):
        conn.execute("select pgbatch.purge_batch_history(%s::interval, %s)",
                     [older_than, batch_size])
    assert batch_state(conn) == before


def test_a_worker_login_may_purge(db: TestDatabase, conn: Conn) -> None:
    one_of_each(conn)
    with psycopg.connect(db.worker_dsn, autocommit=True) as worker:
        assert scalar(worker, "select pgbatch.purge_batch_history('0 seconds', 10)") == 4
    assert instances(conn) == []


async def _leader_tick(dsn: str, cfg: MaintenanceConfig) -> Maintenance:
    client = await AsyncClient.connect(dsn, max_size=2)
    boot = uuid.uuid4()
    maintenance = Maintenance(dsn, client, "purge-node", boot, cfg)
    try:
        await client.register_node("purge-node", boot, {})
        await maintenance.tick()  # takes the lease, then runs every due service in turn
        assert maintenance.is_leader
        return maintenance
    finally:
        maintenance.stop()
        await maintenance.run()
        await client.close()


def test_the_maintenance_leader_purges_old_history(db: TestDatabase, conn: Conn) -> None:
    one_of_each(conn)
    later: datetime = db_now(conn) + 31 * DAY
    # every connection of this loop sees the database clock 31 days on
    dsn = make_conninfo(db.dsn, options=f"-c pgbatch.fake_now={later.isoformat()}")
    cfg = MaintenanceConfig(batch_purge_size=3)
    assert cfg.batch_retention == timedelta(days=30)
    maintenance = asyncio.run(_leader_tick(dsn, cfg))
    assert maintenance.stats.batch_purged == 4  # two calls: 3, then 1
    assert maintenance.stats.services["purge_batch_history"].runs == 1
    assert instances(conn) == []

    kept = BatchServices(MaintenanceConfig(batch_retention=None), MaintenanceStats())
    # None keeps batch history for ever (the timed-resume and gate sweeps still run)
    assert [s.name for s in kept.services()] == ["resume_due_executions", "expire_gates"]


@pytest.mark.parametrize("kwargs", [{"batch_retention": timedelta(days=-1)},
                                    {"batch_retention": timedelta(days=400_000)},
                                    {"batch_purge_size": 0}])
def test_bad_retention_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises((InvalidArgument, ValueError)):
        MaintenanceConfig(**kwargs)
