"""A step's progress bar: ``SqlReader(count_total=True)`` counts its input once, at the
step's first open, and keeps the count as ``total`` in its context entry, on the Python
path and on the in-server chunk path (pushdown.py) alike, so a restart keeps it (rows
added since do not change it) and a step may switch paths; the run page shows the
reader's ``read`` of ``total`` as a progress bar with the right percentage (Chromium).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from pgbatch import Worker
from pgbatch.batch import ChunkStep, Job, SqlReader, TableWriter, register_jobs, use_batch
from pgbatch.batch.faults import set_fault_hook
from pgbatch.web.api.runs import progress_of
from tests.batch_helpers import (
    invariants_checked,  # noqa: F401 - the fixture of pytestmark
    launch,
    steps,
    wait_status,
)
from tests.conftest import TestDatabase
from tests.helpers import scalar
from tests.web_helpers import (  # noqa: F401 - fixtures
    WebFactory,
    browser_fixture,
    use_credential,
    wait_for,
    web_login_fixture,
    web_server_fixture,
)
from tests.worker_harness import LoopThread, app_on, worker_dsn

pytestmark = pytest.mark.usefixtures("invariants_checked")

Conn = psycopg.Connection[Any]
ROWS = 1000
CHUNK = 100
#: A DSN no reader can connect to: a step that reads with it ran in the server.
NOWHERE = "host=/nonexistent/pgbatch-progress dbname=nowhere"
Hook = Callable[[Callable[[str, dict[str, Any]], None] | None], None]


@pytest.fixture
def tables(conn: Conn) -> None:
    """``src(id int, note)`` with ROWS rows and an empty ``dst`` like it."""
    conn.execute("create table public.src (id int primary key, note text)")
    conn.execute("insert into public.src select i, 'row ' || i from generate_series(1, %s::int) i",
                 [ROWS])
    conn.execute("create table public.dst (id int primary key, note text)")


@pytest.fixture
def hook() -> Iterator[Hook]:
    """Installs a fault hook for the test; removed at the end."""
    yield set_fault_hook
    set_fault_hook(None)


def copy_job(reader_dsn: str, *, server: bool, count_total: bool = True) -> Job:
    """Job ``copy``: src -> dst in chunks of CHUNK, the reader counting its input; in the
    server (``server``) or in Python (a DSN that is not the worker pool's)."""
    reader = SqlReader(reader_dsn, "select id, note from public.src", "id", name="src",
                       same_database=server, count_total=count_total)
    writer = TableWriter("public.dst", ["id", "note"])
    return Job("copy", [ChunkStep("copy", reader=reader, writer=writer, chunk_size=CHUNK)])


def python_dsn(db: TestDatabase) -> str:
    return worker_dsn(db.dsn) + " application_name=progress-test"


def run_until(db: TestDatabase, conn: Conn, job: Job, execution_id: int, status: str) -> None:
    """Run one in-process worker on ``job`` until the execution is ``status``."""
    with app_on(db.dsn) as app, LoopThread() as lt:
        use_batch(app, [job], recovery_interval=0.5)
        worker = lt.start(Worker(app, concurrency=1, poll_interval=0.2))
        wait_status(conn, execution_id, status)
        lt.stop(worker)


def stop_after_chunk(db: TestDatabase, execution_id: int, seq: int
                     ) -> Callable[[str, dict[str, Any]], None]:
    """A fault hook that asks the execution to stop once chunk ``seq`` committed (the
    stop is read back by the commit of the chunk after it)."""
    def hook(name: str, info: dict[str, Any]) -> None:
        if name == "after_commit_before_ack" and info["seq"] == seq:
            with db.connect() as c:
                c.execute("select pgbatch.stop_execution(%s)", [execution_id])
    return hook


def entry(conn: Conn, execution_id: int) -> dict[str, Any]:
    context = steps(conn, execution_id)[0]["context"]
    assert isinstance(context, dict)
    value = context["src"]
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize("server", [False, True], ids=["python", "server"])
def test_the_count_is_kept_in_the_context_and_survives_a_restart(
        db: TestDatabase, conn: Conn, tables: None, hook: Hook, server: bool) -> None:
    job = copy_job(NOWHERE if server else python_dsn(db), server=server)
    register_jobs(conn, [job])
    first = launch(conn, "copy")
    hook(stop_after_chunk(db, first, 2))
    run_until(db, conn, job, first, "STOPPED")
    hook(None)
    assert entry(conn, first)["total"] == ROWS
    assert entry(conn, first)["read"] == 3 * CHUNK
    conn.execute("insert into public.src select i, 'late' from generate_series(%s::int, %s::int) i",
                 [ROWS + 1, ROWS + 50])
    second = int(scalar(conn, "select pgbatch.restart_execution(%s)", [first]))
    run_until(db, conn, job, second, "COMPLETED")
    done = entry(conn, second)
    assert (done["read"], done["total"]) == (ROWS + 50, ROWS)  # counted once, at the start
    assert steps(conn, second)[0]["read_count"] == ROWS + 50 - 3 * CHUNK
    assert progress_of(steps(conn, second)[0]["context"], 0) == (ROWS, ROWS + 50)


def test_a_step_switching_paths_keeps_the_count(db: TestDatabase, conn: Conn, tables: None,
                                                hook: Hook) -> None:
    python, server = copy_job(python_dsn(db), server=False), copy_job(NOWHERE, server=True)
    register_jobs(conn, [python])
    exec_id = launch(conn, "copy")
    for job in (python, server):
        hook(stop_after_chunk(db, exec_id, 1))
        run_until(db, conn, job, exec_id, "STOPPED")
        hook(None)
        assert entry(conn, exec_id)["total"] == ROWS
        conn.execute("delete from public.src where id = (select max(id) from public.src)")
        exec_id = int(scalar(conn, "select pgbatch.restart_execution(%s)", [exec_id]))
    run_until(db, conn, python, exec_id, "COMPLETED")
    assert entry(conn, exec_id)["total"] == ROWS
    assert entry(conn, exec_id)["read"] == ROWS - 2


@pytest.mark.parametrize("server", [False, True], ids=["python", "server"])
def test_without_count_total_no_total_is_stored(db: TestDatabase, conn: Conn, tables: None,
                                                server: bool) -> None:
    job = copy_job(NOWHERE if server else python_dsn(db), server=server, count_total=False)
    register_jobs(conn, [job])
    exec_id = launch(conn, "copy")
    run_until(db, conn, job, exec_id, "COMPLETED")
    assert "total" not in entry(conn, exec_id)
    assert progress_of(steps(conn, exec_id)[0]["context"], ROWS) == (None, ROWS)


def test_progress_of_reads_the_top_level_total_or_the_readers() -> None:
    assert progress_of({"total": 200}, 50) == (200, 50)
    assert progress_of({"src": {"after": [], "read": 30, "total": 120}}, 10) == (120, 30)
    assert progress_of({"a": {"read": 10, "total": 40}, "b": {"read": 5, "total": 60}}, 0) == \
        (100, 15)
    assert progress_of({"src": {"after": [], "read": 30}}, 30) == (None, 30)
    assert progress_of({"total": True}, 3) == (None, 3)
    assert progress_of(None, 3) == (None, 3)


@pytest.mark.parametrize("server", [False, True], ids=["python", "server"])
def test_the_run_page_shows_the_progress_bar(db: TestDatabase, conn: Conn, tables: None,
                                             hook: Hook, web_server: WebFactory,
                                             browser: WebDriver, server: bool) -> None:
    job = copy_job(NOWHERE if server else python_dsn(db), server=server)
    register_jobs(conn, [job])
    first = launch(conn, "copy")
    hook(stop_after_chunk(db, first, 3))
    run_until(db, conn, job, first, "STOPPED")
    hook(None)
    web = web_server()
    use_credential(browser, None)
    browser.get(f"{web.url}/runs/{first}")
    cell = wait_for(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, 'tr.step[data-step="copy"] td.progress'))
    bar = cell.find_element(By.TAG_NAME, "progress")
    assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("40", "100")
    assert bar.get_attribute("title") == f"400 of {ROWS}"
    assert cell.find_element(By.CSS_SELECTOR, ".percent").text == "40%"
    # the restarted execution's step reads on from 400: its bar counts from there too
    second = int(scalar(conn, "select pgbatch.restart_execution(%s)", [first]))
    hook(stop_after_chunk(db, second, 2))
    run_until(db, conn, job, second, "STOPPED")
    hook(None)
    browser.get(f"{web.url}/runs/{second}")
    cell = wait_for(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, 'tr.step[data-step="copy"] td.progress'))
    assert cell.find_element(By.CSS_SELECTOR, ".percent").text == "70%"
    assert browser.find_element(By.CSS_SELECTOR, "tr.step td.read").text == "300"
