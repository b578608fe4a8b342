"""The schedules pages in a real headless Chromium: the wizard creates a schedule with a
catch-up window (previewing its occurrences) and a running worker fires it; pause,
resume with catch-up and trigger from the schedule page; a malformed cron or unknown
time zone in the wizard shows the PB code and creates nothing; hostile strings stay
text."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.conftest import TestDatabase
from tests.helpers import scalar
from tests.schedule_helpers import create, fires, schedule
from tests.web_helpers import (  # noqa: F401 - fixtures
    ADMIN,
    WebFactory,
    browser_fixture,
    injected_script_ran,
    screenshot,
    use_credential,
    wait_for,
    web_login_fixture,
    web_server_fixture,
)
from tests.worker_harness import DONE_TABLE_DDL, ProcGroup, wait_until

Conn = psycopg.Connection[Any]


def fill(browser: WebDriver, element_id: str, text: str) -> None:
    """Replace the text of input ``element_id``."""
    field = browser.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def test_wizard_creates_a_schedule_with_a_catch_up_window_and_a_worker_fires_it(
        web_server: WebFactory, db: TestDatabase, conn: Conn, browser: WebDriver,
        tmp_path: Path) -> None:
    conn.execute(DONE_TABLE_DDL)
    server = web_server(credentials=(ADMIN,))
    use_credential(browser, ADMIN)
    browser.get(server.url + "/schedules")
    browser.find_element(By.ID, "new-schedule").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "step-schedule"))
    fill(browser, "f-name", "every-second")
    Select(browser.find_element(By.ID, "f-target")).select_by_value("queue")
    fill(browser, "f-queue", "sched")
    fill(browser, "f-payload", '{"task": "record"}')
    Select(browser.find_element(By.ID, "f-kind")).select_by_value("cron")
    fill(browser, "f-expression", "30 2 * * *")
    fill(browser, "f-tz", "Europe/Berlin")
    fill(browser, "f-misfire", "5")
    fill(browser, "f-catch-up", "60")
    browser.find_element(By.ID, "preview").click()
    rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#occurrences .occurrence"))
    assert len(rows) == 12
    assert all("02:30" in r.text for r in rows)
    screenshot(browser, "schedule-wizard")
    assert scalar(conn, "select count(*) from pgbatch.schedule") == 0
    # the Schedule step again: an interval of one second, so that the worker fires it now
    Select(browser.find_element(By.ID, "f-kind")).select_by_value("interval")
    fill(browser, "f-expression", "1")
    browser.find_element(By.ID, "save").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "schedule-name"))
    assert browser.find_element(By.ID, "notice").text == "Created."
    assert browser.find_element(By.ID, "schedule-catch-up").text == "1m 00s"
    row = schedule(conn, "every-second")
    assert (row["kind"], row["catchup_window"], row["misfire_threshold"]) == \
        ("interval", timedelta(minutes=1), timedelta(seconds=5))
    with ProcGroup(db.dsn, tmp_path) as group:
        w = group.spawn("w", node_id="w", queue="sched", maintenance_interval=0.5)
        wait_until(lambda: scalar(conn, "select count(*) from worker_test_done") >= 2, 60,
                   "two fires of the schedule to run on the worker")
        conn.execute("select pgbatch.pause_schedule('every-second')")
        w.stop()
    browser.get(server.url + "/schedules/every-second")
    fired = wait_for(browser, lambda d: [r for r in d.find_elements(By.CSS_SELECTOR, "tr.fire")
                                         if r.find_element(By.CSS_SELECTOR, ".outcome").text
                                         == "fired"])
    assert len(fired) >= 2
    screenshot(browser, "schedule")
    browser.get(server.url + "/schedules")
    listed = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.schedule"))
    assert listed[0].find_element(By.CSS_SELECTOR, ".watermark").text != "-"
    assert listed[0].find_element(By.CSS_SELECTOR, ".paused").text == "paused"
    screenshot(browser, "schedules")


def test_pause_resume_with_catch_up_and_trigger_from_the_page(
        web_server: WebFactory, conn: Conn, browser: WebDriver) -> None:
    create(conn, "hourly", cron_expr="0 * * * *", catchup_window=timedelta(hours=2))
    server = web_server(credentials=(ADMIN,))
    use_credential(browser, ADMIN)
    browser.get(server.url + "/schedules/hourly")
    browser.find_element(By.ID, "pause").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "resume"))
    assert browser.find_element(By.ID, "notice").text.startswith("Paused")
    assert schedule(conn, "hourly")["paused_at"] is not None
    browser.find_element(By.ID, "catch-up").click()
    browser.find_element(By.ID, "resume").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "pause"))
    assert browser.find_element(By.ID, "notice").text.startswith("Resumed with catch-up")
    assert schedule(conn, "hourly")["paused_at"] is None
    browser.find_element(By.ID, "trigger").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "notice").text == "Triggered.")
    assert [f["source"] for f in fires(conn, "hourly", "manual")] == ["manual"]
    sources = [r.get_attribute("data-source") for r in
               browser.find_elements(By.CSS_SELECTOR, "tr.fire")]
    assert "manual" in sources


def test_wizard_refuses_bad_input_with_the_pb_code_and_creates_nothing(
        web_server: WebFactory, conn: Conn, browser: WebDriver) -> None:
    server = web_server(credentials=(ADMIN,))
    use_credential(browser, ADMIN)
    hostile = "<img src=x onerror=\"window.__pwned=true\">"
    for expression, tz, code in (("61 * * * *", "UTC", "PB020"),
                                 ("0 3 * * *", "Mars/Olympus", "PB021"),
                                 (hostile, "UTC", "PB020")):
        browser.get(server.url + "/schedules/new")
        fill(browser, "f-name", "bad")
        fill(browser, "f-queue", "q")
        Select(browser.find_element(By.ID, "f-target")).select_by_value("queue")
        Select(browser.find_element(By.ID, "f-kind")).select_by_value("cron")
        fill(browser, "f-expression", expression)
        fill(browser, "f-tz", tz)
        browser.find_element(By.ID, "save").click()
        error = wait_for(browser, lambda d: d.find_elements(By.ID, "wizard-error"))
        assert error[0].text.startswith(code), error[0].text
        assert browser.find_element(By.ID, "f-expression").get_attribute("value") == expression
        assert not injected_script_ran(browser)
    assert scalar(conn, "select count(*) from pgbatch.schedule") == 0
    create(conn, "hostile", cron_expr="0 3 * * *", payload={"x": hostile})
    for page in ("/schedules", "/schedules/hostile", "/schedules/hostile/edit"):
        browser.get(server.url + page)
        wait_for(browser, lambda d: d.find_elements(By.TAG_NAME, "main"))
        assert not injected_script_ran(browser)
    payload = browser.find_element(By.ID, "f-payload").get_attribute("value")
    assert json.loads(payload or "") == {"x": hostile}
