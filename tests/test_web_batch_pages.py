"""The batch runs and approvals pages in a real headless Chromium: the runs list and a
run page (steps, counters, timeline), stop with a lost race shown as the typed result,
restart, pause and resume from the run page, a run after 500 resumes still one execution
with a readable timeline, approving a pending gate and the run going on, and hostile
strings rendered as text. Pause and gates run where the schema has them."""

from __future__ import annotations

import importlib
import json
from typing import Any

import psycopg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from pgbatch.web.timeline import TIMES
from tests.batch_helpers import (
    assert_invariants,
    claim_item,
    launch,
    register,
    run_to_end,
    start,
)
from tests.helpers import scalar
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

Conn = psycopg.Connection[Any]
HOSTILE = "<img src=x onerror=\"window.__pwned=true\"><script>window.__pwned=true</script>"


def has_function(conn: Conn, name: str) -> bool:
    """Whether the schema has ``pgbatch.<name>``."""
    return bool(scalar(conn, "select exists (select from pg_proc p join pg_namespace n on"
                             " n.oid = p.pronamespace where n.nspname = 'pgbatch' and"
                             " p.proname = %s)", [name]))


def status_text(browser: WebDriver) -> str:
    """The run page's status."""
    return str(browser.find_element(By.ID, "run-status").text)


def test_runs_list_and_run_page(web_server: WebFactory, conn: Conn,
                                browser: WebDriver) -> None:
    register(conn, "nightly-etl")
    done = launch(conn, "nightly-etl", {"day": "2030-01-01"})
    assert run_to_end(conn, done, chunks=4) == "COMPLETED"
    waiting = launch(conn, "nightly-etl", {"day": "2030-01-02", "note": HOSTILE})
    server = web_server(credentials=(ADMIN,))
    use_credential(browser, ADMIN)
    browser.get(server.url + "/runs")
    rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "table.runs tr.run"))
    assert [r.get_attribute("data-run") for r in rows] == [str(waiting), str(done)]
    assert not injected_script_ran(browser)
    screenshot(browser, "runs")
    rows[1].find_element(By.TAG_NAME, "a").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "timeline"))
    assert status_text(browser) == "COMPLETED"
    load = browser.find_element(By.CSS_SELECTOR, "tr.step[data-step='load']")
    assert load.find_element(By.CSS_SELECTOR, ".read").text == "40"
    assert load.find_element(By.CSS_SELECTOR, ".commits").text == "4"
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#timeline .label")]
    assert labels[0] == "launched"
    assert not browser.find_elements(By.ID, "stop")
    screenshot(browser, "run")
    browser.get(server.url + f"/runs/{waiting}")
    wait_for(browser, lambda d: d.find_elements(By.ID, "run-params"))
    shown = json.loads(browser.find_element(By.ID, "run-params").text)
    assert shown["note"]["value"] == HOSTILE
    assert not injected_script_ran(browser)


def test_stop_lost_race_shows_the_typed_result_then_restart(
        web_server: WebFactory, conn: Conn, browser: WebDriver) -> None:
    register(conn, "j")
    execution_id = launch(conn, "j")
    server = web_server(credentials=(ADMIN,))
    use_credential(browser, ADMIN)
    browser.get(server.url + f"/runs/{execution_id}")
    button = wait_for(browser, lambda d: d.find_element(By.ID, "stop"))
    # another operator stops the run while this page is open
    conn.execute("select * from pgbatch.stop_execution(%s, 'someone-else')", [execution_id])
    button.click()
    notice = wait_for(browser, lambda d: d.find_element(By.ID, "notice"))
    assert notice.text == ("Not stopped: already stopped by another request "
                           "(the run is STOPPED).")
    assert status_text(browser) == "STOPPED"
    browser.find_element(By.ID, "restart").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "notice").text.startswith("Restarted"))
    assert status_text(browser) == "STARTING"
    assert scalar(conn, "select count(*) from pgbatch.job_execution") == 2
    assert_invariants(conn)


def test_bad_ids_show_the_error_page_with_the_pb_code(web_server: WebFactory,
                                                     browser: WebDriver) -> None:
    server = web_server(credentials=(ADMIN,))
    use_credential(browser, ADMIN)
    for path, code in (("/runs/999999", "PB047"), ("/runs/abc", "PB007"),
                       ("/runs?status=" + "%3Cscript%3Ewindow.__pwned%3Dtrue%3C%2Fscript%3E",
                        "PB007")):
        browser.get(server.url + path)
        body = wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "main"))
        assert code in body.text, (path, body.text)
        assert not injected_script_ran(browser)


def test_pause_and_resume_from_the_run_page(web_server: WebFactory, conn: Conn,
                                            browser: WebDriver) -> None:
    if not has_function(conn, "pause_execution"):
        pytest.skip("this schema has no pause_execution yet")
    register(conn, "j")
    execution_id = launch(conn, "j")
    server = web_server(credentials=(ADMIN,))
    use_credential(browser, ADMIN)
    browser.get(server.url + f"/runs/{execution_id}")
    wait_for(browser, lambda d: d.find_element(By.ID, "pause")).click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "resume"))
    assert status_text(browser) == "PAUSED"
    # this tab's page goes out of date: its live regions stop refreshing
    browser.execute_script("document.querySelectorAll('[data-live]')"
                           ".forEach(function (e) { e.id = e.id + '-frozen'; });")
    stale = browser.find_element(By.ID, "resume")
    conn.execute("select * from pgbatch.resume_execution(%s, 'another-tab')", [execution_id])
    stale.click()
    # the page still shows the pause's notice until the resume's answer replaces it
    wait_for(browser, lambda d: "already resumed by another request"
             in d.find_element(By.ID, "notice").text, "the resume's notice")
    assert scalar(conn, "select count(*) from pgbatch.job_execution") == 1
    assert_invariants(conn)


def test_a_run_after_500_resumes_is_one_execution_with_a_readable_timeline(
        web_server: WebFactory, conn: Conn, browser: WebDriver) -> None:
    if not has_function(conn, "pause_execution"):
        pytest.skip("this schema has no pause_execution yet")
    register(conn, "j")
    execution_id = launch(conn, "j")
    for i in range(500):
        conn.execute("select * from pgbatch.pause_execution(%s, %s)", [execution_id, f"p{i}"])
        conn.execute("select * from pgbatch.resume_execution(%s, %s)", [execution_id, f"r{i}"])
    server = web_server(credentials=(ADMIN,))
    use_credential(browser, ADMIN)
    browser.get(server.url + "/runs")
    rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "table.runs tr.run"))
    assert len(rows) == 1
    browser.get(server.url + f"/runs/{execution_id}")
    wait_for(browser, lambda d: d.find_elements(By.ID, "timeline"))
    assert browser.find_element(By.ID, "run-resumes").text == "500"
    entries = browser.find_elements(By.CSS_SELECTOR, "#timeline li")
    assert len(entries) < 10
    assert any(f"{TIMES}500" in e.text for e in entries), [e.text for e in entries]
    screenshot(browser, "run-500-resumes")
    assert_invariants(conn)


def test_approve_a_pending_gate_and_the_run_goes_on(web_server: WebFactory, conn: Conn,
                                                   browser: WebDriver) -> None:
    if not has_function(conn, "approve_gate"):
        pytest.skip("this schema has no approval gates yet")
    gates: Any = importlib.import_module("tests.gate_helpers")  # merged with the gates
    gates.register_gated(conn, "g")
    execution_id = launch(conn, "g")
    gates.reach_gate(conn, execution_id)
    server = web_server(credentials=(ADMIN,))
    use_credential(browser, ADMIN)
    browser.get(server.url + "/approvals")
    row = wait_for(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, f"table.pending tr[data-run='{execution_id}']"))
    screenshot(browser, "approvals")
    row.find_element(By.CSS_SELECTOR, "input.comment").send_keys(f"ok {HOSTILE}")
    row.find_element(By.CSS_SELECTOR, "button.approve").click()
    notice = wait_for(browser, lambda d: d.find_element(By.ID, "notice"))
    assert notice.text.startswith("Approved")
    decided = browser.find_element(By.CSS_SELECTOR,
                                   f"table.decided tr[data-run='{execution_id}']")
    assert decided.find_element(By.CSS_SELECTOR, ".by").text == ADMIN.name
    assert decided.find_element(By.CSS_SELECTOR, ".comment").text == f"ok {HOSTILE}"
    assert not injected_script_ran(browser)
    item = claim_item(conn)
    assert item.execution_id == execution_id
    start(conn, item)
    gates.run_tasklet(conn, item, item.step)
    browser.get(server.url + f"/runs/{execution_id}")
    wait_for(browser, lambda d: d.find_elements(By.ID, "run-status"))
    assert status_text(browser) == "COMPLETED"
    assert scalar(conn, "select count(*) from pgbatch.job_execution") == 1
