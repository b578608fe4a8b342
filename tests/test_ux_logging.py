"""Log records made while a job runs carry its id, queue, task and attempt.

``pgbatch.JobContextFilter`` on a handler adds them to every record, from a
sync task's thread and from an async task alike; ``pgbatch.current_job()``
returns them (for structlog processors); outside a job they are None.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import pgbatch
from pgbatch import Worker
from tests.conftest import TestDatabase
from tests.helpers import archive_row
from tests.worker_harness import LoopThread, app_on, wait_until


class Capture(logging.Handler):
    """Keeps the records that reach it (after its filters)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    handler.addFilter(pgbatch.JobContextFilter())
    logger = logging.getLogger("myapp")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_records_made_by_tasks_carry_the_jobs_context(db: TestDatabase,
                                                      capture: Capture) -> None:
    conn = db.connect()
    seen: list[pgbatch.JobLogContext | None] = []
    log = logging.getLogger("myapp")
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="logs", name="logs.sync_task")
        def sync_task() -> None:
            seen.append(pgbatch.current_job())
            log.info("from a thread")

        @app.task(queue="logs", name="logs.async_task")
        async def async_task() -> None:
            seen.append(pgbatch.current_job())
            log.info("from the loop")

        lt.start(Worker(app, ["logs"], concurrency=2, poll_interval=30))
        sync_id = sync_task.defer()
        async_id = async_task.defer()
        wait_until(lambda: archive_row(conn, sync_id) and archive_row(conn, async_id), 15,
                   "the jobs to run")
    log.info("outside any job")

    by_message = {r.getMessage(): r for r in capture.records}
    for message, jid, task in (("from a thread", sync_id, "logs.sync_task"),
                               ("from the loop", async_id, "logs.async_task")):
        record = by_message[message]
        assert (record.job_id, record.queue, record.task, record.attempt) == (  # type: ignore[attr-defined]
            str(jid), "logs", task, 1)
    outside = by_message["outside any job"]
    assert (outside.job_id, outside.task) == (None, None)  # type: ignore[attr-defined]
    assert {j.job_id for j in seen if j is not None} == {sync_id, async_id}
    assert pgbatch.current_job() is None
