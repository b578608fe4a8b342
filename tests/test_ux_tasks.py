"""Task authors' experience: failures no retry can fix are dead at once, with a hint.

An unknown task, a short task name, kwargs that do not fit the task's
signature, or a task that raises ``pgbatch.Abort`` end the job dead at its
first attempt; an ordinary failure (a ``TypeError`` raised inside a task whose
arguments fit, too) is retried. Failed attempts are logged at WARNING, dead
jobs at ERROR, each with its traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

import pgbatch
from pgbatch import App, JobContext, Worker
from tests.conftest import TestDatabase
from tests.helpers import archive_row, job_row
from tests.worker_harness import LoopThread, app_on, enqueue_jobs, wait_until

Row = dict[str, Any]


def _dead(conn: Any, jid: Any) -> Row:
    row = wait_until(lambda: archive_row(conn, jid), 15, "the job to be settled")
    assert row is not None
    return row


def _register(app: App) -> None:
    @app.task(queue="ux", name="mytasks.ingest")
    def ingest(path: str, limit: int = 10) -> None:
        return None

    @app.task(queue="ux", name="mytasks.ingest_async")
    async def ingest_async(path: str) -> None:
        return None

    @app.task(queue="ux", name="mytasks.with_ctx", pass_context=True)
    def with_ctx(ctx: JobContext, n: int) -> None:
        return None

    @app.task(queue="ux", name="mytasks.tx", transactional=True)
    def tx(ctx: JobContext, n: int) -> None:
        return None

    @app.task(queue="ux", name="mytasks.inner_type_error", max_attempts=3, backoff_base=3600)
    def inner_type_error(n: int) -> None:
        raise TypeError("a bug inside the task")

    @app.task(queue="ux", name="mytasks.aborts", max_attempts=5)
    def aborts() -> None:
        raise pgbatch.Abort("the account is closed")

    @app.task(queue="ux", name="mytasks.fails", max_attempts=2, backoff_base=0.01)
    def fails() -> None:
        raise RuntimeError("boom")


@pytest.fixture
def ux_worker(db: TestDatabase) -> Any:
    with app_on(db.dsn) as app, LoopThread() as lt:
        _register(app)
        lt.start(Worker(app, ["ux"], concurrency=2, poll_interval=30))
        yield app


def test_an_unknown_task_is_dead_at_its_first_attempt(db: TestDatabase, ux_worker: App) -> None:
    conn = db.connect()
    (jid,) = enqueue_jobs(conn, "ux", "no.such.task", max_attempts=20)
    row = _dead(conn, jid)
    assert (row["state"], row["attempt"]) == ("dead", 1)
    message = row["last_error"]["message"]
    assert message.startswith("UnknownTask: no task named 'no.such.task'")


def test_a_short_task_name_is_dead_at_once_with_the_full_name_as_hint(
        db: TestDatabase, ux_worker: App) -> None:
    conn = db.connect()
    (jid,) = enqueue_jobs(conn, "ux", "ingest", {"path": "/x"}, max_attempts=20)
    row = _dead(conn, jid)
    assert (row["state"], row["attempt"]) == ("dead", 1)
    message = row["last_error"]["message"]
    assert "did you mean 'mytasks.ingest'?" in message
    assert "module.function" in message


def test_a_main_module_task_name_is_explained(db: TestDatabase, ux_worker: App) -> None:
    conn = db.connect()
    (jid,) = enqueue_jobs(conn, "ux", "__main__.ingest", {"path": "/x"})
    row = _dead(conn, jid)
    assert row["attempt"] == 1
    assert "__main__" in row["last_error"]["message"]
    assert "importable module" in row["last_error"]["message"]


@pytest.mark.parametrize(("task", "kwargs", "detail"), [
    ("mytasks.ingest", {"limit": 5}, "missing a required argument: 'path'"),
    ("mytasks.ingest", {"path": "/x", "colour": "red"}, "unexpected keyword argument 'colour'"),
    ("mytasks.ingest_async", {}, "missing a required argument: 'path'"),
    ("mytasks.with_ctx", {"m": 1}, "'n'"),
    ("mytasks.tx", {}, "missing a required argument: 'n'"),
])
def test_kwargs_that_do_not_fit_the_signature_are_dead_at_once_with_the_signature(
        db: TestDatabase, ux_worker: App, task: str, kwargs: dict[str, Any],
        detail: str) -> None:
    conn = db.connect()
    (jid,) = enqueue_jobs(conn, "ux", task, kwargs, max_attempts=20)
    row = _dead(conn, jid)
    assert (row["state"], row["attempt"]) == ("dead", 1)
    message = row["last_error"]["message"]
    assert message.startswith(f"TaskArgumentsMismatch: task {task}(")
    assert detail in message


def test_a_type_error_inside_a_task_whose_arguments_fit_is_retried(
        db: TestDatabase, ux_worker: App) -> None:
    conn = db.connect()
    (jid,) = enqueue_jobs(conn, "ux", "mytasks.inner_type_error", {"n": 1}, max_attempts=3)

    def retried() -> Row | None:
        r = job_row(conn, jid)
        return r if r is not None and r["state"] == "pending" and r["last_error"] else None

    row = wait_until(retried, 15, "the job to be nacked")
    assert row is not None
    assert row["attempt"] == 1
    assert row["last_error"]["type"] == "TypeError"
    assert row["last_error"]["message"] == "a bug inside the task"


def test_a_task_raising_abort_is_dead_at_once(db: TestDatabase, ux_worker: App) -> None:
    conn = db.connect()
    (jid,) = enqueue_jobs(conn, "ux", "mytasks.aborts", max_attempts=5)
    row = _dead(conn, jid)
    assert (row["state"], row["attempt"]) == ("dead", 1)
    assert row["last_error"]["message"] == "Abort: the account is closed"


def test_failures_are_logged_at_warning_and_dead_jobs_at_error_with_tracebacks(
        db: TestDatabase, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgbatch")
    conn = db.connect()
    with app_on(db.dsn) as app, LoopThread() as lt:
        _register(app)
        lt.start(Worker(app, ["ux"], concurrency=1, poll_interval=30))
        (jid,) = enqueue_jobs(conn, "ux", "mytasks.fails", max_attempts=2)
        (unknown,) = enqueue_jobs(conn, "ux", "ingest")
        _dead(conn, jid)
        _dead(conn, unknown)
    mine = [r for r in caplog.records if str(jid) in r.getMessage()]
    warnings = [r for r in mine if r.levelno == logging.WARNING]
    errors = [r for r in mine if r.levelno == logging.ERROR]
    assert len(warnings) == 1
    assert "attempt 1 failed" in warnings[0].getMessage()
    assert len(errors) == 1
    assert "attempt 2 is dead" in errors[0].getMessage()
    for record in (warnings[0], errors[0]):
        assert record.exc_info is not None
        assert "RuntimeError: boom" in caplog.text
    dead_unknown = [r for r in caplog.records
                    if str(unknown) in r.getMessage() and r.levelno == logging.ERROR]
    assert len(dead_unknown) == 1
    assert "UnknownTask" in dead_unknown[0].getMessage()


@pytest.mark.parametrize("kind", ["sync", "async", "transactional"])
def test_a_stored_traceback_starts_at_the_tasks_own_code(db: TestDatabase, kind: str) -> None:
    conn = db.connect()
    with app_on(db.dsn) as app, LoopThread() as lt:
        if kind == "sync":
            @app.task(queue="tb", name="tb.fails", max_attempts=1)
            def fails() -> None:
                raise RuntimeError("boom in the task")
        elif kind == "async":
            @app.task(queue="tb", name="tb.fails", max_attempts=1)
            async def fails() -> None:
                raise RuntimeError("boom in the task")
        else:
            @app.task(queue="tb", name="tb.fails", max_attempts=1, transactional=True)
            def fails(ctx: JobContext) -> None:
                raise RuntimeError("boom in the task")

        lt.start(Worker(app, ["tb"], concurrency=1, poll_interval=30))
        (jid,) = enqueue_jobs(conn, "tb", "tb.fails", max_attempts=1)
        row = _dead(conn, jid)
    tb = row["last_error"]["traceback"]
    lines = tb.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert __file__ in lines[1], tb  # the first frame is the task's, not the worker's
    assert tb.rstrip().endswith("RuntimeError: boom in the task")


def test_unknown_tasks_count_as_failed_in_the_workers_stats(db: TestDatabase) -> None:
    conn = db.connect()
    with app_on(db.dsn) as app, LoopThread() as lt:
        _register(app)
        worker = lt.start(Worker(app, ["ux"], concurrency=1, poll_interval=30))
        (jid,) = enqueue_jobs(conn, "ux", "nobody.has.this")
        _dead(conn, jid)
        assert lt.call(lambda: worker.stats.failed) == 1
