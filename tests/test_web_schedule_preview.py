"""The preview of a schedule's next occurrences covers every kind create_schedule takes.

``pgbatch.schedule_occurrences`` runs the scheduler's own rule (cron in the time
zone, interval ``anchor + k * every`` in UTC, once, manual: none), so its first
occurrence is the ``next_due_at`` create_schedule gives the same definition; it
refuses what create_schedule refuses, with the same codes. Through the REST API
(``/api/v1/schedules/-/preview``) and in the wizard in Chromium: an interval of
12 hours across the US DST change keeps its UTC spacing, so its local time moves
by an hour, and the wizard marks it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.conftest import TestDatabase
from tests.helpers import raises_sqlstate, scalar, state_snapshot
from tests.schedule_helpers import create, schedule
from tests.web_helpers import (  # noqa: F401 - fixtures
    ADMIN,
    WebServer,
    browser_fixture,
    start_web,
    use_credential,
    wait_for,
)

Conn = psycopg.Connection[Any]
#: The database clock of these tests: a Friday before the US DST change of 2030-03-10.
NOW = "2030-03-08 12:00:00+00"
NOW_AT = datetime.fromisoformat(NOW)


def occurrences(conn: Conn, kind: str, count: int = 5, **args: Any) -> list[datetime]:
    names = ", ".join(f"{k} => %s" for k in args)
    rows = conn.execute(f"select * from pgbatch.schedule_occurrences(%s{', ' if args else ''}"
                        f"{names}, max_count => %s)", [kind, *args.values(), count]).fetchall()
    return [r[0] for r in rows]


@pytest.fixture(name="clocked")
def clocked_fixture(db: TestDatabase, conn: Conn) -> Iterator[WebServer]:
    """A server whose sessions all see the database clock NOW (a superuser connection:
    only a superuser session may move pgbatch.now(), see sql/testing)."""
    conn.execute(sql.SQL("alter database {} set pgbatch.fake_now = {}").format(
        sql.Identifier(db.name), sql.Literal(NOW)))
    conn.execute("select set_config('pgbatch.fake_now', %s, false)", [NOW])
    server = start_web(db.dsn, credentials=(ADMIN,))
    try:
        yield server
    finally:
        server.stop()


# -- the SQL function -------------------------------------------------------------------------


def test_each_kind_by_the_scheduler_rule(conn: Conn) -> None:
    conn.execute("select set_config('pgbatch.fake_now', %s, false)", [NOW])
    anchor = NOW_AT - timedelta(minutes=100)
    got = occurrences(conn, "interval", 3, every=timedelta(hours=1), anchor=anchor)
    assert got == [anchor + timedelta(hours=2), anchor + timedelta(hours=3),
                   anchor + timedelta(hours=4)]
    # no anchor: counted from now, as create_schedule anchors a new schedule
    assert occurrences(conn, "interval", 2, every=timedelta(seconds=90)) == \
        [NOW_AT + timedelta(seconds=90), NOW_AT + timedelta(seconds=180)]
    once = NOW_AT + timedelta(days=2)
    assert occurrences(conn, "once", 5, once_at=once) == [once]
    assert occurrences(conn, "once", 5, once_at=NOW_AT - timedelta(seconds=1)) == []
    assert occurrences(conn, "manual") == []
    assert occurrences(conn, "cron", 2, cron_expr="30 2 * * *", tz="Europe/Berlin") == \
        [datetime.fromisoformat("2030-03-09 01:30+00"),
         datetime.fromisoformat("2030-03-10 01:30+00")]
    after = datetime.fromisoformat("2031-01-01 00:00+00")
    assert occurrences(conn, "cron", 1, cron_expr="0 0 1 * *", after=after) == \
        [datetime.fromisoformat("2031-02-01 00:00+00")]


@pytest.mark.parametrize(("kind", "args"), [
    ("cron", {"cron_expr": "*/7 9-17 * * MON-FRI", "tz": "America/New_York"}),
    ("interval", {"every": timedelta(minutes=45), "anchor": NOW_AT - timedelta(days=3,
                                                                                minutes=5)}),
    ("interval", {"every": timedelta(hours=6)}),
    ("once", {"once_at": NOW_AT + timedelta(hours=5)}),
])
def test_the_first_occurrence_is_the_next_due_create_schedule_gives(
        conn: Conn, kind: str, args: dict[str, Any]) -> None:
    conn.execute("select set_config('pgbatch.fake_now', %s, false)", [NOW])
    first = occurrences(conn, kind, 1, **args)
    create(conn, "s", kind, **args)
    assert first == [schedule(conn, "s")["next_due_at"]]


@pytest.mark.parametrize(("kind", "args", "code"), [
    ("hourly", {}, "PB061"),
    ("cron", {}, "PB061"),
    ("cron", {"cron_expr": "61 * * * *"}, "PB020"),
    ("cron", {"cron_expr": "0 3 * * *", "tz": "Mars/Olympus"}, "PB021"),
    ("interval", {}, "PB061"),
    ("interval", {"every": timedelta(0)}, "PB061"),
    ("interval", {"every": timedelta(seconds=-5)}, "PB061"),
    ("interval", {"every": "1 month"}, "PB061"),
    ("interval", {"every": timedelta(hours=1), "cron_expr": "* * * * *"}, "PB061"),
    ("once", {}, "PB061"),
    ("once", {"once_at": datetime.fromisoformat("2300-01-01 00:00+00")}, "PB013"),
    ("cron", {"cron_expr": "* * * * *", "max_count": 0}, "PB007"),
    ("cron", {"cron_expr": "* * * * *", "max_count": 1001}, "PB007"),
])
def test_refusals_are_create_schedule_s(conn: Conn, kind: str, args: dict[str, Any],
                                        code: str) -> None:
    before = state_snapshot(conn)
    count = args.pop("max_count", 3)
    with raises_sqlstate(code):
        occurrences(conn, kind, count, **args)
    assert state_snapshot(conn) == before


def test_every_pgbatch_role_may_preview(conn: Conn) -> None:
    for role in ("pgbatch_producer", "pgbatch_worker", "pgbatch_admin"):
        assert scalar(conn, "select has_function_privilege(%s, 'pgbatch.schedule_occurrences("
                            "text, text, text, interval, timestamptz, timestamptz, timestamptz,"
                            " integer)', 'execute')", [role])


# -- the REST API ------------------------------------------------------------------------------


def test_the_api_previews_every_kind(clocked: WebServer) -> None:
    with clocked.client(ADMIN) as http:
        r = http.get("/api/v1/schedules/-/preview", params={
            "every": "43200", "anchor": "2030-03-08T00:00:00Z", "tz": "America/New_York",
            "count": "4"})
        assert r.status_code == 200, r.text
        assert [(o["local"], o["utc_offset"], o["offset_changed"]) for o in r.json()] == [
            ("2030-03-08 Fri 19:00", "-05:00", False), ("2030-03-09 Sat 07:00", "-05:00", False),
            ("2030-03-09 Sat 19:00", "-05:00", False), ("2030-03-10 Sun 08:00", "-04:00", True)]
        r = http.get("/api/v1/schedules/-/preview", params={"kind": "interval", "every": "90"})
        assert [o["local"] for o in r.json()][:2] == ["2030-03-08 Fri 12:01:30",
                                                      "2030-03-08 Fri 12:03:00"]  # seconds
        r = http.get("/api/v1/schedules/-/preview", params={"once_at": "2030-04-01T06:00:00Z",
                                                            "tz": "Asia/Tokyo"})
        assert [(o["local"], o["utc_offset"]) for o in r.json()] == [
            ("2030-04-01 Mon 15:00", "+09:00")]
        r = http.get("/api/v1/schedules/-/preview", params={"kind": "manual"})
        assert (r.status_code, r.json()) == (200, [])
        for query, code in (({"kind": "interval", "every": "0"}, "PB061"),
                            ({"kind": "interval", "every": "soon"}, "PB061"),
                            ({"kind": "weekly"}, "PB061"),
                            ({"once_at": "tomorrow"}, "PB007"),
                            ({"every": "60", "anchor": "x"}, "PB007"),
                            ({"every": "60", "tz": "Nowhere/Land"}, "PB021")):
            r = http.get("/api/v1/schedules/-/preview", params=query)
            assert (r.status_code, r.json()["code"]) == (400, code), (query, r.text)
        spec = http.get("/api/v1/openapi.json").json()["paths"]
        assert "/api/v1/schedules/-/preview" in spec
        assert "/api/v1/schedules/{schedule}" in spec


# -- the wizard ----------------------------------------------------------------------------


def fill(browser: WebDriver, element_id: str, text: str) -> None:
    field = browser.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def test_the_wizard_previews_an_interval_across_dst_then_creates_it(
        clocked: WebServer, conn: Conn, browser: WebDriver) -> None:
    use_credential(browser, ADMIN)
    browser.get(clocked.url + "/schedules/-/new")
    wait_for(browser, lambda d: d.find_elements(By.ID, "step-schedule"))
    fill(browser, "f-name", "twice-daily")
    Select(browser.find_element(By.ID, "f-target")).select_by_value("queue")
    fill(browser, "f-queue", "reports")
    Select(browser.find_element(By.ID, "f-kind")).select_by_value("interval")
    fill(browser, "f-expression", "43200")
    fill(browser, "f-anchor", "2030-03-08T00:00:00Z")
    fill(browser, "f-tz", "America/New_York")
    browser.find_element(By.ID, "preview").click()
    rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR,
                                                       "#occurrences .occurrence"))
    assert len(rows) == 12
    cells = [[c.text for c in r.find_elements(By.TAG_NAME, "td")][:3] for r in rows[:5]]
    assert cells == [["1", "2030-03-08 Fri 19:00", "-05:00"],
                     ["2", "2030-03-09 Sat 07:00", "-05:00"],
                     ["3", "2030-03-09 Sat 19:00", "-05:00"],
                     ["4", "2030-03-10 Sun 08:00", "-04:00 (DST change)"],
                     ["5", "2030-03-10 Sun 20:00", "-04:00"]]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#occurrences td.dst")) == 1
    assert scalar(conn, "select count(*) from pgbatch.schedule") == 0
    browser.find_element(By.ID, "save").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "schedule-name"))
    row = schedule(conn, "twice-daily")
    assert (row["every"], row["anchor"]) == (timedelta(hours=12),
                                             datetime.fromisoformat("2030-03-08 00:00+00"))
    # the scheduler's next due is the preview's first occurrence
    assert row["next_due_at"] == datetime.fromisoformat("2030-03-09 00:00+00")


def test_the_wizard_previews_once_and_manual(clocked: WebServer, browser: WebDriver) -> None:
    use_credential(browser, ADMIN)
    browser.get(clocked.url + "/schedules/-/new")
    wait_for(browser, lambda d: d.find_elements(By.ID, "step-schedule"))
    Select(browser.find_element(By.ID, "f-kind")).select_by_value("once")
    fill(browser, "f-expression", "2030-03-10T12:00:00Z")
    fill(browser, "f-tz", "Europe/Berlin")
    browser.find_element(By.ID, "preview").click()
    rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR,
                                                       "#occurrences .occurrence"))
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == \
        ["2030-03-10 Sun 13:00"]
    Select(browser.find_element(By.ID, "f-kind")).select_by_value("manual")
    browser.find_element(By.ID, "preview").click()
    empty = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#occurrences .empty"))
    assert "manual" in empty[0].text
    Select(browser.find_element(By.ID, "f-kind")).select_by_value("interval")
    fill(browser, "f-expression", "0")
    browser.find_element(By.ID, "preview").click()
    error = wait_for(browser, lambda d: d.find_elements(By.ID, "wizard-error"))
    assert error[0].text.startswith("PB061"), error[0].text


def test_a_bad_preview_changes_nothing(clocked: WebServer, conn: Conn) -> None:
    before = state_snapshot(conn)
    with clocked.client(ADMIN) as http:
        r = http.get("/api/v1/schedules/-/preview", params={"cron": "nope"})
        assert r.status_code == 400
    assert state_snapshot(conn) == before
