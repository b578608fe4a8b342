"""The dashboard behind a reverse proxy at a path prefix (``--root-path``, docs/web.md):
a real proxy (tests/prefix_proxy.py) strips the prefix, as nginx's ``proxy_pass``
with a trailing slash does. A form action works through it in Chromium (the CSRF
cookie's path is the prefix, the form posts to the prefixed URL, the redirect lands
on the prefixed page); a missing, forged or foreign token is refused (403
CsrfRejected) under the prefix too, and changes nothing; two dashboards under two
prefixes of one host keep their own cookies."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.helpers import state_snapshot
from tests.prefix_proxy import PrefixProxy
from tests.web_helpers import (  # noqa: F401 - fixtures
    WebFactory,
    browser_fixture,
    dead_job,
    use_credential,
    wait_for,
    web_login_fixture,
    web_server_fixture,
)

Conn = psycopg.Connection[Any]
PREFIX = "/pgbatch"


def job_state(conn: Conn, job_id: object) -> str | None:
    row = conn.execute("select state from pgbatch.job where id = %s union all "
                       "select state from pgbatch.job_archive where id = %s",
                       [job_id, job_id]).fetchone()
    return None if row is None else str(row[0])


@pytest.fixture(name="proxied")
def proxied_fixture(web_server: WebFactory) -> Iterator[str]:
    """The URL of a proxy serving a dashboard (``root_path=PREFIX``) under PREFIX."""
    server = web_server(root_path=PREFIX)
    with PrefixProxy({PREFIX: server.url}) as proxy:
        yield proxy.url


def test_a_form_action_works_under_the_prefix(proxied: str, conn: Conn,
                                              browser: WebDriver) -> None:
    job_id = dead_job(conn, "emails")
    use_credential(browser, None)
    browser.get(f"{proxied}{PREFIX}/jobs/{job_id}")
    button = wait_for(browser, lambda d: d.find_element(By.ID, "retry"))
    form = browser.find_element(By.CSS_SELECTOR, "div.actions form")
    assert form.get_attribute("action") == f"{proxied}{PREFIX}/jobs/{job_id}/retry"
    cookie = browser.get_cookie("pgbatch_csrf")
    assert cookie is not None
    assert (cookie["path"], cookie["httpOnly"], cookie["sameSite"]) == (PREFIX, True, "Strict")
    button.click()
    wait_for(browser, lambda d: "notice=" in d.current_url, "no redirect after the retry")
    landed = urllib.parse.urlsplit(browser.current_url)
    assert f"{landed.scheme}://{landed.netloc}{landed.path}" == \
        f"{proxied}{PREFIX}/jobs/{job_id}"
    assert browser.find_element(By.ID, "job-state").text == "pending"
    assert job_state(conn, job_id) == "pending"


def test_a_missing_or_wrong_token_is_refused_under_the_prefix(proxied: str,
                                                              conn: Conn) -> None:
    job_id = dead_job(conn, "emails")
    before = state_snapshot(conn)
    action = f"{PREFIX}/jobs/{job_id}/retry"
    with httpx.Client(base_url=proxied) as http:
        page = http.get(f"{PREFIX}/jobs/{job_id}")
        assert page.status_code == 200
        assert f'action="{action}"' in page.text
        set_cookie = page.headers["set-cookie"]
        assert f"Path={PREFIX};" in set_cookie
        token = http.cookies["pgbatch_csrf"]
        for data in ({}, {"csrf_token": "forged.token"}, {"csrf_token": token + "x"}):
            r = http.post(action, data=data)
            assert r.status_code == 403, r.text
            assert "CsrfRejected" in r.text
        r = http.post(f"{PREFIX}/api/v1/jobs/{job_id}/retry")
        assert (r.status_code, r.json()["error"]) == (403, "CsrfRejected")
        with httpx.Client(base_url=proxied) as stranger:  # another browser's valid token
            other = stranger.get(f"{PREFIX}/api/v1/csrf").json()["token"]
        r = http.post(action, data={"csrf_token": other})
        assert r.status_code == 403
        assert state_snapshot(conn) == before
        # the API's way under the prefix: the token from /api/v1/csrf in the header
        api_token = http.get(f"{PREFIX}/api/v1/csrf").json()["token"]
        assert api_token == token  # the cookie the page set is the one it answers with
        r = http.post(f"{PREFIX}/api/v1/jobs/{job_id}/retry",
                      headers={"X-CSRF-Token": api_token})
        assert r.status_code == 200, r.text
    assert job_state(conn, job_id) == "pending"


def test_a_cross_site_form_is_refused_under_the_prefix(proxied: str, conn: Conn,
                                                       browser: WebDriver) -> None:
    job_id = dead_job(conn, "emails")
    use_credential(browser, None)
    browser.get(f"{proxied}{PREFIX}/jobs/{job_id}")  # the browser holds the cookie
    wait_for(browser, lambda d: d.find_element(By.ID, "retry"))
    hostile = (f'<form id="f" method="post" action="{proxied}{PREFIX}/jobs/{job_id}/retry">'
               '<input name="csrf_token" value="guess"></form>'
               '<script>document.getElementById("f").submit()</script>')
    browser.get("data:text/html," + urllib.parse.quote(hostile))
    wait_for(browser, lambda d: "CsrfRejected" in d.page_source, "no CSRF refusal page")
    assert job_state(conn, job_id) == "dead"


def test_two_dashboards_under_two_prefixes_keep_their_own_cookies(
        web_server: WebFactory, conn: Conn, browser: WebDriver) -> None:
    first, second = dead_job(conn, "emails"), dead_job(conn, "emails")
    a = web_server(root_path="/a")
    b = web_server(root_path="/b")  # another process's secret: a's tokens do not sign here
    with PrefixProxy({"/a": a.url, "/b": b.url}) as proxy:
        use_credential(browser, None)
        browser.get(f"{proxy.url}/a/jobs/{first}")
        wait_for(browser, lambda d: d.find_element(By.ID, "retry"))
        browser.get(f"{proxy.url}/b/jobs/{second}")
        wait_for(browser, lambda d: d.find_element(By.ID, "retry")).click()
        wait_for(browser, lambda d: "notice=" in d.current_url, "no redirect on b")
        browser.get(f"{proxy.url}/a/jobs/{first}")
        wait_for(browser, lambda d: d.find_element(By.ID, "retry")).click()
        wait_for(browser, lambda d: "notice=" in d.current_url, "no redirect on a")
        every = browser.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
        paths = sorted(str(c["path"]) for c in every if c["name"] == "pgbatch_csrf")
    assert paths == ["/a", "/b"]
    assert (job_state(conn, first), job_state(conn, second)) == ("pending", "pending")
