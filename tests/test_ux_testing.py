"""``pgbatch.testing``: users' tests get a migrated database and run the queue until empty."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pgbatch import App
from pgbatch.testing import run_until_empty
from tests.conftest import PgTestServer, TestDatabase
from tests.helpers import scalar
from tests.worker_harness import worker_dsn

ROOT = Path(__file__).resolve().parent.parent


def test_run_until_empty_runs_every_due_job_and_follow_up_then_returns(
        db: TestDatabase) -> None:
    conn = db.connect()
    app = App(worker_dsn(db.dsn), pool_size=2)
    seen: list[int] = []

    @app.task(queue="ut", name="ut.step")
    def step(n: int) -> None:
        seen.append(n)
        if n < 3:
            step.defer(n=n + 1)

    try:
        step.defer(n=1)
        later = step.enqueue({"n": 100}, run_at=datetime.now(UTC) + timedelta(hours=1))
        stats = run_until_empty(app, timeout=30)
    finally:
        app.close()
    assert seen == [1, 2, 3]
    assert stats.succeeded == 3
    state = scalar(conn, "select state from pgbatch.job where id = %s", [later])
    assert state == "pending"  # scheduled for later: not waited for


PLUGIN_TEST = textwrap.dedent('''
    import pgbatch
    from pgbatch.testing import run_until_empty

    pytest_plugins = ["pgbatch.testing"]


    def test_a_user_test(pgbatch_dsn: str) -> None:
        app = pgbatch.App(pgbatch_dsn)
        done = []

        @app.task(queue="users")
        def work(n: int) -> None:
            done.append(n)

        work.enqueue_many([{"n": 1}, {"n": 2}])
        assert run_until_empty(app).succeeded == 2
        assert sorted(done) == [1, 2]
        assert app.client.queue_stats("users")[0].done == 2
        app.close()
''')


def test_the_pytest_plugin_gives_a_migrated_database(pg_server: PgTestServer,
                                                     tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(PLUGIN_TEST, encoding="utf-8")
    env = {**os.environ, "PGBATCH_TEST_DSN": pg_server.admin_dsn(), "PYTHONPATH": str(ROOT)}
    ran = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "test_user.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=240, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 passed" in ran.stdout
    # its database was dropped at the end
    with_prefix = scalar_on(pg_server.admin_dsn(),
                            "select count(*) from pg_database"
                            " where left(datname, 13) = 'pgbatch_test_'")
    assert with_prefix == 0


def scalar_on(dsn: str, query: str) -> object:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(dsn) as c:
        row = c.execute(query).fetchone()
    assert row is not None
    return row[0]
