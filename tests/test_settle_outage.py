"""A settlement lost to a dropped connection: one WARNING that says the lease will expire.

The pooled connection the nack is sent on is terminated first
(``pg_terminate_backend``), so the nack fails the real way. No traceback, no
ERROR; the job stays claimed until its lease expires (the reaper then retries it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pgbatch import AsyncClient
from pgbatch.worker.settler import Settler
from tests.conftest import TestDatabase
from tests.helpers import counts, enqueue

APP_NAME = "pgbatch-settle-outage"


def test_nack_on_a_dropped_connection_is_one_warning(
        db: TestDatabase, conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture) -> None:
    """The nack fails; one WARNING names the job and says its lease will expire."""
    job_id = enqueue(conn, "settle.outage")

    async def main() -> str | None:
        client = await AsyncClient.connect(make_conninfo(db.dsn, application_name=APP_NAME),
                                           min_size=1, max_size=1)
        try:
            settler = Settler(client)
            (job,) = await client.claim("settle.outage")
            conn.execute("select pg_terminate_backend(pid) from pg_stat_activity"
                         " where application_name = %s", [APP_NAME])
            return await settler.nack(job, {"type": "Boom", "message": "boom"})
        finally:
            await client.close()

    with caplog.at_level(logging.INFO, logger="pgbatch"):
        state = asyncio.run(main())
    assert state is None
    worker_lines = [r for r in caplog.records if r.name == "pgbatch.worker"
                    and r.levelno >= logging.WARNING]
    assert len(worker_lines) == 1, [r.getMessage() for r in worker_lines]
    (line,) = worker_lines
    assert line.levelno == logging.WARNING
    assert line.exc_info is None
    message = line.getMessage()
    assert str(job_id) in message
    assert "lease will expire" in message
    assert "connection was lost" in message
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert counts(conn, "settle.outage")["claimed"] == 1  # nothing was settled
