"""Cron evaluation in SQL: cron_parse, cron_next, cron_prev, cron_occurrences (docs/schedules.md).

Parsing (every feature, every refusal), the DST rules of BATCH.md §9.4 around each
2026 transition of America/New_York, Europe/Berlin and Australia/Lord_Howe (K15),
the property that next, prev and the enumeration agree across random expressions,
zones and instants (K16), the scan cap on a dense schedule ten years back (K17), and
a cross-check of the SQL against an independent evaluation with Python's zoneinfo.

The functions change nothing, so every test shares one database.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import make_conninfo

from pgbatch._errors import InvalidCron, InvalidTimeZone, translate
from tests.conftest import PgTestServer, TestDatabase
from tests.helpers import cloned_database, raises_sqlstate, scalar

Conn = psycopg.Connection[Any]

SECOND = timedelta(seconds=1)
#: Examples of the K16 property (derandomized unless PGBATCH_CRON_RANDOM=1).
EXAMPLES = int(os.environ.get("PGBATCH_CRON_EXAMPLES", "60"))
RANDOM = os.environ.get("PGBATCH_CRON_RANDOM", "") not in ("", "0")


@pytest.fixture(scope="module")
def cron_db(pg_server: PgTestServer, template_db: str) -> Iterator[TestDatabase]:
    with cloned_database(pg_server, template_db, "cron") as database:
        yield database


@pytest.fixture(scope="module")
def cc(cron_db: TestDatabase) -> Iterator[Conn]:
    """One autocommit connection for the whole module."""
    with cron_db.connect() as conn:
        yield conn


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def spec(conn: Conn, expr: str) -> dict[str, Any]:
    row = conn.execute(
        "select (s).seconds, (s).minutes, (s).hours, (s).days, (s).months, (s).weekdays,"
        " (s).days_restricted, (s).weekdays_restricted"
        " from (select pgbatch.cron_parse(%s) as s) x", [expr]).fetchone()
    assert row is not None
    keys = ["seconds", "minutes", "hours", "days", "months", "weekdays",
            "days_restricted", "weekdays_restricted"]
    return dict(zip(keys, row, strict=True))


def next_(conn: Conn, expr: str, tz: str, after: datetime) -> datetime | None:
    value: datetime | None = scalar(conn, "select pgbatch.cron_next(%s, %s, %s)", [expr, tz, after])
    return value


def prev(conn: Conn, expr: str, tz: str, at: datetime) -> datetime | None:
    value: datetime | None = scalar(conn, "select pgbatch.cron_prev(%s, %s, %s)", [expr, tz, at])
    return value


def occurrences(conn: Conn, expr: str, tz: str, after: datetime, until: datetime,
                max_count: int = 1000) -> list[datetime]:
    rows = conn.execute("select pgbatch.cron_occurrences(%s, %s, %s, %s, %s)",
                        [expr, tz, after, until, max_count]).fetchall()
    return [r[0] for r in rows]


def missed(conn: Conn, expr: str, tz: str, after: datetime, until: datetime,
           max_scan: int = 1000) -> tuple[datetime | None, int, bool]:
    row = conn.execute("select latest, occurrences, capped"
                       " from pgbatch.cron_missed(%s, %s, %s, %s, %s)",
                       [expr, tz, after, until, max_scan]).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def local_day(conn: Conn, expr: str, tz: str, day: date) -> list[datetime]:
    """The occurrences during one local calendar day in ``tz``."""
    zone = ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).astimezone(UTC)
    return occurrences(conn, expr, tz, start - SECOND, end - SECOND)


# --------------------------------------------------------------------------- parsing

ALL_DAYS = list(range(1, 32))


@pytest.mark.parametrize(("expr", "field", "expected"), [
    ("* * * * *", "seconds", [0]),
    ("* * * * *", "minutes", list(range(60))),
    ("* * * * * *", "seconds", list(range(60))),
    ("15,45 * * * * *", "seconds", [15, 45]),
    ("*/15 * * * *", "minutes", [0, 15, 30, 45]),
    ("1-10/2 * * * *", "minutes", [1, 3, 5, 7, 9]),
    ("50/5 * * * *", "minutes", [50, 55]),
    ("5,1-3,3 * * * *", "minutes", [1, 2, 3, 5]),
    ("0 9-17 * * *", "hours", list(range(9, 18))),
    ("0 0 1,15,31 * *", "days", [1, 15, 31]),
    ("0 0 * JAN-MAR *", "months", [1, 2, 3]),
    ("0 0 * jan,Jul,dec *", "months", [1, 7, 12]),
    ("0 0 * */4 *", "months", [1, 5, 9]),
    ("0 0 * * MON-FRI", "weekdays", [1, 2, 3, 4, 5]),
    ("0 0 * * sun,Sat", "weekdays", [0, 6]),
    ("0 0 * * 7", "weekdays", [0]),
    ("0 0 * * 0,7", "weekdays", [0]),
    ("0 0 * * 5-7", "weekdays", [0, 5, 6]),
    ("0 0 * * *", "weekdays", [0, 1, 2, 3, 4, 5, 6]),
    ("  0   0\t* * *  ", "hours", [0]),
])
def test_parse_fields(cc: Conn, expr: str, field: str, expected: list[int]) -> None:
    assert spec(cc, expr)[field] == expected


@pytest.mark.parametrize(("macro", "equivalent"), [
    ("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"), ("@DAILY", "0 0 * * *"),
])
def test_parse_macros(cc: Conn, macro: str, equivalent: str) -> None:
    assert spec(cc, macro) == spec(cc, equivalent)


def test_parse_records_restricted_day_fields(cc: Conn) -> None:
    assert spec(cc, "0 0 * * *")["days_restricted"] is False
    assert spec(cc, "0 0 1 * *")["days_restricted"] is True
    assert spec(cc, "0 0 */2 * *")["days_restricted"] is False   # Vixie: starts with '*'
    assert spec(cc, "0 0 * * MON")["weekdays_restricted"] is True
    assert spec(cc, "0 0 * * */2")["weekdays_restricted"] is False


@pytest.mark.parametrize(("expr", "message"), [
    ("", "0 fields"),
    ("   ", "0 fields"),
    ("* * * *", "4 fields"),
    ("* * * * * * *", "7 fields"),
    ("60 * * * *", "minute field '60': 60 is out of range 0-59"),
    ("60 * * * * *", "second field '60'"),
    ("* 24 * * *", "hour field '24'"),
    ("* * 0 * *", "day-of-month field '0'"),
    ("* * 32 * *", "day-of-month field '32'"),
    ("* * * 13 *", "month field '13'"),
    ("* * * * 8", "day-of-week field '8'"),
    ("* * * FOO *", "month field 'FOO': 'FOO' is not a value"),
    ("* * * * MONDAY", "day-of-week field 'MONDAY'"),
    ("* * * * * JAN", "day-of-week field 'JAN'"),          # a month name is not a weekday
    ("* * * MON * ", "month field 'MON'"),
    ("5-1 * * * *", "minute field '5-1': range '5-1' is reversed"),
    ("*/0 * * * *", "minute field '*/0': step '0' must be 1 to 60"),
    ("*/61 * * * *", "minute field '*/61'"),
    ("1,,2 * * * *", "minute field '1,,2'"),
    ("1, * * * *", "minute field '1,'"),
    ("*-5 * * * *", "minute field '*-5'"),
    ("1-2-3 * * * *", "minute field '1-2-3'"),
    ("? * * * *", "minute field '?'"),
    ("* * L * *", "day-of-month field 'L'"),
    ("* * * * 5#3", "day-of-week field '5#3'"),
    ("-1 * * * *", "minute field '-1'"),
    ("99999999999 * * * *", "minute field"),
    ("*/99999999999 * * * *", "minute field"),
    ("0 0 30 2 *", "never matches"),
    ("0 0 31 4,6,9,11 *", "never matches"),
    ("@every 5m", "unknown macro"),
    ("@reboot", "@reboot"),
    ("* * * * *\u3000*", "field"),
    ("x" * 300, "longer than 256 characters"),
])
def test_parse_refuses_malformed_cron(cc: Conn, expr: str, message: str) -> None:
    with raises_sqlstate("PB020", message):
        spec(cc, expr)


def test_parse_refuses_null(cc: Conn) -> None:
    with raises_sqlstate("PB020", "NULL"):
        cc.execute("select pgbatch.cron_parse(null)")


def test_reboot_hints_at_a_once_schedule(cc: Conn) -> None:
    with pytest.raises(psycopg.Error) as info:
        cc.execute("select pgbatch.cron_parse('@reboot')")
    mapped = translate(info.value)
    assert isinstance(mapped, InvalidCron)
    assert mapped.detail is not None
    assert "once" in mapped.detail


def test_feb_29_and_dow_or_rule_are_satisfiable(cc: Conn) -> None:
    assert next_(cc, "0 0 29 2 *", "UTC", utc("2097-01-01")) == utc("2104-02-29")
    assert next_(cc, "0 0 31 2 MON", "UTC", utc("2026-02-01")) == utc("2026-02-02")


# --------------------------------------------------------------------------- evaluation


def test_day_of_month_or_day_of_week_when_both_restricted(cc: Conn) -> None:
    # 2026-03-01 is a Sunday: the 13th or any Friday
    got = occurrences(cc, "0 12 13 * FRI", "UTC", utc("2026-03-01"), utc("2026-04-01"))
    assert [d.day for d in got] == [6, 13, 20, 27]
    # day-of-month '*'-prefixed: both must match -> odd days that are Fridays
    got = occurrences(cc, "0 12 */2 * FRI", "UTC", utc("2026-03-01"), utc("2026-04-01"))
    assert [d.day for d in got] == [13, 27]
    got = occurrences(cc, "0 12 * * FRI", "UTC", utc("2026-03-01"), utc("2026-04-01"))
    assert [d.day for d in got] == [6, 13, 20, 27]


def test_sunday_is_0_and_7(cc: Conn) -> None:
    after = utc("2026-03-01")
    assert occurrences(cc, "0 0 * * 0", "UTC", after, after + timedelta(days=30)) == \
        occurrences(cc, "0 0 * * 7", "UTC", after, after + timedelta(days=30))
    assert next_(cc, "0 0 * * SUN", "UTC", after) == utc("2026-03-08")


def test_next_is_strict_and_prev_is_inclusive(cc: Conn) -> None:
    t = utc("2026-05-05T10:15:00")
    assert next_(cc, "*/15 * * * *", "UTC", t) == utc("2026-05-05T10:30:00")
    assert prev(cc, "*/15 * * * *", "UTC", t) == t
    assert prev(cc, "*/15 * * * *", "UTC", t - timedelta(microseconds=1)) == \
        utc("2026-05-05T10:00:00")
    assert next_(cc, "*/15 * * * *", "UTC", t - timedelta(microseconds=1)) == t


def test_seconds_field(cc: Conn) -> None:
    got = occurrences(cc, "*/20 * * * * *", "UTC", utc("2026-01-01"), utc("2026-01-01T00:01"))
    assert got == [utc("2026-01-01T00:00:20"), utc("2026-01-01T00:00:40"),
                   utc("2026-01-01T00:01:00")]


def test_time_zone_applies_to_wall_clock(cc: Conn) -> None:
    assert next_(cc, "0 9 * * *", "Asia/Tokyo", utc("2026-05-31T12:00")) == utc("2026-06-01T00:00")
    assert next_(cc, "0 9 * * *", "America/New_York", utc("2026-06-01")) == \
        utc("2026-06-01T13:00")
    assert next_(cc, "0 9 * * *", "Asia/Kolkata", utc("2026-06-01")) == utc("2026-06-01T03:30")


def test_occurrences_window_and_cap(cc: Conn) -> None:
    after = utc("2026-01-01")
    assert occurrences(cc, "0 * * * *", "UTC", after, after + timedelta(hours=5)) == \
        [after + timedelta(hours=h) for h in range(1, 6)]
    assert len(occurrences(cc, "0 * * * *", "UTC", after, after + timedelta(days=5), 7)) == 7
    assert occurrences(cc, "0 * * * *", "UTC", after, after) == []
    assert occurrences(cc, "0 * * * *", "UTC", after, after - timedelta(days=1)) == []


def test_missed_summarises_the_window(cc: Conn) -> None:
    after = utc("2026-01-01")
    assert missed(cc, "0 * * * *", "UTC", after, after + timedelta(hours=5, minutes=30)) == \
        (after + timedelta(hours=5), 5, False)
    assert missed(cc, "0 * * * *", "UTC", after, after + timedelta(minutes=59)) == (None, 0, False)
    # exactly max_scan occurrences is not capped; one more is
    assert missed(cc, "0 * * * *", "UTC", after, after + timedelta(hours=3), 3) == \
        (after + timedelta(hours=3), 3, False)
    assert missed(cc, "0 * * * *", "UTC", after, after + timedelta(hours=4), 3) == \
        (after + timedelta(hours=4), 3, True)
    # the fold of New York: 25 hourly occurrences on the day, latest the last
    latest, count, capped = missed(cc, "0 * * * *", "America/New_York", utc("2026-11-01T04:00"),
                                   utc("2026-11-02T05:00"))
    assert (latest, count, capped) == (utc("2026-11-02T05:00"), 25, False)


def test_missed_refuses_bad_max_scan(cc: Conn) -> None:
    for max_scan in (0, 10001):
        with raises_sqlstate("PB007", "max_scan"):
            missed(cc, "* * * * *", "UTC", utc("2026-01-01"), utc("2026-01-02"), max_scan)
    with raises_sqlstate("PB013", "until"):
        cc.execute("select pgbatch.cron_missed('* * * * *', 'UTC', now(), 'infinity')")


def test_no_occurrence_in_range_is_null(cc: Conn) -> None:
    assert prev(cc, "0 0 1 1 *", "UTC", utc("1900-06-01")) == utc("1900-01-01")
    assert prev(cc, "0 0 2 1 *", "UTC", utc("1900-01-01T12:00")) is None
    assert next_(cc, "0 0 1 1 *", "UTC", utc("2199-06-01")) is None


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("tz", [
    "Mars/Olympus", "", " ", "utc ", "EST5EDT,M3.2.0,M11.1.0", "<+03>-3", "XYZ3", "PST",
    "America/../Europe/Berlin", "../../etc/passwd", "x" * 100, "Europe/Berlin\n",
])
def test_unknown_time_zone(cc: Conn, tz: str) -> None:
    with raises_sqlstate("PB021", "invalid time zone"):
        next_(cc, "* * * * *", tz, utc("2026-01-01"))


def test_null_time_zone(cc: Conn) -> None:
    for query in ("select pgbatch.cron_next('* * * * *', null, now())",
                  "select pgbatch.cron_prev('* * * * *', null, now())",
                  "select pgbatch.cron_occurrences('* * * * *', null, now(), now())"):
        with pytest.raises(psycopg.Error) as info:
            cc.execute(query)
        assert isinstance(translate(info.value), InvalidTimeZone)


@pytest.mark.parametrize("tz", ["UTC", "GMT", "Etc/GMT+5", "EST5EDT", "Australia/Lord_Howe",
                                "America/Argentina/Buenos_Aires"])
def test_known_time_zones(cc: Conn, tz: str) -> None:
    assert next_(cc, "* * * * *", tz, utc("2026-01-01")) == utc("2026-01-01T00:01")


@pytest.mark.parametrize("at", ["infinity", "-infinity", "1899-12-31 23:59:59Z",
                                "2200-01-01 00:00Z", "10000-01-01Z"])
def test_times_out_of_range(cc: Conn, at: str) -> None:
    for query in ("select pgbatch.cron_next('* * * * *', 'UTC', %s)",
                  "select pgbatch.cron_prev('* * * * *', 'UTC', %s)",
                  "select pgbatch.cron_occurrences('* * * * *', 'UTC', %s, now())",
                  "select pgbatch.cron_occurrences('* * * * *', 'UTC', now(), %s)"):
        with raises_sqlstate("PB013", "invalid"):
            cc.execute(query, [at])


def test_null_times(cc: Conn) -> None:
    with raises_sqlstate("PB013", "NULL"):
        cc.execute("select pgbatch.cron_next('* * * * *', 'UTC', null)")
    with raises_sqlstate("PB013", "NULL"):
        cc.execute("select pgbatch.cron_prev('* * * * *', 'UTC', null)")
    with raises_sqlstate("PB013", "NULL"):
        cc.execute("select pgbatch.cron_occurrences('* * * * *', 'UTC', now(), null)")


@pytest.mark.parametrize("max_count", [None, 0, -1, 10001])
def test_max_count_out_of_range(cc: Conn, max_count: int | None) -> None:
    with raises_sqlstate("PB007", "max_count"):
        occurrences(cc, "* * * * *", "UTC", utc("2026-01-01"), utc("2026-01-02"),
                    max_count)  # type: ignore[arg-type]


def test_a_producer_may_evaluate_cron(cc: Conn, cron_db: TestDatabase) -> None:
    cc.execute("create role cron_test_producer login in role pgbatch_producer")
    try:
        dsn = make_conninfo(cron_db.dsn, user="cron_test_producer")
        with psycopg.connect(dsn, autocommit=True) as producer:
            assert next_(producer, "@hourly", "Europe/Berlin", utc("2026-01-01T00:30")) == \
                utc("2026-01-01T01:00")
            assert prev(producer, "@hourly", "UTC", utc("2026-01-01T00:30")) == utc("2026-01-01")
            assert len(occurrences(producer, "@daily", "UTC", utc("2026-01-01"),
                                   utc("2026-01-08"))) == 7
            assert spec(producer, "@daily")["hours"] == [0]
            with raises_sqlstate("42501"):
                producer.execute("select pgbatch._cron_next_local(pgbatch.cron_parse('@daily'),"
                                 " now()::timestamp)")
    finally:
        cc.execute("drop role cron_test_producer")


# --------------------------------------------------------------------------- K15 DST

#: (zone, spring-forward day, fall-back day) of 2026.
TRANSITIONS = [
    ("America/New_York", date(2026, 3, 8), date(2026, 11, 1)),
    ("Europe/Berlin", date(2026, 3, 29), date(2026, 10, 25)),
    ("Australia/Lord_Howe", date(2026, 10, 4), date(2026, 4, 5)),
]


def test_K15_gap_shifts_forward_by_the_gap(cc: Conn) -> None:  # noqa: N802
    # New York 02:00 EST -> 03:00 EDT: 02:30 does not exist, fires at 03:30 EDT
    assert local_day(cc, "30 2 * * *", "America/New_York", date(2026, 3, 8)) == \
        [utc("2026-03-08T07:30")]
    # Berlin 02:00 CET -> 03:00 CEST: 02:30 fires at 03:30 CEST = 01:30Z
    assert local_day(cc, "30 2 * * *", "Europe/Berlin", date(2026, 3, 29)) == \
        [utc("2026-03-29T01:30")]
    # Lord Howe 02:00 +10:30 -> 02:30 +11: 02:15 fires at 02:45 +11 = 15:45Z the day before
    assert local_day(cc, "15 2 * * *", "Australia/Lord_Howe", date(2026, 10, 4)) == \
        [utc("2026-10-03T15:45")]
    # 02:30 exists there on that day: not shifted
    assert local_day(cc, "30 2 * * *", "Australia/Lord_Howe", date(2026, 10, 4)) == \
        [utc("2026-10-03T15:30")]


def test_K15_fold_fires_once_at_the_first_instant(cc: Conn) -> None:  # noqa: N802
    assert local_day(cc, "30 1 * * *", "America/New_York", date(2026, 11, 1)) == \
        [utc("2026-11-01T05:30")]
    assert local_day(cc, "30 2 * * *", "Europe/Berlin", date(2026, 10, 25)) == \
        [utc("2026-10-25T00:30")]
    # Lord Howe 02:00 +11 -> 01:30 +10:30: 01:45 happens at 14:45Z and 15:15Z
    assert local_day(cc, "45 1 * * *", "Australia/Lord_Howe", date(2026, 4, 5)) == \
        [utc("2026-04-04T14:45")]


def test_K15_fold_with_every_hour_fires_both_instants(cc: Conn) -> None:  # noqa: N802
    got = occurrences(cc, "*/30 * * * *", "America/New_York",
                      utc("2026-11-01T04:59"), utc("2026-11-01T06:59"))
    assert got == [utc("2026-11-01T05:00"), utc("2026-11-01T05:30"),
                   utc("2026-11-01T06:00"), utc("2026-11-01T06:30")]
    for hours in ("*/1", "0-23"):
        assert local_day(cc, f"30 {hours} * * *", "America/New_York", date(2026, 11, 1)) == \
            local_day(cc, "30 * * * *", "America/New_York", date(2026, 11, 1))
    # all hours but one: not a wildcard, the fold fires once
    assert len(local_day(cc, "30 0-22 * * *", "America/New_York", date(2026, 11, 1))) == 23


@pytest.mark.parametrize(("tz", "gap_day", "fold_day"), TRANSITIONS)
def test_K15_hourly_counts_on_transition_days(cc: Conn, tz: str, gap_day: date,  # noqa: N802
                                              fold_day: date) -> None:
    gap = local_day(cc, "0 * * * *", tz, gap_day)
    fold = local_day(cc, "0 * * * *", tz, fold_day)
    assert gap == sorted(set(gap))
    assert fold == sorted(set(fold))
    if tz == "Australia/Lord_Howe":
        # a 30-minute shift never makes a full hour vanish or repeat
        assert (len(gap), len(fold)) == (24, 24)
        assert len(local_day(cc, "30 * * * *", tz, fold_day)) == 25    # 01:30 twice
        assert len(local_day(cc, "30 * * * *", tz, gap_day)) == 24     # 02:30 exists
        assert len(local_day(cc, "*/30 * * * *", tz, gap_day)) == 47   # 02:00 -> 02:30
    else:
        assert (len(gap), len(fold)) == (23, 25)


@pytest.mark.parametrize(("tz", "gap_day", "fold_day"), TRANSITIONS)
def test_K15_gap_day_range_has_no_duplicate_instants(cc: Conn, tz: str, gap_day: date,  # noqa: N802
                                                     fold_day: date) -> None:
    got = local_day(cc, "*/30 2-3 * * *", tz, gap_day)
    assert len(got) == len(set(got))
    assert got == sorted(got)
    # the same in the next/prev view: walking next from the day's start gives the same list
    walked: list[datetime] = []
    cursor = got[0] - SECOND
    while len(walked) < len(got):
        found = next_(cc, "*/30 2-3 * * *", tz, cursor)
        assert found is not None
        walked.append(found)
        cursor = found
    assert walked == got


def test_skipped_day_maps_onto_the_next(cc: Conn) -> None:
    # Pacific/Apia skipped 2011-12-30 (-10 -> +14): its 12:00, read with the old
    # offset, is 2011-12-31 12:00 +14 and counts once
    got = occurrences(cc, "0 12 * * *", "Pacific/Apia", utc("2011-12-28"), utc("2012-01-01"))
    assert got == [utc("2011-12-28T22:00"), utc("2011-12-29T22:00"), utc("2011-12-30T22:00"),
                   utc("2011-12-31T22:00")]


# --------------------------------------------------------------------------- zoneinfo


def reference(minutes: list[int], hours: list[int], tz: str, start: date,
              days: int) -> list[datetime]:
    """Occurrences of ``{minutes} {hours} * * *`` over ``days`` local days, by zoneinfo.

    fold=0 gives the pre-transition offset for a nonexistent time (the gap rule)
    and the first instant of an ambiguous one (the fold rule); fold=1 gives the
    second instant, kept only when the hours are all 24.
    """
    zone = ZoneInfo(tz)
    found: set[datetime] = set()
    for n in range(days):
        d = start + timedelta(days=n)
        for h in hours:
            for m in minutes:
                wall = datetime(d.year, d.month, d.day, h, m, tzinfo=zone)
                first = wall.astimezone(UTC)
                second = wall.replace(fold=1).astimezone(UTC)
                exists = first.astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None)
                found.add(first)
                if exists and second != first and len(hours) == 24:
                    found.add(second)
    return sorted(found)


@pytest.mark.parametrize("tz", ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe",
                                "America/Santiago", "Asia/Tehran", "Pacific/Chatham",
                                "Europe/Dublin", "America/Sao_Paulo"])
@pytest.mark.parametrize(("minutes", "hours"), [
    ([0], list(range(24))), ([0, 30], list(range(24))), ([30], [2]), ([0, 15, 45], [0, 1, 2, 3]),
    ([5], [23]),
])
def test_matches_zoneinfo(cc: Conn, tz: str, minutes: list[int], hours: list[int]) -> None:
    """Three local days around every transition of 2018 and 2026, against zoneinfo."""
    zone = ZoneInfo(tz)
    expr = f"{','.join(map(str, minutes))} {','.join(map(str, hours))} * * *"
    changes = transitions(tz, 2018) + transitions(tz, 2026)
    assert changes, tz
    for change in changes:
        start = (change - timedelta(days=1)).astimezone(zone).date()
        end = start + timedelta(days=3)
        expected = reference(minutes, hours, tz, start, 3)
        got = occurrences(cc, expr, tz,
                          datetime(start.year, start.month, start.day, tzinfo=zone) - SECOND,
                          datetime(end.year, end.month, end.day, tzinfo=zone) - SECOND)
        assert got == expected, (tz, change, expr)


# --------------------------------------------------------------------------- K16 property


def _field(lo: int, hi: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    def value(v: int) -> str:
        return names[v - lo] if names and v - lo < len(names) else str(v)
    single = st.integers(lo, hi).map(value)
    ranged = st.tuples(st.integers(lo, hi), st.integers(lo, hi)).map(
        lambda ab: f"{value(min(ab))}-{value(max(ab))}")
    step = st.tuples(st.sampled_from(["*", ""]), st.integers(1, max(1, (hi - lo) // 2))).map(
        lambda s: f"*/{s[1]}" if s[0] else f"{lo}-{hi}/{s[1]}")
    item = st.one_of(single, ranged, step)
    return st.one_of(st.just("*"), item, st.lists(item, min_size=2, max_size=3).map(",".join))


@st.composite
def cron_expressions(draw: st.DrawFn) -> str:
    seconds = draw(st.one_of(st.none(), _field(0, 59)))
    minute = draw(_field(0, 59))
    hour = draw(_field(0, 23))
    dom = draw(_field(1, 28))
    month = draw(_field(1, 12, ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP",
                                "OCT", "NOV", "DEC"]))
    dow = draw(_field(0, 7, ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]))
    fields = [minute, hour, dom, month, dow]
    return " ".join(([seconds] if seconds is not None else []) + fields)


@pytest.fixture(scope="module")
def zones(cc: Conn) -> list[str]:
    names = [r[0] for r in cc.execute("select name from pg_timezone_names order by name")]
    return [n for n in names if "/" in n and not n.startswith(("posix/", "right/"))]


#: Zones that must be drawn often: 30-minute DST, a skipped day, historical offset changes.
SPECIAL_ZONES = ["Australia/Lord_Howe", "Pacific/Apia", "Pacific/Kiritimati", "Europe/Moscow",
                 "America/Caracas", "Asia/Pyongyang", "Africa/Casablanca", "Antarctica/Troll",
                 "America/New_York", "Europe/Berlin"]

instants = st.one_of(
    st.datetimes(min_value=datetime(1901, 1, 1), max_value=datetime(2150, 12, 31)),
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1)),
).map(lambda d: d.replace(tzinfo=UTC))


def transitions(tz: str, year: int) -> list[datetime]:
    """The instants (to the hour) of ``year`` at which ``tz`` changes its UTC offset."""
    zone = ZoneInfo(tz)
    found: list[datetime] = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    before = t.astimezone(zone).utcoffset()
    while t.year == year:
        t += timedelta(hours=1)
        offset = t.astimezone(zone).utcoffset()
        if offset != before:
            found.append(t)
            before = offset
    return found


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(expr=cron_expressions(), zone_pick=st.one_of(st.sampled_from(SPECIAL_ZONES),
                                                   st.integers(0, 10_000)),
       t=instants, near_transition=st.integers(0, 3), year=st.integers(1901, 2150),
       shift=st.integers(-3 * 3600, 3 * 3600), data=st.data())
def test_K16_next_prev_and_enumeration_agree(cc: Conn, zones: list[str], expr: str,  # noqa: N802
                                             zone_pick: str | int, t: datetime,
                                             near_transition: int, year: int, shift: int,
                                             data: st.DataObject) -> None:
    tz = zone_pick if isinstance(zone_pick, str) else zones[zone_pick % len(zones)]
    if near_transition:            # three examples in four: within 3 h of a transition
        changes = transitions(tz, year) or transitions(tz, 2026) or [t]
        t = data.draw(st.sampled_from(changes)) + timedelta(seconds=shift)
    p = prev(cc, expr, tz, t)
    n = next_(cc, expr, tz, t)
    assert p is not None, (expr, tz, t)
    assert n is not None, (expr, tz, t)
    assert p <= t < n
    assert next_(cc, expr, tz, p) == n            # nothing in (p, t]
    assert prev(cc, expr, tz, n) == n
    assert prev(cc, expr, tz, n - timedelta(microseconds=1)) == p
    # the enumeration from just before p: p, n, then each the next of the one before
    listed = occurrences(cc, expr, tz, p - timedelta(microseconds=1), n + timedelta(days=3), 12)
    assert listed[:2] == [p, n]
    assert listed == sorted(set(listed))
    for before, after in itertools.pairwise(listed):
        assert next_(cc, expr, tz, before) == after
        assert prev(cc, expr, tz, after - timedelta(microseconds=1)) == before


# --------------------------------------------------------------------------- K17 scan cap


def test_K17_dense_schedule_ten_years_back_is_capped_and_prev_is_direct(cc: Conn) -> None:  # noqa: N802
    now = utc("2026-06-01T12:00:00.5")
    ten_years_back = utc("2016-06-01T12:00:00")
    listed = occurrences(cc, "* * * * * *", "Europe/Berlin", ten_years_back, now, 1000)
    assert len(listed) == 1000
    assert listed[0] == ten_years_back + SECOND
    assert listed[-1] == ten_years_back + 1000 * SECOND
    assert prev(cc, "* * * * * *", "Europe/Berlin", now) == utc("2026-06-01T12:00:00")
    # bounded work, counted by PostgreSQL's function statistics of this transaction:
    # the capped enumeration looks at two local candidates per occurrence, and prev is
    # direct (a handful of candidates, not ten years of seconds)
    with cc.transaction():
        cc.execute("set local track_functions = 'pl'")
        occurrences(cc, "* * * * * *", "Europe/Berlin", ten_years_back, now, 1000)
        assert _calls(cc, "_cron_next_local") <= 2 * 1000 + 2
        prev(cc, "* * * * * *", "Europe/Berlin", now)
        assert _calls(cc, "_cron_prev_local") <= 3
    # the tick's decision: one call, the exact latest occurrence, the count "at least 1000"
    with cc.transaction():
        cc.execute("set local track_functions = 'pl'")
        assert missed(cc, "* * * * * *", "Europe/Berlin", ten_years_back, now) == \
            (utc("2026-06-01T12:00:00"), 1000, True)
        assert _calls(cc, "_cron_next_local") <= 2 * 1001 + 2
        assert _calls(cc, "_cron_prev_local") <= 3


def _calls(conn: Conn, function: str) -> int:
    """How often the plpgsql function pgbatch.<function> ran in this transaction."""
    value = scalar(conn, "select coalesce(sum(pg_stat_get_xact_function_calls(p.oid)), 0)"
                         " from pg_proc p where p.pronamespace = 'pgbatch'::regnamespace"
                         " and p.proname = %s", [function])
    return int(value)


# ------------------------------------------------------------------ counting, not enumerating

#: How many occurrences the reference enumeration lists at most per example.
ENUMERATION_CAP = 1500


def fast_count(conn: Conn, expr: str, tz: str, after: datetime, until: datetime) -> int | None:
    """pgbatch._cron_count: the arithmetic count, or None where it leaves the range to
    enumeration."""
    value: int | None = scalar(
        conn, "select pgbatch._cron_count(pgbatch.cron_parse(%s), %s, %s, %s)",
        [expr, tz, after, until])
    return value


def enumerated(conn: Conn, expr: str, tz: str, after: datetime, until: datetime,
               max_count: int) -> list[datetime]:
    """The occurrences in (after, until], one _cron_next_after at a time (at most max_count)."""
    rows = conn.execute("select pgbatch._cron_between(pgbatch.cron_parse(%s), %s, %s, %s, %s)",
                        [expr, tz, after, until, max_count]).fetchall()
    return [r[0] for r in rows]


ranges = st.one_of(st.integers(0, 3 * 3600), st.integers(0, 4 * 86400),
                   st.integers(0, 120 * 86400)).map(lambda s: timedelta(seconds=s))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(expr=cron_expressions(), zone_pick=st.one_of(st.sampled_from([*SPECIAL_ZONES, "UTC"]),
                                                   st.integers(0, 10_000)),
       t=instants, length=ranges, near_transition=st.integers(0, 2), year=st.integers(1901, 2150),
       shift=st.integers(-4 * 86400, 2 * 86400), fraction=st.integers(0, 999_999),
       data=st.data())
def test_counting_equals_enumerating(cc: Conn, zones: list[str], expr: str,
                                     zone_pick: str | int, t: datetime, length: timedelta,
                                     near_transition: int, year: int, shift: int, fraction: int,
                                     data: st.DataObject) -> None:
    """The tick's count of missed occurrences (_cron_count, and cron_missed built on it)
    equals one-at-a-time enumeration for random expressions, zones and ranges; two
    examples in three start within days of a DST or offset change, on both sides of
    the two-day margin inside which the count leaves the range to the enumeration."""
    tz = zone_pick if isinstance(zone_pick, str) else zones[zone_pick % len(zones)]
    if near_transition:
        changes = transitions(tz, year) or transitions(tz, 2026) or [t]
        t = data.draw(st.sampled_from(changes)) + timedelta(seconds=shift)
    after = t.replace(microsecond=fraction)
    until = min(after + length, datetime(2199, 12, 31, tzinfo=UTC))
    listed = enumerated(cc, expr, tz, after, until, ENUMERATION_CAP + 1)
    counted = fast_count(cc, expr, tz, after, until)
    if counted is not None:
        if len(listed) > ENUMERATION_CAP:
            assert counted > ENUMERATION_CAP, (expr, tz, after, until)
        else:
            assert counted == len(listed), (expr, tz, after, until)
    latest, count, capped = missed(cc, expr, tz, after, until, ENUMERATION_CAP)
    if len(listed) > ENUMERATION_CAP:
        assert (count, capped) == (ENUMERATION_CAP, True)
        assert latest == prev(cc, expr, tz, until)
    else:
        assert (latest, count, capped) == (listed[-1] if listed else None, len(listed), False)


@pytest.mark.parametrize(("expr", "tz", "after", "until", "expected"), [
    ("*/5 * * * *", "UTC", "2026-01-01T00:00:00", "2026-01-01T01:00:00", 12),
    ("*/5 * * * *", "UTC", "2026-01-01T00:00:00.5", "2026-01-03T01:00:00", 588),
    ("0 9-17 * * 1-5", "Europe/Berlin", "2026-01-01T00:00:00", "2026-02-11T01:00:00", 261),
    ("*/7 */3 1,15 * *", "Asia/Tokyo", "2026-03-01T00:00:00", "2026-08-11T01:00:00", 764),
    ("30 2 * * *", "America/New_York", "2026-05-01T00:00:00", "2026-06-01T00:00:00", 31),
    ("0 0 29 2 *", "Etc/GMT-14", "2027-01-01T00:00:00", "2028-01-01T00:00:00", 0),
])
def test_counting_applies_away_from_transitions(cc: Conn, expr: str, tz: str, after: str,
                                                until: str, expected: int) -> None:
    """Ranges with one UTC offset within two days are counted (not left to enumeration)."""
    assert fast_count(cc, expr, tz, utc(after), utc(until)) == expected
    assert len(enumerated(cc, expr, tz, utc(after), utc(until), 10_000)) == expected


@pytest.mark.parametrize(("tz", "after", "until"), [
    ("Europe/Berlin", "2026-03-27T12:00:00", "2026-03-28T12:00:00"),   # 29 March: +1 -> +2
    ("America/New_York", "2026-11-01T00:00:00", "2026-11-02T00:00:00"),  # the fold itself
    ("Australia/Lord_Howe", "2026-04-01T00:00:00", "2026-04-10T00:00:00"),
    ("Europe/Berlin", "2026-01-01T00:00:00", "2027-03-01T00:00:00"),   # longer than 400 days
])
def test_counting_leaves_transitions_and_long_ranges_to_enumeration(
        cc: Conn, tz: str, after: str, until: str) -> None:
    assert fast_count(cc, "0 * * * *", tz, utc(after), utc(until)) is None
    listed = enumerated(cc, "0 * * * *", tz, utc(after), utc(until), 1001)
    assert missed(cc, "0 * * * *", tz, utc(after), utc(until)) == \
        ((listed[-1], len(listed), False) if len(listed) <= 1000 else
         (prev(cc, "0 * * * *", tz, utc(until)), 1000, True))


def test_the_tick_parses_each_expression_once_per_call(cc: Conn) -> None:
    """The decision work per schedule: one parse per distinct expression per tick, and in
    UTC no enumeration of the eleven coalesced occurrences (function statistics of the
    transaction, rolled back)."""
    with cc.transaction(force_rollback=True):
        cc.execute("set local track_functions = 'pl'")
        cc.execute("select count(pgbatch.create_schedule('p' || i, 'cron', cron_expr => e,"
                   " queue => 'q', catchup_window => '1 day'))"
                   " from generate_series(1, 20) i,"
                   " lateral (select case when i % 2 = 0 then '*/5 * * * *'"
                   "                 else '0 * * * *' end e) x")
        cc.execute("update pgbatch.schedule set effective_from = now() - interval '2 hours',"
                   " next_due_at = now() - interval '2 hours'")
        parses = _calls(cc, "cron_parse")
        nexts = _calls(cc, "_cron_next_local")
        decided = cc.execute("select outcome, coalesced_count from pgbatch.tick_schedules('n', 100)"
                             " order by schedule_id").fetchall()
        assert len(decided) == 20
        assert {(o, c) for o, c in decided} == {("fired", 23), ("fired", 1)}
        assert _calls(cc, "cron_parse") - parses == 2
        # per schedule: one next_local for the next due time (the latest is a prev)
        assert _calls(cc, "_cron_next_local") - nexts == 20
