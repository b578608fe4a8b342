"""``timeout=``: what it means for async and for sync tasks, and its error.

An async task is cancelled at its timeout. A sync task's thread cannot be
stopped: the worker keeps its slot and its claim until the function returns,
so no second attempt runs while the first still does, then fails the attempt.
Either way ``last_error`` is a ``TaskTimeout`` whose message says what happened.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from pgbatch import Worker
from tests.conftest import TestDatabase
from tests.helpers import archive_row, job_row
from tests.worker_harness import LoopThread, app_on, wait_until


def test_a_sync_task_past_its_timeout_holds_its_claim_until_it_returns_then_fails(
        db: TestDatabase, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pgbatch")
    conn = db.connect()
    release = threading.Event()
    runs: list[int] = []
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="slow-sync", timeout=0.2, max_attempts=1, pass_context=True)
        def blocks(ctx: Any) -> None:
            runs.append(ctx.attempt)
            release.wait(60)

        lt.start(Worker(app, ["slow-sync"], concurrency=2, poll_interval=30))
        jid = blocks.defer()
        wait_until(lambda: any("ran past its timeout" in r.getMessage()
                               for r in caplog.records), 30, "the timeout to pass")
        row = job_row(conn, jid)
        assert row is not None
        assert (row["state"], row["attempt"]) == ("claimed", 1)  # held, not retried
        release.set()
        archived = wait_until(lambda: archive_row(conn, jid), 30, "the job to be settled")
    assert archived is not None
    assert runs == [1]
    assert archived["state"] == "dead"
    error = archived["last_error"]
    assert error["type"] == "TaskTimeout"
    assert "did not finish within its timeout of 0.2s" in error["message"]
    assert "a sync task" in error["message"]


def test_an_async_task_past_its_timeout_is_cancelled_and_fails_with_a_message(
        db: TestDatabase) -> None:
    conn = db.connect()
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="slow-async", timeout=0.2, max_attempts=1)
        async def sleeps() -> None:
            await asyncio.sleep(3600)

        lt.start(Worker(app, ["slow-async"], concurrency=1, poll_interval=30))
        jid = sleeps.defer()
        archived = wait_until(lambda: archive_row(conn, jid), 30, "the job to be settled")
    assert archived is not None
    error = archived["last_error"]
    assert error["type"] == "TaskTimeout"
    assert error["message"].endswith("did not finish within its timeout of 0.2s and was cancelled")


def test_a_timeout_error_raised_by_the_task_itself_is_its_own(db: TestDatabase) -> None:
    conn = db.connect()
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="own-timeout", timeout=30, max_attempts=1)
        async def raises() -> None:
            raise TimeoutError("the SMTP server did not answer")

        lt.start(Worker(app, ["own-timeout"], concurrency=1, poll_interval=30))
        jid = raises.defer()
        archived = wait_until(lambda: archive_row(conn, jid), 30, "the job to be settled")
    assert archived is not None
    error = archived["last_error"]
    assert (error["type"], error["message"]) == ("TimeoutError", "the SMTP server did not answer")
