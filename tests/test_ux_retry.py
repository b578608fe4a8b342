"""A task decides about its own retry: ``Abort``, ``Retry(at=/delay=)``, ``retry_on``, ``dead_on``.

End to end through a real worker: the rows say whether the job was retried
(pending again, at the time asked for) or is dead at its first attempt.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import pgbatch
from pgbatch import InvalidArgument, Worker
from tests.conftest import TestDatabase
from tests.helpers import archive_row, job_row
from tests.worker_harness import LoopThread, app_on, wait_until

Row = dict[str, Any]


class Transient(Exception):
    """Worth retrying."""


class Permanent(Exception):
    """Never worth retrying."""


AT = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)


def _retried(conn: Any, jid: Any) -> Row:
    def pending_again() -> Row | None:
        r = job_row(conn, jid)
        return r if r is not None and r["state"] == "pending" and r["attempt"] == 1 else None
    row = wait_until(pending_again, 15, "the job to be retried")
    assert row is not None
    return row


def _dead(conn: Any, jid: Any) -> Row:
    row = wait_until(lambda: archive_row(conn, jid), 15, "the job to be dead")
    assert row is not None
    assert (row["state"], row["attempt"]) == ("dead", 1)
    return row


@pytest.fixture
def app_and_tasks(db: TestDatabase) -> Any:
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="rt", name="rt.retry_at", max_attempts=5)
        def retry_at() -> None:
            raise pgbatch.Retry("the API said come back later", at=AT)

        @app.task(queue="rt", name="rt.retry_delay", max_attempts=5)
        async def retry_delay() -> None:
            raise pgbatch.Retry(delay=3600)

        @app.task(queue="rt", name="rt.only_transient", max_attempts=5, backoff_base=3600,
                  retry_on=Transient)
        def only_transient(kind: str) -> None:
            raise Transient("try again") if kind == "transient" else Permanent("no")

        @app.task(queue="rt", name="rt.dead_on_permanent", max_attempts=5, backoff_base=3600,
                  dead_on=(Permanent, KeyError))
        async def dead_on_permanent(kind: str) -> None:
            raise Transient("try again") if kind == "transient" else Permanent("bad input")

        lt.start(Worker(app, ["rt"], concurrency=2, poll_interval=30))
        yield {"retry_at": retry_at, "retry_delay": retry_delay,
               "only_transient": only_transient, "dead_on_permanent": dead_on_permanent}


def test_retry_at_retries_at_that_time(db: TestDatabase, app_and_tasks: Any) -> None:
    conn = db.connect()
    jid = app_and_tasks["retry_at"].defer()
    row = _retried(conn, jid)
    assert row["run_at"] == AT
    assert row["last_error"]["type"] == "Retry"
    assert row["last_error"]["message"] == "the API said come back later"


def test_retry_delay_retries_that_much_later(db: TestDatabase, app_and_tasks: Any) -> None:
    conn = db.connect()
    before = datetime.now(UTC)
    jid = app_and_tasks["retry_delay"].defer()
    row = _retried(conn, jid)
    assert before + timedelta(minutes=59) < row["run_at"] < before + timedelta(minutes=61)


def test_retry_on_retries_only_those_exceptions(db: TestDatabase, app_and_tasks: Any) -> None:
    conn = db.connect()
    task = app_and_tasks["only_transient"]
    retried = _retried(conn, task.defer(kind="transient"))
    assert retried["last_error"]["type"] == "Transient"
    dead = _dead(conn, task.defer(kind="permanent"))
    assert dead["last_error"]["message"] == "Permanent: no"


def test_dead_on_makes_those_exceptions_final(db: TestDatabase, app_and_tasks: Any) -> None:
    conn = db.connect()
    task = app_and_tasks["dead_on_permanent"]
    dead = _dead(conn, task.defer(kind="permanent"))
    assert dead["last_error"]["message"] == "Permanent: bad input"
    assert _retried(conn, task.defer(kind="transient"))["last_error"]["type"] == "Transient"


def test_retry_options_are_checked_at_declaration() -> None:
    app = pgbatch.App("host=unused")
    with pytest.raises(InvalidArgument, match="retry_on"):
        app.task(retry_on=(ValueError, "oops"))(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        pgbatch.Retry(at=AT, delay=1)
    with pytest.raises(ValueError, match="aware datetime"):
        pgbatch.Retry(at=datetime(2031, 1, 1))
