# ruff: noqa: N802 - tests are named after the ids of BATCH.md (test_K15_...)
"""Time zones and DST through the scheduler's tick (BATCH.md §9.4; tests K15,
K16): the clock override walks across each 2026 transition of New York,
Berlin and Lord Howe while the schedules fire; the tick's occurrences agree
with the cron functions and with each other for random schedules."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import PgTestServer, TestDatabase
from tests.helpers import cloned_database, set_clock
from tests.schedule_helpers import (
    assert_i8,
    create,
    fired_at,
    fires,
    i8_checked,  # noqa: F401 - the fixture of pytestmark
    tick,
)
from tests.test_cron import SPECIAL_ZONES, cron_expressions

pytestmark = pytest.mark.usefixtures("i8_checked")

Conn = psycopg.Connection[Any]

#: (zone, spring-forward day, fall-back day) of 2026.
TRANSITIONS = [
    ("America/New_York", date(2026, 3, 8), date(2026, 11, 1)),
    ("Europe/Berlin", date(2026, 3, 29), date(2026, 10, 25)),
    ("Australia/Lord_Howe", date(2026, 10, 4), date(2026, 4, 5)),
]
#: Hourly fires of one local day: (0 * * * *, 30 * * * *) on (spring-forward, fall-back) days.
HOURLY = {
    "America/New_York": ((23, 23), (25, 25)),
    "Europe/Berlin": ((23, 23), (25, 25)),
    "Australia/Lord_Howe": ((24, 24), (24, 25)),
}
STEP = timedelta(minutes=10)


def _local_day(tz: str, day: date) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    return start, end


def _first_instant(tz: str, day: date, hour: int, minute: int) -> datetime:
    """Local ``hour:minute`` of ``day`` as cron maps it: fold=0 (a gap time is
    shifted by the gap, a repeated time is its first instant)."""
    return datetime.combine(day, time(hour, minute), ZoneInfo(tz)).astimezone(UTC)


def _walk(conn: Conn, start: datetime, end: datetime) -> None:
    at = start
    while at <= end:
        tick(conn, "n", at)
        at += STEP


@pytest.mark.in_tx
@pytest.mark.parametrize(("tz", "spring", "fall"), TRANSITIONS)
def test_K15_transition_days_through_the_tick(conn: Conn, tz: str, spring: date,
                                              fall: date) -> None:
    for day, season in ((spring, 0), (fall, 1)):
        start, end = _local_day(tz, day)
        suffix = f"-{season}"
        set_clock(conn, start - timedelta(hours=2))
        window: dict[str, Any] = {"catchup_window": STEP + timedelta(minutes=1), "tz": tz}
        create(conn, "hourly" + suffix, cron_expr="0 * * * *", **window)
        create(conn, "half" + suffix, cron_expr="30 * * * *", **window)
        create(conn, "0230" + suffix, cron_expr="30 2 * * *", **window)
        create(conn, "0130" + suffix, cron_expr="30 1 * * *", **window)
        create(conn, "range" + suffix, cron_expr="*/30 2-3 * * *", **window)
        create(conn, "24h" + suffix, "interval", every=timedelta(hours=24),
               anchor=start - timedelta(hours=1), catchup_window=STEP + timedelta(minutes=1))
        _walk(conn, start - timedelta(hours=1), end + timedelta(hours=25))

        def in_day(name: str, start: datetime = start, end: datetime = end) -> list[datetime]:
            return [t for t in fired_at(conn, name) if start <= t < end]

        hourly, half = HOURLY[tz][season]
        assert len(in_day("hourly" + suffix)) == hourly, (tz, day)
        assert len(in_day("half" + suffix)) == half, (tz, day)
        assert in_day("0230" + suffix) == [_first_instant(tz, day, 2, 30)], (tz, day)
        assert in_day("0130" + suffix) == [_first_instant(tz, day, 1, 30)], (tz, day)
        expected_range = sorted({_first_instant(tz, day, h, m) for h in (2, 3) for m in (0, 30)})
        assert in_day("range" + suffix) == expected_range, (tz, day)
        interval = fired_at(conn, "24h" + suffix)
        assert len(interval) >= 2
        assert {b - a for a, b in itertools.pairwise(interval)} == {timedelta(hours=24)}
        assert all(f["coalesced_count"] == 0 and f["outcome"] == "fired"
                   for f in fires(conn, "hourly" + suffix) + fires(conn, "half" + suffix)
                   if start <= f["fire_at"] < end)
    assert_i8(conn)


# --------------------------------------------------------------------------- K16 property


@pytest.fixture(scope="module")
def k16_db(pg_server: PgTestServer, template_db: str) -> Iterator[TestDatabase]:
    with cloned_database(pg_server, template_db, "k16") as database:
        yield database


@pytest.fixture(scope="module")
def kc(k16_db: TestDatabase) -> Iterator[Conn]:
    with k16_db.connect() as c:
        yield c


def _as_schedule(kind: str, expr: str, tz: str, every: timedelta, anchor: datetime) -> str:
    """A pgbatch.schedule row literal of a cron or interval schedule (not stored)."""
    return ("(select s from (select (pgbatch._schedule_checked(row("
            "'p', %s, %s, %s, %s, %s, null, null, 'q', '{}', null, null, '60 seconds', null,"
            " 'allow', true, null, now(), null, null, 0, null, null, '', 0, now(), now()"
            ")::pgbatch.schedule)) s) x)")


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(["cron", "interval"]), expr=cron_expressions(),
       tz=st.sampled_from(SPECIAL_ZONES),
       every=st.integers(1, 7 * 86400).map(lambda s: timedelta(seconds=s)),
       anchor=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
       t=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 1, 1)),
       back=st.integers(1, 40 * 86400))
def test_K16_the_ticks_occurrences_agree_with_next_and_with_each_other(
        kc: Conn, kind: str, expr: str, tz: str, every: timedelta, anchor: datetime,
        t: datetime, back: int) -> None:
    """For a cron or interval schedule, the tick's view (latest occurrence in
    (after, until] and their count) agrees with repeated next occurrences, and
    for cron with cron_prev/cron_next: next(latest) > until >= latest."""
    anchor_utc, until = anchor.replace(tzinfo=UTC), t.replace(tzinfo=UTC)
    after = until - timedelta(seconds=back)
    row = kc.execute(
        "with s as (select " + _as_schedule(kind, expr, tz, every, anchor_utc) + " as s)"
        " select (m).latest, (m).occurrences, (m).capped,"
        " pgbatch._schedule_next_after(s.s, %s), pgbatch._schedule_next_after(s.s, (m).latest)"
        " from s, lateral (select pgbatch._schedule_missed(s.s, %s, %s) m) x",
        [kind, expr if kind == "cron" else None, tz,
         every if kind == "interval" else None, anchor_utc if kind == "interval" else None,
         after, after, until]).fetchone()
    assert row is not None
    latest, count, capped, first, after_latest = row
    if latest is None:
        assert count == 0
        assert first is None or first > until
        return
    assert after < latest <= until
    assert after_latest is None or after_latest > until
    if not capped:
        walked = [first]
        while len(walked) <= count:
            nxt = kc.execute("select pgbatch._schedule_next_after(" +
                             _as_schedule(kind, expr, tz, every, anchor_utc) + ", %s)",
                             [kind, expr if kind == "cron" else None, tz,
                              every if kind == "interval" else None,
                              anchor_utc if kind == "interval" else None, walked[-1]]).fetchone()
            assert nxt is not None
            walked.append(nxt[0])
        assert walked[count - 1] == latest
        assert walked[count] is None or walked[count] > until
        assert all(a < b for a, b in itertools.pairwise(w for w in walked if w is not None))
    if kind == "cron":
        prev_next = kc.execute(
            "select pgbatch.cron_prev(%s, %s, %s), pgbatch.cron_next(%s, %s, %s)",
            [expr, tz, until, expr, tz, until]).fetchone()
        assert prev_next == (latest, after_latest)
