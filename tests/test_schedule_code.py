"""Schedules defined in code (``App.schedule``), registered by real worker
processes at start through ``Schedules.ensure`` / ``pgbatch.ensure_schedule``:
declared → registered → fires; a changed definition is updated without a
retroactive fire; many workers registering at once make one schedule. I8 is
checked after each test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgbatch
from pgbatch import App, AsyncClient
from pgbatch.batch import Job, TaskletStep, use_batch
from pgbatch.schedule import Schedules
from pgbatch.schedule.in_code import register_schedules
from tests.conftest import TestDatabase
from tests.helpers import scalar
from tests.schedule_helpers import (
    ScheduleProcs,
    fired_at,
    fires,
    i8_checked,  # noqa: F401 - the fixture of pytestmark
    jobs_of,
    schedule,
)
from tests.worker_harness import DONE_TABLE_DDL, wait_until

pytestmark = pytest.mark.usefixtures("i8_checked")

Conn = psycopg.Connection[Any]

HEARTBEAT: dict[str, Any] = {"name": "heartbeat", "every": 1, "task": "record",
                             "catch_up_missed_within": 60}


@pytest.fixture
def conn(db: TestDatabase) -> Iterator[Conn]:
    c = db.connect()
    c.execute(DONE_TABLE_DDL)
    yield c
    c.close()


def _fire_count(conn: Conn, name: str) -> int:
    return int(scalar(conn, "select count(*) from pgbatch.schedule_fire where schedule_id = %s"
                      " and outcome = 'fired'", [name]))


def _simulate_downtime(conn: Conn, name: str, days: int = 1) -> None:
    """As if every node had been down for ``days``: the schedule is due since then."""
    conn.execute("update pgbatch.schedule set effective_from = now() - make_interval(days => %s),"
                 " next_due_at = pgbatch.cron_next(cron_expr, tz,"
                 " now() - make_interval(days => %s)) where id = %s", [days, days, name])


def test_app_schedule_builds_definitions() -> None:
    app = App("postgresql://unused")

    @app.task(name="reports.nightly", queue="reports")
    def nightly() -> None:
        return None

    d = app.schedule("nightly", cron="0 2 * * *", tz="Europe/Berlin", task=nightly,
                     catch_up_missed_within=7200)
    assert d.sql_args()["queue"] == "reports"
    assert d.sql_args()["payload"] == {"task": "reports.nightly", "kwargs": {}}
    assert d.catch_up_missed_within == timedelta(hours=2)
    assert app.schedules["nightly"].definition is d
    with pytest.raises(ValueError, match="already defined"):
        app.schedule("nightly", cron="0 3 * * *", task="x")
    with pytest.raises(pgbatch.InvalidSchedule, match="exactly one of cron"):
        app.schedule("both", cron="0 3 * * *", every=60, task="x")


def test_declared_in_code_registered_fires_and_a_change_never_fires_retroactively(
        db: TestDatabase, conn: Conn, tmp_path: Path) -> None:
    # hourly at a minute half an hour from now: never due on time while the test runs
    # (a real-time fire would be legitimate and blur "no retroactive fire"), 24 times a day
    minute = int(scalar(conn, "select extract(minute from now())"))
    expr, changed_expr = (f"{(minute + 30 + k) % 60} * * * *" for k in (0, 1))
    report: dict[str, Any] = {"name": "report", "cron": expr, "task": "record",
                              "catch_up_missed_within": 2 * 86400}
    with ScheduleProcs(db.dsn, tmp_path) as group:
        # declared in code -> registered by the worker at start -> fires through its ticks
        w = group.spawn("w1", node_id="w1", schedules=[report, HEARTBEAT])
        w.wait_event("up")
        assert schedule(conn, "report")["updated_at"] == schedule(conn, "report")["created_at"]
        assert schedule(conn, "report")["cron_expr"] == expr
        wait_until(lambda: scalar(conn, "select count(*) from worker_test_done d"
                                  " join pgbatch.job_archive a on a.id = d.job_id"
                                  " where a.payload -> 'schedule' ->> 'id' = 'heartbeat'") >= 2,
                   60, "two fires of the in-code heartbeat to run")
        w.stop()
        before = schedule(conn, "report")

        # all nodes down for a day (report is due, within its window), then a deploy
        # changes report's expression: updated, no retroactive fire
        _simulate_downtime(conn, "report")
        changed = {**report, "cron": changed_expr}
        w = group.spawn("w2", node_id="w2", schedules=[changed, HEARTBEAT])
        w.wait_event("up")
        seen = _fire_count(conn, "heartbeat")
        wait_until(lambda: _fire_count(conn, "heartbeat") >= seen + 2, 60,
                   "the worker to tick twice after registering")
        w.stop()
        after = schedule(conn, "report")
        assert after["cron_expr"] == changed_expr
        assert after["version"] == before["version"] + 1
        assert after["effective_from"] > before["effective_from"]
        assert after["last_fire_at"] == before["last_fire_at"]       # the watermark is kept
        assert fires(conn, "report") == []
        assert jobs_of(conn, "report") == 0
        assert after["next_due_at"] == scalar(
            conn, "select pgbatch.cron_next(%s, 'UTC', %s)",
            [changed_expr, after["effective_from"]])
        heartbeat = schedule(conn, "heartbeat")                      # unchanged: no update
        assert heartbeat["updated_at"] == heartbeat["created_at"]

        # the control: the same downtime with the definition unchanged catches up once
        _simulate_downtime(conn, "report")
        w = group.spawn("w3", node_id="w3", schedules=[changed, HEARTBEAT])
        wait_until(lambda: _fire_count(conn, "report") == 1, 60, "report to catch up once")
        seen = _fire_count(conn, "heartbeat")
        wait_until(lambda: _fire_count(conn, "heartbeat") >= seen + 2, 60, "two more ticks")
        w.stop()
    latest = scalar(conn, "select pgbatch.cron_prev(%s, 'UTC', %s)",
                    [changed_expr, fired_at(conn, "report")[0]])
    assert fired_at(conn, "report") == [latest]
    assert fires(conn, "report")[0]["coalesced_count"] >= 20     # a day of hourly occurrences
    assert jobs_of(conn, "report") == 1
    assert schedule(conn, "report")["updated_at"] == after["updated_at"]   # w3: no update


def test_ensure_is_a_no_op_when_unchanged_and_keeps_a_pause(db: TestDatabase, conn: Conn) -> None:
    app = App(db.dsn)
    try:
        d = app.schedule("sync", every=900, queue="q", payload={"a": 1},
                         catch_up_missed_within=600)
        s = Schedules(app.client)
        first = s.ensure(d)
        assert (first.version, first.enabled) == (0, True)
        assert s.ensure(d).version == 0
        paused = s.pause("sync").version
        again = s.ensure(pgbatch.schedule.ScheduleDefinition(
            "sync", every=timedelta(seconds=900), queue="q", payload={"a": 2}))
        assert again.version == paused + 1
        assert again.enabled is False                              # a pause is the operator's
        assert again.anchor == first.anchor                        # no anchor given: kept
        assert again.catch_up_missed_within in (None, timedelta(0))
        same = s.ensure(pgbatch.schedule.ScheduleDefinition(
            "sync", every=timedelta(seconds=900), queue="q", payload={"a": 2}))
        assert same.version == paused + 1
        with pytest.raises(pgbatch.InvalidCron):
            s.ensure(pgbatch.schedule.ScheduleDefinition("sync", cron="61 * * * *", queue="q"))
        assert s.get("sync").version == paused + 1
        assert s.get("sync").payload == {"a": 2}
    finally:
        app.close()


def test_a_job_target_registers_its_job_first(db: TestDatabase, conn: Conn) -> None:
    """A schedule in code that launches a batch job of the App (given by name, or
    as the ``Job``) is registered on a database that has never seen the job: the
    worker start registers the job definition before the schedule."""
    app = App(db.dsn)
    nightly = Job("nightly-etl", [TaskletStep("t", lambda: None)])
    weekly = Job("weekly-etl", [TaskletStep("t", lambda: None)])
    use_batch(app, [nightly])
    app.schedule("etl-by-name", cron="0 1 * * *", job="nightly-etl", params={"full": True})
    app.schedule("etl-by-job", cron="0 2 * * 0", job=weekly)

    async def start() -> list[str]:
        client = await AsyncClient.connect(db.dsn, min_size=1, max_size=2)
        try:
            done = await register_schedules(client, app.schedules, app.executors.values())
        finally:
            await client.close()
        return [s.name for s in done]

    try:
        assert asyncio.run(start()) == ["etl-by-name", "etl-by-job"]
    finally:
        app.close()
    assert schedule(conn, "etl-by-name")["params"] == {"full": True}
    assert schedule(conn, "etl-by-job")["job_name"] == "weekly-etl"
    assert scalar(conn, "select count(*) from pgbatch.job_definition"
                  " where job_name in ('nightly-etl', 'weekly-etl')") == 2
