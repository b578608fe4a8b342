"""Who may see and do what: credentials and kinds, read-only servers, the refusal of a
non-loopback bind without credentials, CSRF on every action, and hostile text rendered
escaped in a real browser (no injected script runs, the text shows as text)."""

from __future__ import annotations

import base64
import json
import urllib.parse
from typing import Any

import httpx
import psycopg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from pgbatch._errors import InvalidArgument
from pgbatch.cli import main
from pgbatch.web import Credential, WebConfig, create_app
from pgbatch.web.config import is_loopback
from tests.helpers import enqueue, state_snapshot
from tests.web_helpers import (  # noqa: F401 - fixtures
    ADMIN,
    READER,
    WebFactory,
    browser_fixture,
    dead_job,
    injected_script_ran,
    use_credential,
    wait_for,
    web_login_fixture,
    web_server_fixture,
)

Conn = psycopg.Connection[Any]


def basic(credential: Credential) -> dict[str, str]:
    raw = f"{credential.name}:{credential.secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def job_state(conn: Conn, job_id: object) -> str | None:
    row = conn.execute("select state from pgbatch.job where id = %s union all "
                       "select state from pgbatch.job_archive where id = %s",
                       [job_id, job_id]).fetchone()
    return None if row is None else str(row[0])


# -- authentication and kinds --------------------------------------------------------------


def test_without_credentials_every_request_is_401_with_a_basic_challenge(
        web_server: WebFactory) -> None:
    server = web_server(credentials=(ADMIN, READER))
    with server.client() as http:
        for path in ("/", "/jobs", "/api/v1/queues", "/metrics", "/api/v1/openapi.json"):
            r = http.get(path)
            assert r.status_code == 401, (path, r.text)
            assert r.headers["www-authenticate"].startswith("Basic realm=")
        body = http.get("/api/v1/queues").json()
        assert (body["code"], body["error"]) == ("HTTP401", "Unauthorized")
        assert http.get("/static/live.js").status_code == 200  # no data in static files
        wrong = http.get("/api/v1/queues", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        wrong_user = http.get("/api/v1/queues", headers=basic(
            Credential("someone", "admin", ADMIN.secret)))
        assert wrong_user.status_code == 401


def test_read_token_reads_everything_and_cannot_act(web_server: WebFactory,
                                                    conn: Conn) -> None:
    job_id = dead_job(conn, "emails")
    server = web_server(credentials=(ADMIN, READER))
    with server.client(READER) as http:
        assert http.get("/api/v1/jobs").status_code == 200
        assert http.get(f"/api/v1/jobs/{job_id}").json()["state"] == "dead"
        before = state_snapshot(conn)
        for action in ("retry", "cancel", "requeue"):
            r = http.post(f"/api/v1/jobs/{job_id}/{action}")
            assert r.status_code == 403, r.text
            assert r.json()["error"] == "ReadOnly"
        assert http.post("/api/v1/queues/emails/pause").status_code == 403
        assert state_snapshot(conn) == before
    with server.client(ADMIN) as http:  # a bearer token needs no CSRF token
        assert http.post(f"/api/v1/jobs/{job_id}/retry").status_code == 200
    assert job_state(conn, job_id) == "pending"


def test_basic_auth_works_for_both_kinds(web_server: WebFactory, conn: Conn) -> None:
    enqueue(conn, "emails")
    server = web_server(credentials=(ADMIN, READER))
    with httpx.Client(base_url=server.url, headers=basic(READER)) as http:
        assert http.get("/api/v1/csrf").json()["principal"] == {"name": "viewer", "kind": "read"}
        assert http.post("/api/v1/queues/emails/pause").json()["error"] == "ReadOnly"


def test_a_read_only_server_refuses_every_action_even_to_admins(web_server: WebFactory,
                                                                 conn: Conn) -> None:
    job_id = dead_job(conn, "emails")
    server = web_server(credentials=(ADMIN,), read_only=True)
    with server.client(ADMIN) as http:
        r = http.post(f"/api/v1/jobs/{job_id}/retry")
        assert r.status_code == 403
        assert r.json()["error"] == "ReadOnly"
        assert http.get("/api/v1/csrf").json()["principal"]["kind"] == "read"
    assert job_state(conn, job_id) == "dead"


# -- where it may listen -------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])  # noqa: S104
def test_a_non_loopback_bind_without_credentials_is_refused(host: str) -> None:
    with pytest.raises(InvalidArgument, match="needs authentication"):
        WebConfig(dsn="postgresql:///x", host=host).check()
    with pytest.raises(InvalidArgument, match="needs authentication"):
        create_app(WebConfig(dsn="postgresql:///x", host=host))
    WebConfig(dsn="postgresql:///x", host=host, credentials=(ADMIN,)).check()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.5.0.1", "::1", "[::1]", "localhost"])
def test_loopback_addresses_need_no_credentials(host: str) -> None:
    assert is_loopback(host)
    WebConfig(dsn="postgresql:///x", host=host).check()


def test_the_cli_refuses_a_public_bind_without_a_token_before_connecting(
        capsys: pytest.CaptureFixture[str]) -> None:
    # the DSN points nowhere: the refusal comes first, nothing is connected or started
    code = main(["web", "--host", "0.0.0.0", "--dsn", "postgresql://127.0.0.1:1/none"])  # noqa: S104
    assert code == 1
    assert "refusing to listen on 0.0.0.0" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "match"), [
    ("ops:admin", "NAME:KIND:SECRET"), (":admin:s", "NAME:KIND:SECRET"),
    ("ops:root:s", "must be read or admin"), ("ops:read:", "NAME:KIND:SECRET"),
])
def test_malformed_credentials_are_refused(text: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        Credential.parse(text)
    assert Credential.parse("ops:admin:a:b:c") == Credential("ops", "admin", "a:b:c")


# -- CSRF ----------------------------------------------------------------------------------


def test_actions_without_a_bearer_token_need_the_csrf_token(web_server: WebFactory,
                                                             conn: Conn) -> None:
    job_id = dead_job(conn, "emails")
    server = web_server()  # loopback, no credentials: the case a hostile page would target
    before = state_snapshot(conn)
    with httpx.Client(base_url=server.url) as http:
        r = http.post(f"/api/v1/jobs/{job_id}/retry")
        assert (r.status_code, r.json()["error"]) == (403, "CsrfRejected")
        r = http.post(f"/jobs/{job_id}/retry", data={"csrf_token": "forged.token"})
        assert r.status_code == 403
        assert "CsrfRejected" in r.text
        # a cookie and field that agree but were not signed by this server
        http.cookies.set("pgbatch_csrf", "abc.def")
        r = http.post(f"/jobs/{job_id}/retry", data={"csrf_token": "abc.def"})
        assert r.status_code == 403
        assert state_snapshot(conn) == before
        token = http.get("/api/v1/csrf").json()["token"]  # sets the signed cookie
        http.cookies.delete("pgbatch_csrf")
        http.cookies.set("pgbatch_csrf", token)
        with httpx.Client(base_url=server.url) as stranger:
            other = stranger.get("/api/v1/csrf").json()["token"]
        r = http.post(f"/jobs/{job_id}/retry", data={"csrf_token": other})  # someone else's
        assert r.status_code == 403
        r = http.post(f"/api/v1/jobs/{job_id}/retry", headers={"X-CSRF-Token": token})
        assert r.status_code == 200, r.text
    assert job_state(conn, job_id) == "pending"


def test_a_cross_site_form_cannot_act_through_the_browser(web_server: WebFactory, conn: Conn,
                                                          browser: WebDriver) -> None:
    job_id = dead_job(conn, "emails")
    server = web_server()
    use_credential(browser, None)
    browser.get(server.url + f"/jobs/{job_id}")  # the browser holds the dashboard's cookie
    wait_for(browser, lambda d: d.find_element(By.ID, "retry"))
    hostile = (f'<form id="f" method="post" action="{server.url}/jobs/{job_id}/retry">'
               '<input name="csrf_token" value="guess"></form>'
               '<script>document.getElementById("f").submit()</script>')
    browser.get("data:text/html," + urllib.parse.quote(hostile))
    wait_for(browser, lambda d: "CsrfRejected" in d.page_source, "no CSRF refusal page")
    assert job_state(conn, job_id) == "dead"


# -- hostile text --------------------------------------------------------------------------

HOSTILE_QUEUE = '<img src=x onerror="window.__pwned=true">q'
HOSTILE_TEXT = '</pre><script>window.__pwned=true</script><b>bold</b>"\'&amp;'


def test_hostile_queue_names_payloads_and_errors_render_as_text(
        web_server: WebFactory, conn: Conn, browser: WebDriver) -> None:
    job_id = dead_job(conn, HOSTILE_QUEUE, {"note": HOSTILE_TEXT, HOSTILE_TEXT: 1},
                      error={"type": "Boom", "message": HOSTILE_TEXT,
                             "traceback": HOSTILE_TEXT})
    enqueue(conn, HOSTILE_QUEUE, {"note": HOSTILE_TEXT})
    server = web_server()
    use_credential(browser, None)
    browser.get(server.url + "/")
    name = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "a.queue-name"))
    assert name.text == HOSTILE_QUEUE
    assert not browser.find_elements(By.CSS_SELECTOR, "main img")
    assert not injected_script_ran(browser)
    browser.get(server.url + "/jobs?" + urllib.parse.urlencode({"queue": HOSTILE_QUEUE}))
    rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.job"))
    assert len(rows) == 2
    assert not injected_script_ran(browser)
    browser.get(server.url + f"/jobs/{job_id}")
    payload = wait_for(browser, lambda d: d.find_element(By.ID, "job-payload"))
    assert json.dumps(HOSTILE_TEXT, ensure_ascii=False) in payload.text
    assert browser.find_element(By.ID, "job-traceback").text == HOSTILE_TEXT.strip()
    assert browser.find_element(By.ID, "job-queue").text == HOSTILE_QUEUE
    assert not browser.find_elements(By.CSS_SELECTOR, "main b")
    assert not injected_script_ran(browser)
    # the pause form posts to the encoded queue name, and the action works
    browser.get(server.url + "/")
    wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "button.pause")).click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "button.resume"))
    paused = conn.execute("select paused from pgbatch.queue where name = %s",
                          [HOSTILE_QUEUE]).fetchone()
    assert paused == (True,)
    assert not injected_script_ran(browser)


def test_hostile_text_in_an_error_message_is_escaped(web_server: WebFactory,
                                                     browser: WebDriver) -> None:
    server = web_server()
    use_credential(browser, None)
    browser.get(server.url + "/jobs?state=" + urllib.parse.quote(HOSTILE_TEXT))
    message = wait_for(browser, lambda d: d.find_element(By.ID, "error-message"))
    assert "InvalidArgument" in message.text
    assert "<script>" in message.text
    assert not injected_script_ran(browser)


def test_a_read_credential_sees_no_action_buttons(web_server: WebFactory, conn: Conn,
                                                  browser: WebDriver) -> None:
    job_id = dead_job(conn, "emails")
    server = web_server(credentials=(ADMIN, READER))
    use_credential(browser, READER)
    browser.get(server.url + f"/jobs/{job_id}")
    wait_for(browser, lambda d: d.find_element(By.ID, "job-state"))
    assert not browser.find_elements(By.CSS_SELECTOR, "div.actions button")
    assert "read-only" in browser.find_element(By.CSS_SELECTOR, "header").text
    use_credential(browser, ADMIN)
    browser.get(server.url + f"/jobs/{job_id}")
    assert wait_for(browser, lambda d: d.find_element(By.ID, "retry"))
