# ruff: noqa: N802 - tests are named after the ids of BATCH.md (test_K5_...)
"""Many nodes, faults and restarts (BATCH.md §9.2; tests K5, K6, K8, K18, H8):
concurrent tick callers on separate connections, a lock-interleaved tick,
fault points that raise or kill at the moment between the fire insert and
the watermark update, a PostgreSQL crash-restart during a due tick, real
worker processes booting together, and the watermark under random
concurrent callers. I8 is checked after each test."""

from __future__ import annotations

import contextlib
import functools
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.batch_helpers import register
from tests.conftest import PgTestServer, TestDatabase
from tests.helpers import cloned_database, run_threads, scalar, set_clock
from tests.schedule_helpers import (
    MIN,
    T0,
    ScheduleProcs,
    assert_i8,
    create,
    faketime_library,
    fired_at,
    fires,
    i8_checked,  # noqa: F401 - the fixture of pytestmark
    jobs_of,
    schedule,
    tick,
)
from tests.worker_harness import DONE_TABLE_DDL, ProcGroup, wait_until

pytestmark = pytest.mark.usefixtures("i8_checked")

Conn = psycopg.Connection[Any]

#: The advisory lock key a fault point blocks on while the test holds it.
FAULT_LOCK = 7_700_001


@pytest.fixture
def conn(db: TestDatabase) -> Iterator[Conn]:
    c = db.connect()
    yield c
    assert_i8(c)


def _node(db: TestDatabase, name: str) -> Conn:
    return db.connect(application_name=name)


def _waiting(conn: Conn, application_name: str) -> bool:
    return bool(scalar(conn, "select count(*) > 0 from pg_stat_activity where application_name = %s"
                       " and wait_event_type = 'Lock'", [application_name]))


def test_K5_sixteen_nodes_boot_at_once(db: TestDatabase, conn: Conn) -> None:
    set_clock(conn, T0)
    for i in range(10):
        create(conn, f"s{i}", cron_expr="*/5 * * * *", catchup_window=timedelta(hours=1))
    nodes = [_node(db, f"node-{i}") for i in range(16)]
    barrier = threading.Barrier(16)
    decided: list[list[dict[str, Any]]] = [[] for _ in nodes]
    boot = T0 + 47 * MIN   # down since 12:00: 12:05 ... 12:45 missed

    def boot_node(i: int) -> None:
        set_clock(nodes[i], boot)
        barrier.wait()
        decided[i] = tick(nodes[i], f"node-{i}")

    run_threads([lambda i=i: boot_node(i) for i in range(16)])   # type: ignore[misc]
    for c in nodes:
        c.close()
    total = [d for per_node in decided for d in per_node]
    assert sorted(d["schedule_id"] for d in total) == [f"s{i}" for i in range(10)]
    for i in range(10):
        assert fired_at(conn, f"s{i}") == [T0 + 45 * MIN]
        assert [f["coalesced_count"] for f in fires(conn, f"s{i}")] == [8]
        assert jobs_of(conn, f"s{i}") == 1
        assert schedule(conn, f"s{i}")["last_fire_at"] == T0 + 45 * MIN


#: Worker processes of the process K5: sixteen, as BATCH.md asks. A 2-core box bears them
#: (each is one asyncio worker, idle but for its ticks; about 70 connections in all under
#: the test server's max_connections of 300); they boot slowly, but the start lock makes
#: them begin at the same moment once all are loaded.
K5_PROCESSES = 16
#: The advisory lock key the K5 processes wait on before their workers start.
K5_START_LOCK = 7_700_005


def test_K5_sixteen_worker_processes_boot_at_once(
        db: TestDatabase, conn: Conn, tmp_path: Path) -> None:
    """Sixteen real worker processes (K5_PROCESSES: why sixteen is bearable on two cores)
    load, wait on one advisory lock held by the test, and are let go together after every
    node was down for a day; ten cron schedules are due with a catch-up window, and every
    process also defines the same schedule in code. Each due occurrence fires exactly once
    (one ledger row, one queue job), the in-code schedule is created once, and I8 holds."""
    conn.execute(DONE_TABLE_DDL)
    names = [f"s{i}" for i in range(10)]
    for name in names:
        create(conn, name, cron_expr="*/5 * * * *", queue="sched",
               payload={"task": "record", "kwargs": {}}, catchup_window=timedelta(days=2))
    conn.execute("update pgbatch.schedule set effective_from = now() - interval '1 day',"
                 " next_due_at = pgbatch.cron_next(cron_expr, tz, now() - interval '1 day')")
    down_since = schedule(conn, "s0")["effective_from"]
    in_code: dict[str, Any] = {"name": "heartbeat", "every": 1, "task": "record",
                               "catch_up_missed_within": 60}
    conn.execute("select pg_advisory_lock(%s)", [K5_START_LOCK])
    with ScheduleProcs(db.dsn, tmp_path) as group:
        procs = [group.spawn(f"w{i}", node_id=f"w{i}", schedules=[in_code],
                             start_lock=K5_START_LOCK) for i in range(K5_PROCESSES)]
        wait_until(lambda: scalar(conn, "select count(*) from pg_stat_activity where"
                                  " wait_event_type = 'Lock' and wait_event = 'advisory'")
                   == K5_PROCESSES, 300, "every process to wait on the start lock")
        conn.execute("select pg_advisory_unlock(%s)", [K5_START_LOCK])
        for p in procs:
            p.wait_event("up", timeout=120)
        wait_until(lambda: scalar(conn, "select count(*) from pgbatch.schedule_fire"
                                  " where schedule_id like 's%%'") >= 10,
                   60, "every due schedule to be decided")
        seen = len(fired_at(conn, "heartbeat"))
        wait_until(lambda: len(fired_at(conn, "heartbeat")) >= seen + 3, 60,
                   "the nodes to go on ticking")
        for p in procs:
            p.stop(timeout=60)
    for name in names:
        # the catch-up fire; on a slow machine the run may outlast the next */5
        # occurrence, whose fire is on time: each occurrence at most once
        rows = fires(conn, name)
        assert rows, name
        assert {(r["source"], r["outcome"]) for r in rows} == {("schedule", "fired")}, name
        assert len({r["fire_at"] for r in rows}) == len(rows), name
        assert all(r["coalesced_count"] == 0 for r in rows[1:]), name
        latest = scalar(conn, "select pgbatch.cron_prev('*/5 * * * *', 'UTC', %s)",
                        [rows[0]["decided_at"]])
        assert rows[0]["fire_at"] == latest
        assert rows[0]["coalesced_count"] == scalar(
            conn, "select count(*) - 1 from pgbatch.cron_occurrences('*/5 * * * *', 'UTC', %s, %s)",
            [down_since, latest])
        assert rows[0]["node_id"] in {f"w{i}" for i in range(K5_PROCESSES)}
        assert jobs_of(conn, name) == len(rows)
    assert scalar(conn, "select count(*) from pgbatch.schedule where id = 'heartbeat'") == 1
    assert schedule(conn, "heartbeat")["updated_at"] == schedule(conn, "heartbeat")["created_at"]


def _fault_point(conn: Conn, point: str, action: str) -> None:
    """A trigger at ``point`` (after_fire_insert: after the ledger insert;
    before_watermark_update: before the schedule row's watermark moves) that
    raises or blocks on FAULT_LOCK."""
    body = ("raise exception 'fault point %', tg_name" if action == "raise"
            else f"perform pg_advisory_xact_lock({FAULT_LOCK})")
    conn.execute(f"create function public.fault() returns trigger language plpgsql as $$"
                 f" begin {body}; return new; end $$")
    if point == "after_fire_insert":
        conn.execute("create trigger after_fire_insert after insert on pgbatch.schedule_fire"
                     " for each row execute function public.fault()")
    else:
        conn.execute("create trigger before_watermark_update before update on pgbatch.schedule"
                     " for each row when (new.last_fire_at is distinct from old.last_fire_at)"
                     " execute function public.fault()")


def _no_fault(conn: Conn) -> None:
    conn.execute("drop function public.fault() cascade")


def _nothing_persisted(conn: Conn) -> None:
    assert fires(conn, "c") == []
    assert jobs_of(conn, "c") == 0
    assert schedule(conn, "c")["last_fire_at"] is None


@pytest.mark.parametrize("point", ["after_fire_insert", "before_watermark_update"])
def test_K6_a_fault_point_raising_persists_nothing(conn: Conn, point: str) -> None:
    set_clock(conn, T0)
    create(conn, "c", cron_expr="* * * * *", catchup_window=timedelta(hours=1))
    _fault_point(conn, point, "raise")
    with pytest.raises(psycopg.errors.RaiseException, match="fault point"):
        tick(conn, "n", T0 + 3 * MIN)
    _nothing_persisted(conn)
    _no_fault(conn)
    assert [d["fire_at"] for d in tick(conn, "n")] == [T0 + 3 * MIN]
    assert tick(conn, "n") == []
    assert fired_at(conn, "c") == [T0 + 3 * MIN]
    assert jobs_of(conn, "c") == 1


@pytest.mark.parametrize("point", ["after_fire_insert", "before_watermark_update"])
def test_K6_a_node_killed_at_a_fault_point_persists_nothing(
        db: TestDatabase, conn: Conn, point: str) -> None:
    set_clock(conn, T0)
    create(conn, "c", cron_expr="* * * * *", catchup_window=timedelta(hours=1))
    _fault_point(conn, point, "block")
    control = _node(db, "control")
    control.execute("select pg_advisory_lock(%s)", [FAULT_LOCK])
    victim = _node(db, "victim")
    set_clock(victim, T0 + 3 * MIN)
    pid = victim.info.backend_pid
    errors: list[BaseException] = []

    def run() -> None:
        try:
            tick(victim, "victim")
        except psycopg.Error as exc:
            errors.append(exc)

    t = threading.Thread(target=run, name="pgb-test-victim")
    t.start()
    wait_until(lambda: _waiting(conn, "victim"), 20, "the tick to block at the fault point")
    # another node meanwhile: the row is locked, it moves on without waiting
    other = _node(db, "other")
    assert tick(other, "other", T0 + 3 * MIN) == []
    conn.execute("select pg_terminate_backend(%s)", [pid])
    t.join(20)
    assert not t.is_alive()
    assert len(errors) == 1
    victim.close()
    control.close()
    _nothing_persisted(conn)
    _no_fault(conn)
    assert [d["fire_at"] for d in tick(other, "other", T0 + 3 * MIN)] == [T0 + 3 * MIN]
    other.close()
    assert jobs_of(conn, "c") == 1


def test_lock_interleaved_tick_others_skip_and_operators_wait(
        db: TestDatabase, conn: Conn) -> None:
    set_clock(conn, T0)
    create(conn, "c", cron_expr="* * * * *", catchup_window=timedelta(hours=1))
    create(conn, "d", cron_expr="* * * * *", catchup_window=timedelta(hours=1))
    _fault_point(conn, "before_watermark_update", "block")
    control = _node(db, "control")
    control.execute("select pg_advisory_lock(%s)", [FAULT_LOCK])
    a, b, admin = _node(db, "tick-a"), _node(db, "tick-b"), _node(db, "admin")
    for c in (a, b, admin):
        set_clock(c, T0 + 2 * MIN)
    got: dict[str, Any] = {}

    def tick_a() -> None:
        got["a"] = tick(a, "a")

    def pause_c() -> None:
        admin.execute("select pgbatch.pause_schedule('c')")
        got["paused"] = True

    ta = threading.Thread(target=tick_a, name="pgb-test-tick-a")
    ta.start()
    wait_until(lambda: _waiting(conn, "tick-a"), 20, "tick A to hold the first schedule")
    tp = threading.Thread(target=pause_c, name="pgb-test-pause")
    tp.start()
    # B skips what A holds: it neither waits nor fires it again
    got["b"] = tick(b, "b")
    wait_until(lambda: _waiting(conn, "admin"), 20, "pause_schedule to wait for A's row lock")
    assert "paused" not in got
    control.execute("select pg_advisory_unlock(%s)", [FAULT_LOCK])
    ta.join(20)
    tp.join(20)
    assert got["paused"] is True
    for c in (a, b, admin, control):
        c.close()
    decided = [d["schedule_id"] for d in got["a"] + got["b"]]
    assert sorted(decided) == ["c", "d"]
    assert {d["schedule_id"] for d in got["b"]}.isdisjoint({d["schedule_id"] for d in got["a"]})
    _no_fault(conn)
    assert fired_at(conn, "c") == [T0 + 2 * MIN]
    assert fired_at(conn, "d") == [T0 + 2 * MIN]
    assert schedule(conn, "c")["paused_at"] is not None


def _k8_run(database: TestDatabase, settings: list[str]) -> dict[str, list[datetime]]:
    """Create the K8 schedules in ``database`` and tick them with nodes whose
    sessions use ``settings`` (one node each); the fires per schedule."""
    setup = database.connect()
    set_clock(setup, T0)
    create(setup, "berlin", cron_expr="30 2 * * *", tz="Europe/Berlin",
           catchup_window=timedelta(minutes=30))
    create(setup, "seven", cron_expr="*/7 * * * *", catchup_window=timedelta(minutes=30))
    create(setup, "hourly", "interval", every=timedelta(hours=1, minutes=1), anchor=T0,
           catchup_window=timedelta(minutes=30))
    nodes = [database.connect(application_name=f"k8-{i}") for i in range(len(settings))]
    for c, setting in zip(nodes, settings, strict=True):
        c.execute(setting)
    steps, order = random.Random(8), random.Random(9)
    at = T0
    for _ in range(120):
        at += timedelta(minutes=steps.randint(1, 40))
        for c in order.sample(nodes, len(nodes)):
            tick(c, c.info.parameter_status("application_name"), at)
    for c in nodes:
        c.close()
    got = {n: fired_at(setup, n) for n in ("berlin", "seven", "hourly")}
    assert_i8(setup)
    setup.close()
    return got


def test_K8_node_side_clock_and_session_settings_do_not_change_fires(
        db: TestDatabase, pg_server: PgTestServer, template_db: str) -> None:
    """Nodes whose sessions run in far-apart time zones decide exactly what
    nodes with UTC settings decide: the tick takes no time from its caller
    (no argument, no node clock) and its arithmetic does not depend on the
    session's TimeZone."""
    skewed = _k8_run(db, ["set timezone = 'Pacific/Kiritimati'", "set timezone = 'America/Adak'"])
    with cloned_database(pg_server, template_db, "k8") as other:
        synced = _k8_run(other, ["set timezone = 'UTC'"])
    assert skewed == synced
    assert all(skewed.values())


#: The K8 node clocks: libfaketime offsets of the skewed nodes' system clocks.
K8_SKEWS = ("-5m", "+5m")
#: The database times at which the K8 process run decides: late within the windows,
#: the Berlin 02:30 of 2 June 10 minutes late (fired), of 3 June 45 minutes late
#: (skipped_late), dense seconds coalesced by the thousand (capped).
K8_PHASES = (T0 + 20 * MIN + timedelta(seconds=5), T0 + 3 * 60 * MIN + 10 * MIN,
             datetime(2026, 6, 2, 0, 40, tzinfo=T0.tzinfo),
             datetime(2026, 6, 3, 1, 15, tzinfo=T0.tzinfo))


def _k8_setup(conn: Conn) -> None:
    """The K8 schedules, created at T0 (database time)."""
    set_clock(conn, T0)
    create(conn, "berlin", cron_expr="30 2 * * *", tz="Europe/Berlin",
           catchup_window=timedelta(minutes=30))
    create(conn, "seven", cron_expr="*/7 * * * *", catchup_window=timedelta(minutes=30))
    create(conn, "tens", cron_expr="*/10 * * * * *", catchup_window=timedelta(days=1))
    create(conn, "hourly", "interval", every=timedelta(hours=1, minutes=1), anchor=T0,
           catchup_window=timedelta(minutes=30))


def _k8_all_decided(conn: Conn, at: datetime) -> bool:
    """No enabled schedule is due at ``at`` any more."""
    return bool(scalar(conn, "select count(*) = 0 from pgbatch.schedule"
                             " where enabled and next_due_at <= %s", [at]))


def _k8_ledger(conn: Conn) -> list[tuple[Any, ...]]:
    """The ledger without the deciding node."""
    return [tuple(r) for r in conn.execute(
        "select schedule_id, source, fire_at, outcome, coalesced_count, coalesced_capped,"
        " decided_at, job_id is not null from pgbatch.schedule_fire"
        " order by schedule_id, source, fire_at")]


@pytest.mark.skipif(faketime_library() is None,
                    reason="libfaketime is not installed (apt-get install faketime)")
def test_K8_worker_processes_with_skewed_clocks_fire_what_synced_ones_fire(
        db: TestDatabase, conn: Conn, pg_server: PgTestServer, template_db: str,
        tmp_path: Path) -> None:
    """Real worker processes whose system clocks run 5 minutes behind and 5 minutes
    ahead (libfaketime, one offset per process) decide exactly the fires that processes
    with the machine's clock decide in a copy of the same database: same occurrences,
    outcomes, coalesced counts and decision times, because the tick reads only the
    database's clock. The database clock is the test override set for the whole
    database (the processes connect as the superuser, for whom it applies), moved
    through K8_PHASES; in each phase the processes are started, decide every due
    schedule, and are stopped."""
    with cloned_database(pg_server, template_db, "k8sync") as synced_db:
        synced = synced_db.connect()
        groups = [(db, conn, K8_SKEWS, "skewed"), (synced_db, synced, (None, None), "synced")]
        for _, c, _, _ in groups:
            _k8_setup(c)
        for phase, at in enumerate(K8_PHASES):
            for database, c, _, _ in groups:
                c.execute(sql.SQL("alter database {} set pgbatch.fake_now = {}").format(
                    sql.Identifier(database.name), sql.Literal(at.isoformat())))
            with contextlib.ExitStack() as stack:
                started: list[tuple[Any, str | None]] = []
                for database, _, skews, label in groups:
                    procs = stack.enter_context(ScheduleProcs(database.dsn, tmp_path))
                    for i, skew in enumerate(skews):
                        started.append((procs.spawn(f"k8-{label}-{phase}-{i}",
                                                    node_id=f"{label}-{i}", clock_offset=skew,
                                                    superuser=True), skew))
                for p, skew in started:
                    offset = float(p.wait_event("up", timeout=120)["clock"]) - time.time()
                    expected = {None: 0.0, "-5m": -300.0, "+5m": 300.0}[skew]
                    assert abs(offset - expected) < 150, (p.name, skew, offset)
                for _, c, _, _ in groups:
                    wait_until(functools.partial(_k8_all_decided, c, at), 120,
                               f"every schedule due at {at} to be decided")
                for p, _ in started:
                    p.stop(timeout=60)
        for database, c, _, _ in groups:
            c.execute(sql.SQL("alter database {} reset pgbatch.fake_now").format(
                sql.Identifier(database.name)))
        skewed_ledger, synced_ledger = _k8_ledger(conn), _k8_ledger(synced)
        assert skewed_ledger == synced_ledger
        outcomes = {(r[0], r[3]) for r in skewed_ledger}
        assert {("berlin", "fired"), ("berlin", "skipped_late"), ("seven", "fired"),
                ("tens", "fired"), ("hourly", "fired")} <= outcomes
        assert any(r[0] == "tens" and r[5] for r in skewed_ledger)     # coalesced, capped
        assert {r[6] for r in skewed_ledger} == set(K8_PHASES)       # decided at phase times
        nodes = {r[0] for r in conn.execute("select distinct node_id from pgbatch.schedule_fire")}
        assert nodes
        assert nodes <= {"skewed-0", "skewed-1"}
        assert_i8(synced)
        synced.close()


@pytest.mark.parametrize("crash", ["restart", "sigkill"])
def test_K18_postgres_restart_during_a_due_tick(
        pg_server: PgTestServer, db: TestDatabase, crash: str) -> None:
    """The server restarts (``-m immediate``), or the ticking backend is
    SIGKILLed (PostgreSQL then resets every backend and recovers), while a tick
    is between its fire insert and its commit: nothing of it survives, and
    the next tick fires exactly once."""
    if pg_server.server is None:
        pytest.skip(f"cannot crash a {pg_server.kind} server that this session does not own")
    conn = db.connect()
    set_clock(conn, T0)
    create(conn, "c", cron_expr="* * * * *", catchup_window=timedelta(hours=1))
    _fault_point(conn, "after_fire_insert", "block")
    control = _node(db, "control")
    control.execute("select pg_advisory_lock(%s)", [FAULT_LOCK])
    victim = _node(db, "victim")
    set_clock(victim, T0 + 3 * MIN)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            tick(victim, "victim")
        except psycopg.Error as exc:
            failed.append(exc)

    t = threading.Thread(target=run, name="pgb-test-victim")
    t.start()
    wait_until(lambda: _waiting(conn, "victim"), 20, "the tick to block after its fire insert")
    pid = victim.info.backend_pid
    conn.close()
    if crash == "restart":
        pg_server.restart("immediate")
    else:
        os.kill(pid, signal.SIGKILL)
    t.join(30)
    assert not t.is_alive()
    assert len(failed) == 1
    if crash == "sigkill":
        # the victim's own connection drops at once, the others only when the
        # postmaster resets every backend: connecting before that reset would
        # race it (and the next tests would meet a server in recovery)
        wait_until(lambda: _lost(control), 60, "the server to reset every backend")
    for c in (victim, control):
        c.close()
    recovered = wait_until(lambda: _connect_after_recovery(db), 60,
                           "the server to accept connections")
    assert recovered is not None
    conn = recovered
    _nothing_persisted(conn)
    _no_fault(conn)
    assert [d["fire_at"] for d in tick(conn, "n", T0 + 3 * MIN)] == [T0 + 3 * MIN]
    assert tick(conn, "n", T0 + 3 * MIN) == []
    assert jobs_of(conn, "c") == 1
    assert_i8(conn)
    conn.close()


def _lost(conn: Conn) -> bool:
    """Whether ``conn``'s session is gone."""
    try:
        conn.execute("select 1")
    except psycopg.OperationalError:
        return True
    return False


def _connect_after_recovery(db: TestDatabase) -> Conn | None:
    try:
        return db.connect()
    except psycopg.OperationalError:
        return None   # still in crash recovery


def test_the_watermark_never_moves_back_under_random_concurrent_callers(
        db: TestDatabase, conn: Conn) -> None:
    set_clock(conn, T0)
    names = ["a", "b", "c"]
    create(conn, "a", cron_expr="*/3 * * * *", catchup_window=timedelta(minutes=20))
    create(conn, "b", "interval", every=timedelta(minutes=2), anchor=T0,
           overlap_policy="skip", catchup_window=timedelta(minutes=5))
    create(conn, "c", cron_expr="* * * * *")
    conn.execute("""
        create function public.monotonic_watermark() returns trigger language plpgsql as $$
        begin
            if new.last_fire_at < old.last_fire_at then
                raise exception 'watermark of % moved back from % to %',
                    new.id, old.last_fire_at, new.last_fire_at;
            end if;
            return new;
        end $$;
        create trigger monotonic_watermark before update on pgbatch.schedule
            for each row execute function public.monotonic_watermark()""")
    callers = [_node(db, f"caller-{i}") for i in range(6)]

    def caller(i: int) -> None:
        rng = random.Random(1000 + i)
        c = callers[i]
        at = T0
        for _ in range(60):
            at += timedelta(seconds=rng.randint(-90, 150))   # clocks of callers jitter back too
            set_clock(c, at)
            action = rng.random()
            name = rng.choice(names)
            if action < 0.75:
                tick(c, f"caller-{i}")
            elif action < 0.82:
                c.execute("select pgbatch.pause_schedule(%s)", [name])
            elif action < 0.9:
                c.execute("select pgbatch.resume_schedule(%s, catch_up => %s)",
                          [name, rng.random() < 0.5])
            elif action < 0.95:
                c.execute("select pgbatch.trigger_schedule(%s)", [name])
            else:
                c.execute("select pgbatch.update_schedule(%s, misfire_threshold => %s)",
                          [name, timedelta(seconds=rng.randint(0, 120))])

    run_threads([lambda i=i: caller(i) for i in range(len(callers))], timeout=300)  # type: ignore[misc]
    for c in callers:
        c.close()
    # how many fire depends on the interleaving (a caller whose clock is ahead fires the
    # latest occurrence, the others then find nothing due): the run must have fired some
    assert sum(len(fired_at(conn, n)) for n in names) > 5


def test_H8_real_workers_booting_together_fire_each_due_schedule_once(
        db: TestDatabase, conn: Conn, tmp_path: Path) -> None:
    """After all nodes were down, three worker processes start at once with
    ten schedules due (five enqueue a task, five launch a batch job): each
    schedule fires exactly once, through the workers' own ticks, and the
    queue jobs run."""
    conn.execute(DONE_TABLE_DDL)
    register(conn, "report")
    now = scalar(conn, "select now()")
    year_ago = now - timedelta(days=366)
    for i in range(5):
        create(conn, f"task{i}", cron_expr="0 0 1 * *", queue="sched",
               payload={"task": "record", "kwargs": {}}, catchup_window=timedelta(days=40))
        create(conn, f"job{i}", cron_expr="0 0 1 * *", job_name="report",
               params={"n": i}, catchup_window=timedelta(days=40))
    conn.execute("update pgbatch.schedule set effective_from = %s,"
                 " next_due_at = pgbatch.cron_next(cron_expr, tz, %s)", [year_ago, year_ago])
    latest = scalar(conn, "select pgbatch.cron_prev('0 0 1 * *', 'UTC', %s)", [now])
    with ProcGroup(db.dsn, tmp_path) as group:
        procs = [group.spawn(f"w{i}", node_id=f"w{i}", queue="sched",
                             maintenance_interval=0.5) for i in range(3)]
        wait_until(lambda: scalar(conn, "select count(*) from pgbatch.schedule_fire") == 10,
                   60, "every due schedule to be decided")
        wait_until(lambda: scalar(conn, "select count(*) from worker_test_done") == 5,
                   60, "the five scheduled task jobs to run")
        for p in procs:  # a slow starter may not have its signal handlers yet
            p.wait_event("idle", timeout=120)
            p.stop()
    rows = conn.execute("select schedule_id, source, fire_at, outcome, coalesced_count, node_id"
                        " from pgbatch.schedule_fire order by schedule_id").fetchall()
    assert len(rows) == 10
    assert all(r[1:5] == ("schedule", latest, "fired", 11) for r in rows), rows
    assert {r[5] for r in rows} <= {"w0", "w1", "w2"}
    assert scalar(conn, "select count(*) from pgbatch.job_execution where schedule_id like 'job%%'"
                  " and fire_at = %s", [latest]) == 5


def test_a_schedule_created_from_psql_fires_through_a_running_worker(
        db: TestDatabase, conn: Conn, tmp_path: Path) -> None:
    conn.execute(DONE_TABLE_DDL)
    with ProcGroup(db.dsn, tmp_path) as group:
        w = group.spawn("w", node_id="w", queue="sched", maintenance_interval=0.5)
        w.wait_event("idle")
        conn.execute("""select pgbatch.create_schedule('psql-made', 'interval', every => '1 second',
                        queue => 'sched', payload => '{"task": "record"}',
                        catchup_window => '1 minute')""")
        wait_until(lambda: scalar(conn, "select count(*) from worker_test_done") >= 2, 60,
                   "two fires of the schedule to run on the worker")
        conn.execute("select pgbatch.pause_schedule('psql-made')")
        w.stop()
    done = scalar(conn, "select count(*) from worker_test_done d join pgbatch.job_archive a"
                  " on a.id = d.job_id where a.payload -> 'schedule' ->> 'id' = 'psql-made'")
    assert done >= 2
    history = conn.execute("select run_status from pgbatch.schedule_fires('psql-made')"
                           " where run_status = 'succeeded'").fetchall()
    assert len(history) >= 2
