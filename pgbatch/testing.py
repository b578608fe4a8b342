"""Helpers for your own tests: a migrated database, and running the queue until it is empty.

As a pytest plugin, in your ``conftest.py``::

    pytest_plugins = ["pgbatch.testing"]

    def test_signup_sends_a_welcome_email(pgbatch_dsn: str) -> None:
        app = myproject.tasks.app_for(pgbatch_dsn)          # your App on that database
        signup("a@example.com")                             # enqueues send_email
        stats = pgbatch.testing.run_until_empty(app)        # a worker, in this process
        assert stats.succeeded == 1

Fixtures:

- ``pgbatch_server_dsn`` (session): a superuser DSN of a PostgreSQL server:
  ``$PGBATCH_TEST_DSN`` when set, else an embedded PostgreSQL 18 in a
  temporary directory (``pip install 'pgbatch[embedded]'``), removed at the end.
- ``pgbatch_dsn`` (per test): a fresh database on that server, migrated with
  ``pgbatch.migrate``, dropped after the test.

``run_until_empty(app, queues)`` runs a ``Worker`` of ``app`` in the calling
thread until none of ``queues`` (default: the App's) holds a job that is due
now or claimed, then stops it gracefully and returns its ``WorkerStats``.
Jobs scheduled later (``run_at``, a retry's backoff) do not keep it running.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pgbatch._app import App
from pgbatch.worker.stats import WorkerStats
from pgbatch.worker.worker import Worker


async def arun_until_empty(app: App, queues: list[str] | None = None, *,
                           timeout: float = 60.0, concurrency: int = 1,
                           **options: Any) -> WorkerStats:
    """Async ``run_until_empty`` (on the running loop)."""
    worker = Worker(app, queues, concurrency=concurrency, install_signal_handlers=False,
                    poll_interval=options.pop("poll_interval", 0.05), **options)
    run = asyncio.create_task(worker.run())
    client = app.async_client
    deadline = time.monotonic() + timeout
    try:
        ready = asyncio.create_task(worker.ready.wait())
        await asyncio.wait([run, ready], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        while not run.done():
            stats = [s for s in await client.queue_stats() if s.queue in worker.queues]
            if all(s.pending == 0 and s.claimed == 0 for s in stats) and not (
                    worker.runner is not None and worker.runner.running):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the queues {worker.queues} were not empty after {timeout}s")
            await asyncio.sleep(0.02)
    finally:
        worker.stop()
        await run
    return worker.stats


def run_until_empty(app: App, queues: list[str] | None = None, *, timeout: float = 60.0,
                    concurrency: int = 1, **options: Any) -> WorkerStats:
    """Run a worker of ``app`` until its queues hold no job due now; its stats.

    Blocks the calling thread (it runs its own event loop: call
    ``arun_until_empty`` from async code). ``options`` are ``Worker``'s.
    Raises ``TimeoutError`` after ``timeout`` seconds.
    """
    async def main() -> WorkerStats:
        try:
            return await arun_until_empty(app, queues, timeout=timeout,
                                          concurrency=concurrency, **options)
        finally:
            await app.aclose()
    return asyncio.run(main())


def create_database(server_dsn: str) -> str:
    """Create an empty database on the server of ``server_dsn`` and migrate it; its DSN."""
    from pgbatch.migrations import migrate  # noqa: PLC0415 - alembic is slow to import

    name = f"pgbatch_test_{secrets.token_hex(6)}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = make_conninfo(server_dsn, dbname=name)
    migrate(dsn)
    return dsn


def drop_database(dsn: str) -> None:
    """Drop a database made by ``create_database`` (its connections are ended)."""
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(make_conninfo(dsn, dbname="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(str(name))))


def embedded_server() -> Iterator[str]:
    """Start an embedded PostgreSQL in a temporary directory; yield its DSN; remove it."""
    from pgbatch.embedded import PgServer  # noqa: PLC0415

    base = tempfile.gettempdir()
    if len(base) > 40:  # a Unix socket path must stay short
        base = "/tmp"  # noqa: S108 - a short, world-writable base
    tmp = Path(tempfile.mkdtemp(prefix="pgbatch-", dir=base))
    server = PgServer.embedded(tmp / "data")
    try:
        server.start()
        yield server.dsn()
    finally:
        try:
            server.destroy()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


try:
    import pytest
except ImportError:  # pragma: no cover - the plugin needs pytest, the helpers do not
    pass
else:
    import os

    @pytest.fixture(scope="session")
    def pgbatch_server_dsn() -> Iterator[str]:
        """A superuser DSN: ``$PGBATCH_TEST_DSN``, else an embedded server for the session."""
        given = os.environ.get("PGBATCH_TEST_DSN")
        if given:
            yield given
            return
        yield from embedded_server()

    @pytest.fixture
    def pgbatch_dsn(pgbatch_server_dsn: str) -> Iterator[str]:
        """A fresh, migrated database for one test (dropped afterwards)."""
        dsn = create_database(pgbatch_server_dsn)
        try:
            yield dsn
        finally:
            drop_database(dsn)
