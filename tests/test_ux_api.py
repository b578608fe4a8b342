"""The public Python API a user meets first: migrate, read a job, enqueue many of a task.

``pgbatch.migrate(dsn)`` / ``App.migrate()`` / ``pgbatch.migrations`` replace
the private ``pgbatch._migrate``; ``App.get_job`` reads a job's state;
``Task.enqueue_many`` enqueues a batch of one task in one call (and one
transaction); ``pgbatch -q migrate`` prints nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql

import pgbatch
from pgbatch import App, JobNotFound, cli, migrations
from tests.conftest import PgTestServer, TestDatabase
from tests.helpers import job_row, scalar
from tests.worker_harness import LoopThread

NewDatabase = Callable[[], str]


@pytest.fixture
def new_database(pg_server: PgTestServer) -> Iterator[NewDatabase]:
    """Factory of empty databases (superuser DSNs), all dropped after the test."""
    created: list[str] = []
    admin = pg_server.admin_dsn()

    def make() -> str:
        name = f"pgbatch_ux_{secrets.token_hex(5)}"
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return pg_server.admin_dsn(name)

    yield make
    with psycopg.connect(admin, autocommit=True) as c:
        for name in created:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def test_pgbatch_migrate_installs_then_is_a_no_op(new_database: NewDatabase) -> None:
    dsn = new_database()
    assert migrations.current(dsn) is None
    applied = pgbatch.migrate(dsn)
    assert applied[0] == "0001_initial"
    assert applied[-1] == migrations.head()
    assert migrations.current(dsn) == migrations.head()
    assert migrations.check_schema(dsn) == migrations.head()
    assert pgbatch.migrate(dsn) == []
    assert "create table pgbatch.job" in migrations.upgrade_sql().lower()


def test_app_migrate_uses_the_apps_dsn(new_database: NewDatabase) -> None:
    app = App(new_database())
    try:
        assert app.migrate()[-1] == migrations.head()
        assert app.migrate() == []
    finally:
        app.close()


def test_migrate_quiet_prints_nothing(new_database: NewDatabase,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    dsn = new_database()
    assert cli.main(["-q", "migrate", "--dsn", dsn]) == 0
    assert cli.main(["migrate", "-q", "--dsn", dsn]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")
    assert cli.main(["migrate", "--dsn", dsn]) == 0
    assert capsys.readouterr().out.startswith("already at ")


def test_app_get_job_reads_a_jobs_state(db: TestDatabase) -> None:
    app = App(db.dsn, pool_size=2)
    try:
        @app.task(queue="api", name="api.noop", max_attempts=3)
        def noop(n: int) -> None:
            return None

        jid = noop.defer(n=1)
        job = app.get_job(jid)
        assert (job.id, job.state, job.attempt, job.max_attempts) == (jid, "pending", 0, 3)
        assert job.task == "api.noop"
        with pytest.raises(JobNotFound):
            app.get_job(UUID(int=1))
        with LoopThread() as lt:
            async def read() -> Any:
                info = await app.aget_job(jid)
                await app.aclose()
                return info
            assert lt.run(read()).state == "pending"
    finally:
        app.close()


def test_task_enqueue_many_enqueues_in_order_in_one_transaction(db: TestDatabase) -> None:
    conn = db.connect()
    app = App(db.dsn, pool_size=2)
    try:
        @app.task(queue="api-many", name="api.send", max_attempts=4, priority=2)
        def send(to: str) -> None:
            return None

        ids = send.enqueue_many([{"to": f"u{i}@example.com"} for i in range(3)])
        rows = [job_row(conn, i) for i in ids]
        assert [r["payload"]["kwargs"]["to"] for r in rows if r] == [
            "u0@example.com", "u1@example.com", "u2@example.com"]
        assert {(r["queue"], r["max_attempts"], r["priority"]) for r in rows if r} == {
            ("api-many", 4, 2)}
        assert send.enqueue_many([]) == []

        with psycopg.connect(db.dsn) as mine:
            send.enqueue_many([{"to": "x"}, {"to": "y"}], conn=mine)
            mine.rollback()
        assert scalar(conn, "select count(*) from pgbatch.job where queue = 'api-many'") == 3
    finally:
        app.close()
