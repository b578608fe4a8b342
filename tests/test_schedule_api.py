"""The scheduler's SQL lifecycle functions refuse bad input and change nothing;
the Python API (sync and async), the maintenance service, the roles and the
``pgbatch schedules`` CLI."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

import pgbatch
from pgbatch import AsyncClient, cli
from pgbatch.schedule import AsyncSchedules, ScheduleDefinition, Schedules
from pgbatch.worker.maintenance import Maintenance
from tests.batch_helpers import register
from tests.conftest import TestDatabase
from tests.helpers import open_client, set_clock
from tests.schedule_helpers import (
    MIN,
    T0,
    assert_i8,
    create,
    digest,
    fires,
    i8_checked,  # noqa: F401 - the fixture of pytestmark
    schedule,
    tick,
)

pytestmark = pytest.mark.usefixtures("i8_checked")

Conn = psycopg.Connection[Any]

# --------------------------------------------------------------------------- bad input

CRON = "select pgbatch.create_schedule('s', 'cron', cron_expr => %s, queue => 'q')"
#: (call, parameters, SQLSTATE): each must be refused with that code and change nothing.
BAD_CALLS: list[tuple[str, list[Any], str]] = [
    (CRON, ["61 * * * *"], "PB020"),
    (CRON, ["* * *"], "PB020"),
    (CRON, ["@reboot"], "PB020"),
    ("select pgbatch.create_schedule('s', 'cron', cron_expr => '* * * * *', tz => 'Mars/Olympus',"
     " queue => 'q')", [], "PB021"),
    ("select pgbatch.create_schedule('s', 'cron', cron_expr => '* * * * *', tz => 'PST',"
     " queue => 'q')", [], "PB021"),
    ("select pgbatch.create_schedule('s', 'interval', every => %s, queue => 'q')",
     [timedelta(0)], "PB061"),
    ("select pgbatch.create_schedule('s', 'interval', every => %s, queue => 'q')",
     [timedelta(minutes=-5)], "PB061"),
    ("select pgbatch.create_schedule('s', 'interval', every => '1 month', queue => 'q')", [],
     "PB061"),
    ("select pgbatch.create_schedule('s', 'cron', cron_expr => '* * * * *', queue => 'q',"
     " catchup_window => '-1 second')", [], "PB061"),
    ("select pgbatch.create_schedule('s', 'cron', cron_expr => '* * * * *', queue => 'q',"
     " misfire_threshold => '-1 second')", [], "PB061"),
    ("select pgbatch.create_schedule('s', 'cron', cron_expr => '* * * * *', queue => 'q',"
     " overlap_policy => 'replace')", [], "PB061"),
    ("select pgbatch.create_schedule('s', 'hourly', queue => 'q')", [], "PB061"),
    ("select pgbatch.create_schedule('s', 'cron', queue => 'q')", [], "PB061"),
    ("select pgbatch.create_schedule('s', 'manual', cron_expr => '* * * * *', queue => 'q')", [],
     "PB061"),
    ("select pgbatch.create_schedule('s', 'manual')", [], "PB061"),
    ("select pgbatch.create_schedule('s', 'manual', queue => 'q', job_name => 'j')", [], "PB061"),
    ("select pgbatch.create_schedule(' s', 'manual', queue => 'q')", [], "PB061"),
    ("select pgbatch.create_schedule(null, 'manual', queue => 'q')", [], "PB061"),
    ("select pgbatch.create_schedule('s', 'manual', queue => '')", [], "PB005"),
    ("select pgbatch.create_schedule('s', 'manual', queue => 'q', payload => '[1]')", [], "PB006"),
    ("select pgbatch.create_schedule('s', 'manual', job_name => 'unknown-job')", [], "PB042"),
    ("select pgbatch.create_schedule('s', 'manual', job_name => 'j',"
     " params => '{\"fire_at\": 1}')", [], "PB040"),
    ("select pgbatch.create_schedule('s', 'once', once_at => 'infinity', queue => 'q')", [],
     "PB013"),
    ("select pgbatch.create_schedule('existing', 'manual', queue => 'q')", [], "PB062"),
    ("select pgbatch.update_schedule('nope', cron_expr => '* * * * *')", [], "PB060"),
    ("select pgbatch.update_schedule('existing', cron_expr => '* * 31 2 *')", [], "PB020"),
    ("select pgbatch.update_schedule('existing', tz => 'Nowhere/Land')", [], "PB021"),
    ("select pgbatch.update_schedule('existing', catchup_window => '-1 hour')", [], "PB061"),
    ("select pgbatch.update_schedule('existing', kind => 'interval')", [], "PB061"),
    ("select pgbatch.delete_schedule('nope')", [], "PB060"),
    ("select pgbatch.pause_schedule('nope')", [], "PB060"),
    ("select pgbatch.resume_schedule('nope')", [], "PB060"),
    ("select pgbatch.trigger_schedule('nope')", [], "PB060"),
    ("select pgbatch.schedules('nope')", [], "PB060"),
    ("select pgbatch.schedule_fires('nope')", [], "PB060"),
    ("select pgbatch.schedule_fires('existing', \"limit\" => 0)", [], "PB007"),
    ("select pgbatch.tick_schedules(max_schedules => 0)", [], "PB007"),
    ("select pgbatch.backfill_schedule('manual', %s, %s)", [T0 - MIN, T0], "PB061"),
    ("select pgbatch.backfill_schedule('existing', %s, %s)", [T0, T0 - MIN], "PB007"),
    ("select pgbatch.backfill_schedule('existing', %s, %s)", [T0, T0 + 60 * MIN], "PB013"),
    ("select pgbatch.backfill_schedule('existing', %s, %s)",
     [T0 - timedelta(days=2), T0], "PB007"),                            # 2880 occurrences
    ("select pgbatch.backfill_schedule('existing', %s, %s)", [T0 - 5 * MIN, T0], "PB007"),
]


@pytest.fixture
def seeded(conn: Conn) -> Conn:
    """A database with a schedule that fired (watermark 11:58) and a manual one."""
    register(conn, "j")
    set_clock(conn, T0 - 10 * MIN)
    create(conn, "existing", cron_expr="* * * * *", catchup_window=timedelta(hours=1))
    create(conn, "manual", "manual")
    tick(conn, "n", T0 - 2 * MIN)
    set_clock(conn, T0)
    return conn


@pytest.mark.in_tx
@pytest.mark.parametrize(("call", "params", "code"), BAD_CALLS,
                         ids=[f"{c[2]}-{i}" for i, c in enumerate(BAD_CALLS)])
def test_bad_input_is_refused_and_changes_nothing(seeded: Conn, call: str, params: list[Any],
                                                  code: str) -> None:
    before = digest(seeded)
    with pytest.raises(psycopg.Error) as info:
        seeded.execute(call, params)
    assert info.value.sqlstate == code, info.value
    assert digest(seeded) == before
    mapped = pgbatch._errors.translate(info.value)
    assert mapped is not None
    assert mapped.sqlstate == code


@pytest.mark.in_tx
def test_backfill_fires_each_occurrence_once_and_leaves_the_watermark(seeded: Conn) -> None:
    wm = schedule(seeded, "existing")["last_fire_at"]
    got = seeded.execute("select fire_at, source from pgbatch.backfill_schedule("
                         "'existing', %s, %s, force => true)", [T0 - 5 * MIN, T0 - 3 * MIN]
                         ).fetchall()
    assert got == [(T0 - m * MIN, "backfill") for m in (5, 4, 3)]
    again = seeded.execute("select count(*) from pgbatch.backfill_schedule("
                           "'existing', %s, %s, force => true)", [T0 - 5 * MIN, T0]).fetchone()
    assert again == (3,)                            # only 11:58, 11:59 and 12:00 were new
    assert schedule(seeded, "existing")["last_fire_at"] == wm
    assert len(fires(seeded, "existing", "backfill")) == 6
    assert_i8(seeded)


# --------------------------------------------------------------------------- Python API


def test_the_sync_api(db: TestDatabase) -> None:
    with open_client(db.dsn) as client:
        api = Schedules(client)
        made = api.create(ScheduleDefinition(
            "nightly", cron="0 2 * * *", tz="Europe/Berlin", task="reports.nightly",
            kwargs={"full": True}, catch_up_missed_within=timedelta(hours=1)))
        assert (made.kind, made.target, made.queue) == ("cron", "queue", "default")
        assert made.payload == {"task": "reports.nightly", "kwargs": {"full": True}}
        assert made.next_due_at is not None
        with pytest.raises(pgbatch.ScheduleAlreadyExists):
            api.create(ScheduleDefinition("nightly", manual=True, queue="q"))
        assert api.ensure(ScheduleDefinition(
            "nightly", cron="0 2 * * *", tz="Europe/Berlin", task="reports.nightly",
            kwargs={"full": True}, catch_up_missed_within=timedelta(hours=1))) == made
        changed = api.ensure(ScheduleDefinition(
            "nightly", cron="0 3 * * *", tz="Europe/Berlin", task="reports.nightly",
            kwargs={"full": True}))
        assert (changed.cron, changed.catch_up_missed_within) == ("0 3 * * *", timedelta(0))
        assert changed.version == made.version + 1
        assert api.pause("nightly").paused
        assert not api.resume("nightly", catch_up=True).paused
        fire = api.trigger("nightly", request_id="by-hand")
        assert (fire.source, fire.outcome, fire.run_status) == ("manual", "fired", "pending")
        assert api.trigger("nightly", request_id="by-hand") == fire
        assert [f.request_id for f in api.history("nightly")] == ["by-hand"]
        assert [s.name for s in api.list()] == ["nightly"]
        assert api.get("nightly").last_outcome == "fired"
        assert api.tick("node-x") == []
        with pytest.raises(pgbatch.InvalidCron):
            api.update("nightly", cron_expr="0 25 * * *")
        with pytest.raises(pgbatch.InvalidSchedule):
            api.create(ScheduleDefinition("bad", every=timedelta(seconds=-1), queue="q"))
        assert api.delete("nightly")
        with pytest.raises(pgbatch.ScheduleNotFound):
            api.get("nightly")


def test_definitions_need_exactly_one_timing_and_read_json() -> None:
    with pytest.raises(pgbatch.InvalidSchedule):
        ScheduleDefinition("x", cron="* * * * *", every=timedelta(seconds=5))
    with pytest.raises(pgbatch.InvalidSchedule):
        ScheduleDefinition("x")
    d = ScheduleDefinition.from_json(json.loads(
        '{"name": "n", "cron": "0 * * * *", "timeZone": "Asia/Tokyo", "task": "t",'
        ' "scheduleCatchUpWindow": 600, "overlapPolicy": "skip", "onceAt": null}'))
    assert (d.kind, d.tz, d.catch_up_missed_within, d.overlap_policy) == (
        "cron", "Asia/Tokyo", timedelta(minutes=10), "skip")
    with pytest.raises(pgbatch.InvalidSchedule, match="unknown field"):
        ScheduleDefinition.from_json({"name": "n", "manual": True, "colour": "red"})


def test_the_async_api_and_the_service_tick_on_every_node(db: TestDatabase) -> None:
    conn = db.connect()
    create(conn, "due", cron_expr="* * * * *", catchup_window=timedelta(hours=1))
    conn.execute("update pgbatch.schedule set effective_from = now() - interval '10 minutes',"
                 " next_due_at = now() - interval '9 minutes'")

    async def scenario() -> None:
        client = await AsyncClient.connect(db.dsn, max_size=2)
        try:
            api = AsyncSchedules(client)
            assert [s.name for s in await api.list()] == ["due"]
            m = Maintenance(db.dsn, client, "node-a", uuid.uuid4())
            service = next(s for s in m.services if s.name == "tick_schedules")
            assert service.scope == "node"
            await m.run_now("tick_schedules")       # not the leader: it runs anyway
            assert not m.is_leader
            (fire,) = await api.history("due")
            assert (fire.outcome, fire.node_id, fire.coalesced_count) == ("fired", "node-a", 9)
            made = await api.create(ScheduleDefinition("m", manual=True, queue="q"))
            assert made.kind == "manual"
            assert (await api.trigger("m")).outcome == "fired"
            assert await api.delete("m")
        finally:
            await client.close()

    asyncio.run(scenario())
    assert_i8(conn)


def test_roles(db: TestDatabase) -> None:
    conn = db.connect()
    create(conn, "r", cron_expr="* * * * *")
    for role, allowed, refused in (
            ("pgbatch_worker", ["select pgbatch.tick_schedules()"],
             ["select pgbatch.pause_schedule('r')", "select * from pgbatch.schedules()"]),
            ("pgbatch_producer", [], ["select pgbatch.tick_schedules()",
                                      "select pgbatch.trigger_schedule('r')"]),
            ("pgbatch_admin", ["select pgbatch.pause_schedule('r')",
                               "select * from pgbatch.schedules()",
                               "select * from pgbatch.schedule_fires('r')"],
             ["select pgbatch.tick_schedules()"])):
        for call in allowed:
            with conn.transaction(force_rollback=True):
                conn.execute(f"set local role {role}")
                conn.execute(call)
        for call in refused:
            with conn.transaction(force_rollback=True):
                conn.execute(f"set local role {role}")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(call)


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def call(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err
    return call


@pytest.fixture
def cli_db(db: TestDatabase) -> str:
    return db.dsn


def test_the_cli(cli_db: str, run: Callable[..., tuple[int, str, str]]) -> None:
    dsn = ["--dsn", cli_db]
    code, out, err = run("schedules", "create", "nightly", "--cron", "0 2 * * *", "--tz",
                         "Europe/Berlin", "--task", "reports.nightly", "--kwargs", '{"a": 1}',
                         "--catch-up-within", "3600", *dsn)
    assert code == 0, err
    assert "schedule nightly created: cron 0 2 * * * (Europe/Berlin)" in out
    code, out, _ = run("schedules", "add", "every5", "--every", "300", "--queue", "q", *dsn)
    assert code == 0
    code, out, _ = run("schedules", "list", *dsn)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "WHEN", "TARGET"]
    assert lines[1].startswith("every5")
    assert "every 5m00s" in lines[1]
    assert lines[2].startswith("nightly")
    assert "default: reports.nightly" in lines[2]
    code, out, _ = run("schedules", "list", "--json", *dsn)
    assert [s["name"] for s in json.loads(out)] == ["every5", "nightly"]
    assert run("schedules", "pause", "nightly", *dsn)[0] == 0
    code, out, _ = run("schedules", "show", "nightly", *dsn)
    assert "state: paused" in out
    code, out, _ = run("schedules", "resume", "nightly", "--catch-up", *dsn)
    assert "resumed with catch-up" in out
    code, out, _ = run("schedules", "trigger", "nightly", "--request-id", "r", *dsn)
    assert code == 0
    assert ": fired" in out
    code, out, _ = run("schedules", "history", "nightly", *dsn)
    assert out.splitlines()[1].split()[2:4] == ["manual", "fired"]
    start = (datetime.now(UTC) - timedelta(minutes=14)).isoformat()
    end = datetime.now(UTC).isoformat()
    code, out, _ = run("schedules", "backfill", "every5", start, end, *dsn)
    assert code == 0
    assert "occurrence(s) backfilled" in out
    code, _, err = run("schedules", "create", "bad", "--cron", "61 * * * *", "--queue", "q",
                       *dsn)
    assert code != 0
    assert "invalid cron expression '61 * * * *'" in err
    code, _, err = run("schedules", "pause", "nope", *dsn)
    assert code != 0
    assert "schedule \"nope\" does not exist" in err
    assert run("schedules", "remove", "every5", *dsn)[0] == 0
    assert run("schedules", "delete", "nightly", *dsn)[0] == 0
    code, out, _ = run("schedules", "list", "--json", *dsn)
    assert json.loads(out) == []
