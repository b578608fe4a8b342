# ruff: noqa: N802 - tests are named after the ids of BATCH.md (test_K1_...)
"""The tick's decisions on one session (BATCH.md §9.2, §9.3; tests K1-K4, K7,
K9-K14, K17): on-time fires, catch-up after downtime, the window, the
watermark, pause/resume, definition changes, once, manual, overlap, the scan
cap. Time is the database clock override; I8 is checked after each test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tests.batch_helpers import claim_item, register
from tests.helpers import claim_one, set_clock
from tests.schedule_helpers import (
    MIN,
    T0,
    assert_i8,
    create,
    fired_at,
    fires,
    i8_checked,  # noqa: F401 - the fixture of pytestmark
    jobs_of,
    schedule,
    tick,
)

Conn = psycopg.Connection[Any]

pytestmark = [pytest.mark.in_tx, pytest.mark.usefixtures("i8_checked")]


@pytest.fixture(autouse=True)
def _i8(conn: Conn) -> Iterator[None]:
    yield
    assert_i8(conn)


def test_K1_on_time_firing_with_five_nodes_for_an_hour(conn: Conn) -> None:
    set_clock(conn, T0)
    create(conn, "every-minute", cron_expr="* * * * *")
    for minute in range(1, 61):
        at = T0 + minute * MIN + timedelta(seconds=1)
        for node in range(5):
            tick(conn, f"n{node}", at + timedelta(milliseconds=100 * node))
    got = fired_at(conn, "every-minute")
    assert got == [T0 + m * MIN for m in range(1, 61)]
    assert jobs_of(conn, "every-minute") == 60
    assert all(f["coalesced_count"] == 0 for f in fires(conn, "every-minute"))
    assert {f["node_id"] for f in fires(conn, "every-minute")} == {"n0"}


def test_K2_downtime_catch_up_fires_the_latest_missed_occurrence_once(conn: Conn) -> None:
    set_clock(conn, T0)
    create(conn, "c", cron_expr="*/10 * * * *", catchup_window=timedelta(hours=1))
    tick(conn, "n", T0 + 10 * MIN)           # fires 12:10
    # all nodes down across 12:20, 12:30, 12:40; back at 12:45
    decided = tick(conn, "n", T0 + 45 * MIN)
    assert [(d["fire_at"], d["outcome"], d["coalesced_count"]) for d in decided] == [
        (T0 + 40 * MIN, "fired", 2)]
    s = schedule(conn, "c")
    assert s["last_fire_at"] == T0 + 40 * MIN
    assert s["next_due_at"] == T0 + 50 * MIN
    assert s["coalesced_total"] == 2
    for at in (T0 + 46 * MIN, T0 + 49 * MIN):
        assert tick(conn, "n", at) == []
    assert fired_at(conn, "c") == [T0 + 10 * MIN, T0 + 40 * MIN]
    assert jobs_of(conn, "c") == 2


def test_K3_restart_outside_the_window_records_skipped_late(conn: Conn) -> None:
    set_clock(conn, T0)
    create(conn, "c", cron_expr="*/10 * * * *", catchup_window=timedelta(minutes=15))
    decided = tick(conn, "n", T0 + 2 * 60 * MIN + 25 * MIN)   # 14:25; latest missed 14:20
    assert [(d["fire_at"], d["outcome"]) for d in decided] == [(T0 + 140 * MIN, "fired")]
    decided = tick(conn, "n", T0 + 5 * 60 * MIN + 20 * MIN)   # 17:20 -> 17:00? no: 17:20 is on time
    assert decided[0]["outcome"] == "fired"
    # down from 17:20 to 19:59 with a 15 minute window: the latest missed (19:50) is 9 min old
    # -> fires; make it hopeless instead with a shorter window
    conn.execute("select pgbatch.update_schedule('c', catchup_window => '1 minute',"
                 " misfire_threshold => '30 seconds')")
    decided = tick(conn, "n", T0 + 7 * 60 * MIN + 55 * MIN)   # 19:55; latest 19:50, 5 min late
    assert [(d["fire_at"], d["outcome"]) for d in decided] == [(T0 + 470 * MIN, "skipped_late")]
    assert jobs_of(conn, "c") == 2
    s = schedule(conn, "c")
    assert s["last_fire_at"] == T0 + 470 * MIN
    assert s["last_outcome"] == "skipped_late"
    assert tick(conn, "n", T0 + 7 * 60 * MIN + 57 * MIN) == []
    decided = tick(conn, "n", T0 + 8 * 60 * MIN + 10 * MIN)   # 20:00 ... 20:10 -> 20:10 on time
    assert [(d["fire_at"], d["outcome"]) for d in decided] == [(T0 + 490 * MIN, "fired")]


def test_K4_without_a_window_only_lateness_within_the_threshold_fires(conn: Conn) -> None:
    set_clock(conn, T0)
    create(conn, "c", cron_expr="0 * * * *", misfire_threshold=timedelta(seconds=90))
    on_time = tick(conn, "n", T0 + 60 * MIN + timedelta(seconds=90))
    assert [d["outcome"] for d in on_time] == ["fired"]
    late = tick(conn, "n", T0 + 120 * MIN + timedelta(seconds=91))
    assert [(d["fire_at"], d["outcome"]) for d in late] == [(T0 + 120 * MIN, "skipped_late")]
    assert jobs_of(conn, "c") == 1


def test_K7_a_lagging_node_finds_nothing_to_do(conn: Conn) -> None:
    set_clock(conn, T0)
    create(conn, "c", cron_expr="* * * * *")
    assert len(tick(conn, "fast", T0 + 3 * MIN)) == 1
    # a node whose view is older (it would have computed 12:01 or 12:02): no-op
    for at in (T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN):
        assert tick(conn, "lagging", at) == []
    # even called directly with the watermark's own occurrence: the ledger refuses it
    row = conn.execute(
        "select pgbatch._schedule_record_fire(s, 'schedule', s.last_fire_at, 'fired', 0, false,"
        " 'lagging', null, pgbatch.now()) is null from pgbatch.schedule s where id = 'c'"
    ).fetchone()
    assert row == (True,)
    assert fired_at(conn, "c") == [T0 + 3 * MIN]


def test_K9_a_pruned_ledger_never_refires(conn: Conn) -> None:
    set_clock(conn, T0)
    create(conn, "c", cron_expr="* * * * *", catchup_window=timedelta(days=1))
    for m in range(1, 6):
        tick(conn, "n", T0 + m * MIN)
    conn.execute("delete from pgbatch.schedule_fire where schedule_id = 'c'"
                 " and fire_at < (select max(fire_at) from pgbatch.schedule_fire)")
    assert len(fires(conn, "c")) == 1
    for at in (T0 + 5 * MIN, T0 + 5 * MIN + timedelta(seconds=30)):
        assert tick(conn, "n", at) == []
    assert [d["fire_at"] for d in tick(conn, "n", T0 + 6 * MIN)] == [T0 + 6 * MIN]
    assert jobs_of(conn, "c") == 6


def test_K10_a_definition_change_never_fires_retroactively(conn: Conn) -> None:
    set_clock(conn, T0)
    create(conn, "c", cron_expr="0 * * * *", catchup_window=timedelta(hours=6))
    # at 12:40 the expression becomes "*/15": 12:15 and 12:30 lie before the change
    set_clock(conn, T0 + 40 * MIN)
    conn.execute("select pgbatch.update_schedule('c', cron_expr => '*/15 * * * *')")
    s = schedule(conn, "c")
    assert s["effective_from"] == T0 + 40 * MIN
    assert s["next_due_at"] == T0 + 45 * MIN
    assert tick(conn, "n", T0 + 44 * MIN) == []
    assert [d["fire_at"] for d in tick(conn, "n", T0 + 46 * MIN)] == [T0 + 45 * MIN]
    # a change that changes nothing keeps the version and the timing state
    before = schedule(conn, "c")
    conn.execute("select pgbatch.update_schedule('c', cron_expr => '*/15 * * * *', tz => 'UTC')")
    assert schedule(conn, "c") == before
    # a non-timing change (the payload) keeps effective_from
    conn.execute("""select pgbatch.update_schedule('c', payload => '{"task": "t2"}')""")
    after = schedule(conn, "c")
    assert after["effective_from"] == before["effective_from"]
    assert after["version"] == before["version"] + 1
    assert fired_at(conn, "c") == [T0 + 45 * MIN]


def test_K11_resume_skips_the_pause_unless_asked_to_catch_up(conn: Conn) -> None:
    set_clock(conn, T0)
    create(conn, "a", cron_expr="*/10 * * * *", catchup_window=timedelta(hours=1))
    create(conn, "b", cron_expr="*/10 * * * *", catchup_window=timedelta(hours=1))
    tick(conn, "n", T0 + 10 * MIN)
    conn.execute("select pgbatch.pause_schedule('a'), pgbatch.pause_schedule('b')")
    assert tick(conn, "n", T0 + 45 * MIN) == []          # 12:20, 12:30, 12:40 during the pause
    conn.execute("select pgbatch.resume_schedule('a')")
    conn.execute("select pgbatch.resume_schedule('b', catch_up => true)")
    by_name = {d["schedule_id"]: d for d in tick(conn, "n", T0 + 46 * MIN)}
    assert set(by_name) == {"b"}
    assert (by_name["b"]["fire_at"], by_name["b"]["coalesced_count"]) == (T0 + 40 * MIN, 2)
    assert schedule(conn, "a")["next_due_at"] == T0 + 50 * MIN
    tick(conn, "n", T0 + 50 * MIN)
    assert fired_at(conn, "a") == [T0 + 10 * MIN, T0 + 50 * MIN]
    assert fired_at(conn, "b") == [T0 + 10 * MIN, T0 + 40 * MIN, T0 + 50 * MIN]
    # catch-up beyond the window: the latest missed is recorded skipped_late
    conn.execute("select pgbatch.delete_schedule('a'), pgbatch.pause_schedule('b')")
    set_clock(conn, T0 + 5 * 60 * MIN)
    conn.execute("select pgbatch.resume_schedule('b', catch_up => true)")
    decided = tick(conn, "n", T0 + 5 * 60 * MIN + 5 * MIN)   # 17:05: latest 17:00 in window
    assert [d["outcome"] for d in decided] == ["fired"]
    conn.execute("select pgbatch.pause_schedule('b')")
    set_clock(conn, T0 + 9 * 60 * MIN)
    conn.execute("select pgbatch.update_schedule('b', catchup_window => '0')")
    conn.execute("select pgbatch.resume_schedule('b', catch_up => true)")
    decided = tick(conn, "n", T0 + 9 * 60 * MIN + 5 * MIN)   # 21:05: latest 21:00 is 5 min old
    assert [(d["fire_at"], d["outcome"]) for d in decided] == [(T0 + 540 * MIN, "skipped_late")]


def test_K12_once_fires_once_or_is_skipped_late_and_disabled(conn: Conn) -> None:
    set_clock(conn, T0)
    create(conn, "soon", "once", once_at=T0 + 5 * MIN)
    create(conn, "missed", "once", once_at=T0 + 5 * MIN, catchup_window=timedelta(minutes=10))
    assert sorted(d["schedule_id"] for d in tick(conn, "n", T0 + 5 * MIN)) == ["missed", "soon"]
    for name in ("soon", "missed"):
        s = schedule(conn, name)
        assert (s["enabled"], s["next_due_at"], s["last_fire_at"]) == (False, None, T0 + 5 * MIN)
    create(conn, "late", "once", once_at=T0 + 10 * MIN, catchup_window=timedelta(minutes=10))
    decided = tick(conn, "n", T0 + 60 * MIN)
    assert [(d["schedule_id"], d["outcome"]) for d in decided] == [("late", "skipped_late")]
    assert schedule(conn, "late")["enabled"] is False
    assert tick(conn, "n", T0 + 120 * MIN) == []
    assert jobs_of(conn, "soon") + jobs_of(conn, "missed") + jobs_of(conn, "late") == 2


def test_K13_manual_trigger_is_idempotent_and_leaves_the_watermark(conn: Conn) -> None:
    set_clock(conn, T0)
    create(conn, "m", "manual")
    assert schedule(conn, "m")["next_due_at"] is None
    first = conn.execute("select job_id from pgbatch.trigger_schedule('m', request_id => 'r1')"
                         ).fetchone()
    again = conn.execute("select job_id from pgbatch.trigger_schedule('m', request_id => 'r1')"
                         ).fetchone()
    assert first == again
    assert first is not None
    assert first[0] is not None
    conn.execute("select pgbatch.trigger_schedule('m', request_id => 'r2')")   # same instant
    conn.execute("select pgbatch.trigger_schedule('m')")
    assert [f["request_id"] for f in fires(conn, "m", "manual")] == ["r1", "r2", None]
    assert len({f["fire_at"] for f in fires(conn, "m")}) == 3
    assert jobs_of(conn, "m") == 3
    assert schedule(conn, "m")["last_fire_at"] is None
    assert tick(conn, "n", T0 + 600 * MIN) == []
    # on a cron schedule the watermark does not move either
    create(conn, "c", cron_expr="0 * * * *")
    set_clock(conn, T0 + 601 * MIN)
    conn.execute("select pgbatch.trigger_schedule('c')")
    assert schedule(conn, "c")["last_fire_at"] is None


def test_K14_overlap_skip_records_skipped_overlap_allow_runs_both(conn: Conn) -> None:
    set_clock(conn, T0)
    create(conn, "skip", cron_expr="* * * * *", queue="qs", overlap_policy="skip")
    create(conn, "allow", cron_expr="* * * * *", queue="qa")
    tick(conn, "n", T0 + MIN)
    claim_one(conn, "qs")                                 # the 12:01 run of "skip" is running
    decided = {d["schedule_id"]: d["outcome"] for d in tick(conn, "n", T0 + 2 * MIN)}
    assert decided == {"skip": "skipped_overlap", "allow": "fired"}
    assert jobs_of(conn, "allow") == 2
    assert jobs_of(conn, "skip") == 1
    # the run ends: the next occurrence fires
    job = conn.execute("select id, claim_token from pgbatch.job where queue = 'qs'").fetchone()
    assert job is not None
    conn.execute("select pgbatch.ack(%s, %s)", list(job))
    decided = {d["schedule_id"]: d["outcome"] for d in tick(conn, "n", T0 + 3 * MIN)}
    assert decided == {"skip": "fired", "allow": "fired"}


def test_K14_overlap_queue_waits_for_the_previous_run(conn: Conn) -> None:
    set_clock(conn, T0)
    create(conn, "q", cron_expr="*/5 * * * *", queue="qq", overlap_policy="queue",
           catchup_window=timedelta(minutes=30))
    tick(conn, "n", T0 + 5 * MIN)
    claim_one(conn, "qq")
    assert tick(conn, "n", T0 + 10 * MIN) == []
    assert schedule(conn, "q")["last_outcome"] == "waiting_overlap"
    assert tick(conn, "n", T0 + 16 * MIN) == []           # 12:10 and 12:15 wait
    job = conn.execute("select id, claim_token from pgbatch.job where queue = 'qq'").fetchone()
    assert job is not None
    conn.execute("select pgbatch.ack(%s, %s)", list(job))
    decided = tick(conn, "n", T0 + 17 * MIN)
    assert [(d["fire_at"], d["outcome"], d["coalesced_count"]) for d in decided] == [
        (T0 + 15 * MIN, "fired", 1)]


def test_K14_overlap_skip_for_a_batch_target(conn: Conn) -> None:
    register(conn, "nightly")
    set_clock(conn, T0)
    create(conn, "b", cron_expr="* * * * *", job_name="nightly", params={"region": "eu"},
           overlap_policy="skip")
    (first,) = tick(conn, "n", T0 + MIN)
    assert first["outcome"] == "fired"
    assert first["job_execution_id"] is not None
    row = conn.execute("select x.schedule_id, x.fire_at, i.identifying_params"
                       " from pgbatch.job_execution x join pgbatch.job_instance i"
                       " on i.id = x.instance_id where x.id = %s",
                       [first["job_execution_id"]]).fetchone()
    assert row is not None
    assert row[0] == "b"
    assert row[1] == T0 + MIN
    assert set(row[2]) == {"region", "schedule", "fire_at"}
    claim_item(conn)
    assert [d["outcome"] for d in tick(conn, "n", T0 + 2 * MIN)] == ["skipped_overlap"]


def test_K17_scan_cap_a_decade_behind_is_one_bounded_decision(conn: Conn) -> None:
    decade_ago = T0 - timedelta(days=3653)
    set_clock(conn, decade_ago)
    create(conn, "s", cron_expr="* * * * * *", catchup_window=timedelta(days=1))
    decided = tick(conn, "n", T0 + timedelta(milliseconds=500))
    assert [(d["fire_at"], d["outcome"], d["coalesced_count"], d["coalesced_capped"])
            for d in decided] == [(T0, "fired", 999, True)]
    assert schedule(conn, "s")["last_fire_at"] == T0
    create(conn, "i", "interval", every=timedelta(seconds=1), anchor=decade_ago,
           catchup_window=timedelta(days=1))
    conn.execute("update pgbatch.schedule set effective_from = %s, next_due_at = %s"
                 " where id = 'i'", [decade_ago, decade_ago + timedelta(seconds=1)])
    (d,) = tick(conn, "n", T0 + timedelta(milliseconds=500))
    assert (d["fire_at"], d["coalesced_capped"]) == (T0, True)


def test_interval_schedules_count_from_their_anchor_in_utc(conn: Conn) -> None:
    set_clock(conn, T0)
    create(conn, "i", "interval", every=timedelta(minutes=7), anchor=T0 - timedelta(minutes=3))
    assert schedule(conn, "i")["next_due_at"] == T0 + 4 * MIN
    got = [d["fire_at"] for m in range(1, 30) for d in tick(conn, "n", T0 + m * MIN)]
    assert got == [T0 + (4 + 7 * k) * MIN for k in range(4)]
    set_clock(conn, T0 + 29 * MIN)
    conn.execute("select pgbatch.update_schedule('i', every => '1 hour')")
    assert schedule(conn, "i")["next_due_at"] == T0 + 57 * MIN


def test_a_refused_launch_is_recorded_failed_and_blocks_nothing(conn: Conn) -> None:
    register(conn, "gone")
    set_clock(conn, T0)
    create(conn, "b", cron_expr="* * * * *", job_name="gone")
    create(conn, "c", cron_expr="* * * * *")
    conn.execute("delete from pgbatch.job_definition where job_name = 'gone'")
    decided = {d["schedule_id"]: d for d in tick(conn, "n", T0 + MIN)}
    assert decided["c"]["outcome"] == "fired"
    assert decided["b"]["outcome"] == "failed"
    assert decided["b"]["error"].startswith("PB042")
    assert schedule(conn, "b")["last_fire_at"] == T0 + MIN
