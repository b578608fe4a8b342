"""The dashboard's pages in a real headless Chromium: overview, jobs, job page and actions."""

from __future__ import annotations

from typing import Any

import psycopg
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.helpers import enqueue
from tests.web_helpers import (  # noqa: F401 - fixtures
    WebFactory,
    browser_fixture,
    screenshot,
    use_credential,
    wait_for,
    web_login_fixture,
    web_server_fixture,
)

Conn = psycopg.Connection[Any]


def test_overview_lists_every_queue_with_its_counts(web_server: WebFactory, conn: Conn,
                                                     browser: WebDriver) -> None:
    for i in range(3):
        enqueue(conn, "emails", {"n": i})
    enqueue(conn, "reports", {"n": 1})
    conn.execute("select pgbatch.pause_queue('reports')")
    server = web_server()
    use_credential(browser, None)
    browser.get(server.url + "/")
    rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "table.queues tbody tr"))
    by_queue = {r.get_attribute("data-queue"): r for r in rows}
    assert set(by_queue) == {"emails", "reports"}
    assert by_queue["emails"].find_element(By.CSS_SELECTOR, ".pending").text == "3"
    assert by_queue["reports"].find_element(By.CSS_SELECTOR, ".paused").text == "paused"
    assert browser.find_element(By.CSS_SELECTOR, "svg.chart")
    screenshot(browser, "overview")
