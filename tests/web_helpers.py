"""The web server and a real browser for the dashboard's tests.

- ``web_login``: the cluster-wide login role ``pgbatch_test_web`` (a member of
  ``pgbatch_admin`` only) the servers connect as, so the tests prove that the
  admin group role is enough.
- ``web_server``: a factory ``(db, **config) -> WebServer`` that serves
  ``create_app`` with uvicorn in a thread on a free loopback port against the
  test's database (the app's lifespan opens its pool); stopped, its thread
  joined, at teardown.
- ``browser``: a headless Chromium (Debian's ``/usr/bin/chromium`` driven
  through ``/usr/bin/chromedriver`` by Selenium), one per test module. Tests
  are skipped, with the reason, only when Chromium is missing and
  ``PGBATCH_TEST_REQUIRE_BROWSER`` is unset; CI sets it, so there a missing
  browser fails.
- Test modules import the fixture functions (``web_server_fixture``,
  ``web_login_fixture``, ``browser_fixture``) and ask for them by name
  (``web_server``, ``web_login``, ``browser``).
- ``screenshot(browser, name)``: saves ``docs/img/<name>.png`` for the README.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from pgbatch.web import Credential, WebConfig, create_app
from pgbatch.web.serve import BackgroundServer
from tests.conftest import PgTestServer, TestDatabase
from tests.helpers import claim, enqueue

WEB_LOGIN: Final = "pgbatch_test_web"
CHROMIUM: Final = Path(os.environ.get("PGBATCH_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER: Final = Path(os.environ.get("PGBATCH_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
REQUIRE_BROWSER: Final = bool(os.environ.get("PGBATCH_TEST_REQUIRE_BROWSER"))
SCREENSHOTS: Final = Path(__file__).resolve().parent.parent / "docs" / "img"
#: Seconds a browser wait or a server start may take on a busy machine.
WAIT_S: Final = 30.0

ADMIN: Final = Credential("ops", "admin", "admin-secret-0123456789")
READER: Final = Credential("viewer", "read", "read-secret-0123456789")


@pytest.fixture(name="web_login", scope="session")
def web_login_fixture(pg_server: PgTestServer) -> str:
    """The login role the web servers connect as: a member of pgbatch_admin, nothing else."""
    with psycopg.connect(pg_server.admin_dsn(), autocommit=True) as c, c.transaction():
        c.execute("select pg_advisory_xact_lock(8099550625553147907)")
        if c.execute("select from pg_roles where rolname = %s", [WEB_LOGIN]).fetchone() is None:
            c.execute(sql.SQL("create role {} login").format(sql.Identifier(WEB_LOGIN)))
        c.execute(sql.SQL("grant pgbatch_admin to {}").format(sql.Identifier(WEB_LOGIN)))
    return WEB_LOGIN


@dataclass
class WebServer:
    """A running app: ``url`` (no trailing slash), its ``config``, a way to stop it."""

    url: str
    config: WebConfig
    _server: BackgroundServer = field(repr=False)

    def client(self, credential: Credential | None = None, **kw: Any) -> httpx.Client:
        """An HTTP client of this server, with ``credential`` as a bearer token."""
        headers = {"Authorization": f"Bearer {credential.secret}"} if credential else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=WAIT_S, **kw)

    def stop(self) -> None:
        """Stop serving (runs the lifespan's shutdown: the pool closes) and join the thread."""
        self._server.stop()


def start_web(dsn: str, root_path: str = "", **config: Any) -> WebServer:
    """Serve ``create_app(WebConfig(dsn, **config))`` on a free loopback port.

    ``root_path``: the prefix a reverse proxy would strip (uvicorn's ``--root-path``).
    """
    cfg = WebConfig(dsn=dsn, **config)
    server = BackgroundServer(create_app(cfg), root_path=root_path).start()
    return WebServer(server.url, cfg, server)


WebFactory = Callable[..., WebServer]


@pytest.fixture(name="web_server")
def web_server_fixture(db: TestDatabase, web_login: str) -> Iterator[WebFactory]:
    """``web_server(**config)``: a server on ``db`` as the admin login (stopped at teardown)."""
    started: list[WebServer] = []

    def make(root_path: str = "", **config: Any) -> WebServer:
        server = start_web(make_conninfo(db.dsn, user=web_login), root_path, **config)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def _browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists() or shutil.which(str(path)) is None:
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(name="browser", scope="module")
def browser_fixture() -> Iterator[WebDriver]:
    """A headless Chromium, shared by the tests of a module (cookies cleared per use)."""
    missing = _browser_missing()
    if missing is not None:
        if REQUIRE_BROWSER:
            pytest.fail(f"PGBATCH_TEST_REQUIRE_BROWSER is set but {missing}")
        pytest.skip(f"no browser for the dashboard tests: {missing}")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1360,900", "--disable-extensions", "--no-first-run",
                "--disable-background-networking", "--disable-sync"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def use_credential(driver: WebDriver, credential: Credential | None) -> None:
    """Send ``credential`` as basic auth on every request of ``driver`` (None: none)."""
    driver.delete_all_cookies()
    driver.execute_cdp_cmd("Network.enable", {})
    headers = {}
    if credential is not None:
        raw = f"{credential.name}:{credential.secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any],
             message: str = "") -> Any:
    """Wait (event-driven polling by Selenium, bounded) until ``condition`` is truthy.

    An element that the page's live refresh replaced while ``condition`` read it
    (stale) counts as "not yet", like one not found."""
    return WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,)
                         ).until(condition, message)


def screenshot(driver: WebDriver, name: str) -> Path:
    """Save ``docs/img/<name>.png`` (the README shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def injected_script_ran(driver: WebDriver) -> bool:
    """Whether a test's hostile markup managed to run script (it sets ``window.__pwned``)."""
    return bool(driver.execute_script("return window.__pwned === true"))


# -- jobs in the states the tests need (superuser connection, real SQL API calls) ----------


def dead_job(conn: psycopg.Connection[Any], queue: str, payload: Any = None,
             error: Any = None) -> UUID:
    """A job that failed its only attempt with ``error`` (a traceback by default): dead."""
    job_id = enqueue(conn, queue, payload if payload is not None else {"n": 1}, max_attempts=1)
    token = _claim_job(conn, queue, job_id)
    err = error if error is not None else {
        "type": "ValueError", "message": "bad row 7",
        "traceback": 'Traceback (most recent call last):\n  File "task.py", line 3, in run\n'
                     "ValueError: bad row 7\n"}
    conn.execute("select pgbatch.nack(%s, %s, %s)", [job_id, token, Jsonb(err)])
    return job_id


def done_job(conn: psycopg.Connection[Any], queue: str, payload: Any = None) -> UUID:
    """A job acked by its first attempt: done."""
    job_id = enqueue(conn, queue, payload if payload is not None else {"n": 1})
    token = _claim_job(conn, queue, job_id)
    conn.execute("select pgbatch.ack(%s, %s)", [job_id, token])
    return job_id


def claimed_job(conn: psycopg.Connection[Any], queue: str, payload: Any = None) -> UUID:
    """A job claimed by a (pretend) worker with a 10-minute lease."""
    job_id = enqueue(conn, queue, payload if payload is not None else {"n": 1})
    _claim_job(conn, queue, job_id, "10 minutes")
    return job_id


def _claim_job(conn: psycopg.Connection[Any], queue: str, job_id: UUID,
               lease: str = "30 seconds") -> UUID:
    rows = claim(conn, queue, 1000, lease)
    mine = [r for r in rows if r["id"] == job_id]
    assert mine, f"job {job_id} was not claimable"
    others = [r for r in rows if r["id"] != job_id]
    for r in others:  # put back what this claim took besides the job
        conn.execute("select pgbatch.release(%s, %s)", [r["id"], r["claim_token"]])
    return UUID(str(mine[0]["claim_token"]))
