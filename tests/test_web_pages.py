"""The dashboard's pages in a real headless Chromium: the overview (queues, throughput,
nodes, live refresh, pause/resume), the jobs list (filters, keyset paging), the job page
(payload, attempts, errors with tracebacks, result) and its retry, cancel and requeue
buttons. Screenshots go to docs/img/ for the README."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.helpers import enqueue
from tests.web_helpers import (  # noqa: F401 - fixtures
    ADMIN,
    WebFactory,
    browser_fixture,
    claimed_job,
    dead_job,
    done_job,
    screenshot,
    use_credential,
    wait_for,
    web_login_fixture,
    web_server_fixture,
)

Conn = psycopg.Connection[Any]


def cell(driver: WebDriver, queue: str, column: str) -> str:
    row = driver.find_element(By.CSS_SELECTOR, f'tr[data-queue="{queue}"]')
    return str(row.find_element(By.CSS_SELECTOR, f"td.{column}").text)


def chart_total_is(total: str) -> Callable[[WebDriver], bool]:
    def check(driver: WebDriver) -> bool:
        chart = driver.find_element(By.CSS_SELECTOR, "svg.chart")
        return chart.get_attribute("data-total") == total
    return check


def state_of(conn: Conn, job_id: object) -> str | None:
    row = conn.execute("select state from pgbatch.job where id = %s union all "
                       "select state from pgbatch.job_archive where id = %s",
                       [job_id, job_id]).fetchone()
    return None if row is None else str(row[0])


# -- overview ------------------------------------------------------------------------------


def test_overview_lists_every_queue_with_its_counts_and_the_nodes(
        web_server: WebFactory, conn: Conn, browser: WebDriver) -> None:
    for i in range(3):
        enqueue(conn, "emails", {"n": i})
    claimed_job(conn, "emails")
    done_job(conn, "emails")
    dead_job(conn, "reports")
    enqueue(conn, "reports", {"n": 1})
    conn.execute("select pgbatch.pause_queue('reports')")
    conn.execute("select pgbatch.register_node('worker-a', %s, %s)",
                 [uuid.uuid4(), Jsonb({"pid": 1})])
    server = web_server(credentials=(ADMIN,))
    use_credential(browser, ADMIN)
    browser.get(server.url + "/")
    rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "table.queues tbody tr"))
    assert {r.get_attribute("data-queue") for r in rows} == {"emails", "reports"}
    assert [cell(browser, "emails", c) for c in ("pending", "claimed", "done", "dead")] == [
        "3", "1", "1", "0"]
    assert cell(browser, "reports", "dead") == "1"
    assert cell(browser, "reports", "paused") == "paused"
    assert cell(browser, "emails", "paused") == "running"
    assert cell(browser, "emails", "oldest").endswith("s")
    node = browser.find_element(By.CSS_SELECTOR, 'tr[data-node="worker-a"]')
    assert "alive" in node.text
    assert browser.find_element(By.CSS_SELECTOR, "svg.chart")


def test_overview_refreshes_itself_and_charts_throughput(web_server: WebFactory, conn: Conn,
                                                         browser: WebDriver) -> None:
    enqueue(conn, "emails")
    enqueue(conn, "reports")
    conn.execute("select pgbatch.register_node('worker-1', %s, '{}')", [uuid.uuid4()])
    server = web_server(sample_seconds=0.5)
    use_credential(browser, None)
    browser.get(server.url + "/")
    wait_for(browser, lambda d: cell(d, "emails", "pending") == "1")
    # live.js swaps the region in place (no navigation): the page object stays the same
    browser.execute_script("window.__same_page = true")
    enqueue(conn, "emails")
    wait_for(browser, lambda d: cell(d, "emails", "pending") == "2", "no live refresh")
    finished = 0
    for queue, n in (("emails", 4), ("reports", 9), ("emails", 2)):
        for _ in range(n):
            done_job(conn, queue)
        finished += n
        wait_for(browser, chart_total_is(str(finished)),
                 "the throughput chart did not count the jobs")
    assert cell(browser, "emails", "done") == "6"
    bars = browser.find_elements(By.CSS_SELECTOR, "figure.throughput svg rect")
    assert len(bars) >= 2  # the rounds landed in different samples
    assert browser.execute_script("return window.__same_page === true")
    screenshot(browser, "overview")


def test_pause_and_resume_a_queue_from_the_overview(web_server: WebFactory, conn: Conn,
                                                    browser: WebDriver) -> None:
    enqueue(conn, "emails")
    server = web_server()
    use_credential(browser, None)
    browser.get(server.url + "/")
    wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "button.pause")).click()
    wait_for(browser, lambda d: cell(d, "emails", "paused") == "paused")
    assert conn.execute("select paused from pgbatch.queue where name = 'emails'").fetchone() == (
        True,)
    browser.find_element(By.CSS_SELECTOR, "button.resume").click()
    wait_for(browser, lambda d: cell(d, "emails", "paused") == "running")
    assert conn.execute("select paused from pgbatch.queue where name = 'emails'").fetchone() == (
        False,)


# -- jobs list -----------------------------------------------------------------------------


def test_jobs_list_filters_by_queue_and_state_and_pages_by_cursor(
        web_server: WebFactory, conn: Conn, browser: WebDriver) -> None:
    mails = [enqueue(conn, "emails", {"n": i}) for i in range(5)]
    enqueue(conn, "reports", {"n": 0})
    dead = dead_job(conn, "emails", {"n": "dead"})
    server = web_server()
    use_credential(browser, None)
    browser.get(server.url + "/jobs")
    rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.job"))
    assert len(rows) == 7
    screenshot(browser, "jobs")
    # filter: the form builds the query string
    browser.find_element(By.NAME, "queue").send_keys("emails")
    Select(browser.find_element(By.NAME, "state")).select_by_value("dead")
    browser.find_element(By.ID, "apply-filters").click()
    wait_for(browser, lambda d: "state=dead" in d.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.job")
    assert [r.get_attribute("data-job") for r in rows] == [str(dead)]
    # paging: 2 per page over the 5 pending emails, newest first, none twice
    browser.get(server.url + "/jobs?queue=emails&state=pending&limit=2")
    seen: list[str] = []
    while True:
        rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.job"))
        seen += [str(r.get_attribute("data-job")) for r in rows]
        older = browser.find_elements(By.ID, "next-page")
        if not older:
            break
        older[0].click()
        wait_for(browser, lambda d: "cursor=" in d.current_url)
    assert seen == [str(j) for j in reversed(mails)]
    assert browser.find_element(By.ID, "first-page")


# -- job page and actions ------------------------------------------------------------------


def test_job_page_shows_payload_attempts_error_traceback_and_history(
        web_server: WebFactory, conn: Conn, browser: WebDriver) -> None:
    job_id = enqueue(conn, "emails", {"to": "a@example.com"}, max_attempts=2)
    for attempt in (1, 2):
        row = conn.execute("select id, claim_token from pgbatch.claim('emails', 1)").fetchone()
        assert row is not None
        assert row[0] == job_id
        conn.execute("select pgbatch.nack(%s, %s, %s, retry_at => pgbatch.now())", [
            job_id, row[1], Jsonb({"type": "SMTPError", "message": f"try {attempt} refused",
                                   "traceback": f"Traceback (most recent call last):\n"
                                                f"SMTPError: try {attempt} refused\n"})])
    server = web_server()
    use_credential(browser, None)
    browser.get(server.url + f"/jobs/{job_id}")
    assert wait_for(browser, lambda d: d.find_element(By.ID, "job-state")).text == "dead"
    assert browser.find_element(By.ID, "job-attempt").text == "2 of 2"
    assert '"to": "a@example.com"' in browser.find_element(By.ID, "job-payload").text
    assert "SMTPError: try 2 refused" in browser.find_element(By.ID, "job-traceback").text
    history = browser.find_elements(By.CSS_SELECTOR, "ol.history li")
    assert len(history) == 1
    assert "try 1 refused" in history[0].text
    screenshot(browser, "job")


def test_done_job_shows_its_result(web_server: WebFactory, conn: Conn,
                                   browser: WebDriver) -> None:
    job_id = enqueue(conn, "emails")
    row = conn.execute("select claim_token from pgbatch.claim('emails', 1)").fetchone()
    assert row is not None
    conn.execute("select pgbatch.ack(%s, %s, %s)",
                 [job_id, row[0], Jsonb({"return_value": {"sent": 3}})])
    server = web_server()
    use_credential(browser, None)
    browser.get(server.url + f"/jobs/{job_id}")
    result = wait_for(browser, lambda d: d.find_element(By.ID, "job-result"))
    assert '"sent": 3' in result.text
    assert browser.find_elements(By.ID, "requeue")
    assert not browser.find_elements(By.ID, "retry")
    assert not browser.find_elements(By.ID, "cancel")


def test_retry_a_dead_job_and_see_it_pending(web_server: WebFactory, conn: Conn,
                                             browser: WebDriver) -> None:
    job_id = dead_job(conn, "emails")
    server = web_server(credentials=(ADMIN,))
    use_credential(browser, ADMIN)
    browser.get(server.url + f"/jobs/{job_id}")
    wait_for(browser, lambda d: d.find_element(By.ID, "retry")).click()
    wait_for(browser, lambda d: d.find_element(By.ID, "job-state").text == "pending")
    assert "Retried" in browser.find_element(By.ID, "notice").text
    assert state_of(conn, job_id) == "pending"
    assert not browser.find_elements(By.ID, "retry")
    screenshot(browser, "job-retried")


def test_cancel_a_pending_job_and_a_claimed_one(web_server: WebFactory, conn: Conn,
                                                browser: WebDriver) -> None:
    pending = enqueue(conn, "emails")
    running = claimed_job(conn, "emails")
    server = web_server()
    use_credential(browser, None)
    browser.get(server.url + f"/jobs/{pending}")
    wait_for(browser, lambda d: d.find_element(By.ID, "cancel")).click()
    wait_for(browser, lambda d: d.find_element(By.ID, "job-state").text == "cancelled")
    assert state_of(conn, pending) == "cancelled"
    browser.get(server.url + f"/jobs/{running}")
    wait_for(browser, lambda d: d.find_element(By.ID, "cancel")).click()
    notice = wait_for(browser, lambda d: d.find_element(By.ID, "notice"))
    assert "Cancel requested" in notice.text
    flag = conn.execute("select cancel_requested from pgbatch.job where id = %s",
                        [running]).fetchone()
    assert flag == (True,)
    assert not browser.find_elements(By.ID, "cancel")


def test_requeue_a_finished_job_as_a_new_one(web_server: WebFactory, conn: Conn,
                                             browser: WebDriver) -> None:
    done = done_job(conn, "emails", {"to": "b@example.com"})
    server = web_server()
    use_credential(browser, None)
    browser.get(server.url + f"/jobs/{done}")
    wait_for(browser, lambda d: d.find_element(By.ID, "requeue")).click()
    wait_for(browser, lambda d: f"/jobs/{done}" not in d.current_url)
    assert browser.find_element(By.ID, "job-state").text == "pending"
    assert "Requeued" in browser.find_element(By.ID, "notice").text
    new_id = browser.current_url.split("/jobs/")[1].split("?")[0]
    row = conn.execute("select queue, payload from pgbatch.job where id = %s",
                       [new_id]).fetchone()
    assert row == ("emails", {"to": "b@example.com"})
    assert state_of(conn, done) == "done"


def test_an_unknown_job_shows_the_error_page(web_server: WebFactory,
                                             browser: WebDriver) -> None:
    server = web_server()
    use_credential(browser, None)
    browser.get(server.url + f"/jobs/{uuid.uuid4()}")
    message = wait_for(browser, lambda d: d.find_element(By.ID, "error-message"))
    assert "PB003" in message.text
    assert "JobNotFound" in message.text


def test_pages_work_under_a_path_prefix(web_server: WebFactory, conn: Conn,
                                        browser: WebDriver) -> None:
    job_id = dead_job(conn, "emails")
    # uvicorn --root-path /pgbatch: links and forms carry the prefix a proxy serves it under
    server = web_server(root_path="/pgbatch")
    use_credential(browser, None)
    browser.get(server.url + "/")
    link = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "a.queue-name"))
    assert str(link.get_attribute("href")).startswith(server.url + "/pgbatch/jobs?queue=")
    browser.get(server.url + f"/jobs/{job_id}")
    form = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "div.actions form"))
    assert str(form.get_attribute("action")) == f"{server.url}/pgbatch/jobs/{job_id}/retry"
    css = browser.find_element(By.CSS_SELECTOR, 'link[rel="stylesheet"]').get_attribute("href")
    assert str(css).startswith(server.url + "/pgbatch/static/")
