"""Pooler mode through a real PgBouncer in transaction pooling mode.

One PgBouncer per module (``tests/pooler.py``) forwards every database of the
test server; it admits the superuser and the workers' login role. In pooler
mode (``pooler="transaction"``) no pgbatch connection prepares statements
(psycopg would after five executions, and PgBouncer 1.18 then mixes them up
across clients), and a worker does not LISTEN through the pooler: it polls,
or LISTENs on a direct ``listen_dsn``. A worker told to LISTEN through the
pooler anyway finds out with its start-up probe, says so, and polls.

Skipped when no ``pgbouncer`` binary is installed (``apt-get install
pgbouncer``; ``.ci/run`` requires it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgbatch import App, Worker
from pgbatch._aio_client import AsyncClient
from pgbatch._errors import InvalidArgument
from pgbatch._types import EnqueueRequest
from pgbatch.batch import register_jobs, use_batch
from pgbatch.cli import main as cli_main
from tests import pooler
from tests.batch_helpers import launch, wait_status
from tests.conftest import TEST_WORKER_LOGIN, PgTestServer, TestDatabase
from tests.helpers import counts, scalar
from tests.test_batch_pipeline import (
    CHUNKS,
    tables,  # noqa: F401 - a fixture
)
from tests.test_batch_pushdown import NOWHERE, copy_job, dst_equals_src
from tests.test_batch_server_loop import log_chunks, logged
from tests.worker_harness import (
    DONE_TABLE_DDL,
    LoopThread,
    ProcGroup,
    WorkerProcess,
    wait_until,
    worker_dsn,
)

QUEUE = "pooled"
#: What PgBouncer logs when a notification reaches a server connection no client holds.
NOTIFICATION_UNLINKED = "got packet 'A' from server when not linked"
#: Calls per connection beyond psycopg's prepare threshold (5).
CALLS = 12


@pytest.fixture(scope="module")
def bouncer(pg_server: PgTestServer) -> Iterator[pooler.PgBouncer]:
    """A PgBouncer (pool_mode = transaction, 4 server connections a pool) for this module."""
    if not pooler.available():
        pytest.skip("pgbouncer is not installed")
    b = pooler.start_pgbouncer(pg_server.admin_dsn(), pool_size=4, users=[TEST_WORKER_LOGIN])
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(autouse=True)
def _no_pooled_connections_left(bouncer: pooler.PgBouncer, db: TestDatabase) -> Iterator[None]:
    """After each test, the pooler lets go of the test database's server connections.

    PgBouncer keeps idle server connections in its pool; they are its own, not
    a leak of the test, but the database's leak check would count them.
    """
    yield
    bouncer.disconnect(db.name)


def _pooled(bouncer: pooler.PgBouncer, db: TestDatabase) -> str:
    """The workers' login DSN of ``db``, through the pooler."""
    return bouncer.dsn(db.worker_dsn)


def _noop(n: int) -> list[EnqueueRequest]:
    return [EnqueueRequest(QUEUE, {"task": "noop", "kwargs": {}}) for _ in range(n)]


def test_enqueue_and_enqueue_many_through_the_pooler_in_pooler_mode(
        db: TestDatabase, bouncer: pooler.PgBouncer) -> None:
    conn = db.connect()
    log_start = len(bouncer.log())
    app = App(_pooled(bouncer, db), pool_size=2, pooler="transaction")
    try:
        @app.task(name="noop", queue=QUEUE)
        def noop() -> None:
            return None

        for _ in range(CALLS):
            noop.defer()
            app.client.enqueue_many(_noop(3))
            app.client.enqueue(QUEUE, {"task": "noop", "kwargs": {}}, priority=1)
    finally:
        app.close()

    async def from_async() -> None:
        client = await AsyncClient.connect(_pooled(bouncer, db), max_size=2,
                                           pooler="transaction")
        try:
            for _ in range(CALLS):
                await client.enqueue(QUEUE, {"n": 1})
                await client.enqueue_many(_noop(2))
        finally:
            await client.close()

    asyncio.run(from_async())
    assert counts(conn, QUEUE).get("pending") == CALLS * (1 + 3 + 1) + CALLS * (1 + 2)
    assert NOTIFICATION_UNLINKED not in bouncer.log()[log_start:]


def test_pooler_mode_comes_from_the_environment_and_bad_modes_are_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGBATCH_POOLER", "transaction")
    monkeypatch.setenv("PGBATCH_LISTEN_DSN", "host=db.internal dbname=app")
    app = App("dbname=unused")
    assert app.pooler == "transaction"
    assert app.listen_dsn == "host=db.internal dbname=app"
    assert App("dbname=unused", pooler="none").pooler == "none"
    with pytest.raises(InvalidArgument, match="pooler must be one of none, transaction"):
        App("dbname=unused", pooler="statement")
    monkeypatch.setenv("PGBATCH_POOLER", "sesion")
    with pytest.raises(InvalidArgument, match=r"\$PGBATCH_POOLER must be one of"):
        _ = App("dbname=unused").pooler


def test_cli_enqueue_through_the_pooler_with_the_flag_and_the_environment(
        db: TestDatabase, bouncer: pooler.PgBouncer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    conn = db.connect()
    dsn = _pooled(bouncer, db)
    assert cli_main(["enqueue", QUEUE, '{"via": "flag"}', "--dsn", dsn,
                     "--pooler", "transaction"]) == 0
    monkeypatch.setenv("PGBATCH_POOLER", "transaction")
    assert cli_main(["enqueue", QUEUE, '{"via": "env"}', "--dsn", dsn]) == 0
    assert cli_main(["status", "--dsn", dsn]) == 0
    out = capsys.readouterr().out
    assert QUEUE in out
    payloads = {r[0] for r in conn.execute(
        "select payload->>'via' from pgbatch.job where queue = %s", [QUEUE])}
    assert payloads == {"flag", "env"}


def _leaders(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in conn.execute("select scope, node_id from pgbatch.leader")]


def test_two_pooled_workers_process_10000_jobs_once_each_with_one_leader(
        db: TestDatabase, bouncer: pooler.PgBouncer, tmp_path: Path) -> None:
    conn = db.connect()
    conn.execute(DONE_TABLE_DDL)
    log_start = len(bouncer.log())
    dsn = bouncer.dsn(db.dsn)  # WorkerProcess connects as the workers' login role
    recorded, plain = 500, 9500
    with ProcGroup(dsn, tmp_path) as group:
        workers = [group.spawn(f"pooled-{i}", node_id=f"pooled-{i}", queue=QUEUE,
                               concurrency=4, pooler="transaction", poll_interval=0.2,
                               maintenance_interval=0.2, leader_lease=5)
                   for i in range(2)]
        for wp in workers:
            wp.wait_event("idle", timeout=60)
        app = App(_pooled(bouncer, db), pool_size=2, pooler="transaction")
        try:
            app.client.enqueue_many(
                [EnqueueRequest(QUEUE, {"task": "record", "kwargs": {}})
                 for _ in range(recorded)])
            for _ in range(plain // 500):
                app.client.enqueue_many(_noop(500))
        finally:
            app.close()
        total = recorded + plain

        def finished() -> bool:
            assert len({node for _, node in _leaders(conn)}) <= 1
            done: int = counts(conn, QUEUE).get("done", 0)
            return done == total
        wait_until(finished, 300, "every job done")
        leaders = _leaders(conn)
        reports = [wp.stop() for wp in workers]

    assert len(leaders) == 1
    assert leaders[0][1] in {"pooled-0", "pooled-1"}
    assert sorted(r["maintenance"]["became_leader"] for r in reports) == [0, 1]
    assert all(r["maintenance"]["lost_leadership"] == 0 for r in reports)
    assert sum(r["stats"]["succeeded"] for r in reports) == total
    assert all(r["stats"]["failed"] == 0 and r["error"] is None for r in reports)
    assert scalar(conn, "select count(*) from pgbatch.job_archive where queue = %s"
                        " and state = 'done' and attempt = 1", [QUEUE]) == total
    assert scalar(conn, "select count(*) from worker_test_done") == recorded
    assert scalar(conn, "select count(*) from pgbatch.job where queue = %s", [QUEUE]) == 0
    for wp in workers:
        said = [e["msg"] for e in wp.events_of("log") if "not listening through" in e["msg"]]
        assert len(said) == 1, wp.describe()
    assert NOTIFICATION_UNLINKED not in bouncer.log()[log_start:]


def _one_job_done(conn: psycopg.Connection[Any], wp: WorkerProcess, timeout: float) -> None:
    conn.execute("select pgbatch.enqueue(%s, %s::jsonb)",
                 [QUEUE, '{"task": "noop", "kwargs": {}}'])
    wait_until(lambda: counts(conn, QUEUE).get("done", 0) >= 1, timeout,
               f"the job, done by {wp.name}")


def test_a_worker_told_to_listen_through_the_pooler_says_so_and_polls(
        db: TestDatabase, bouncer: pooler.PgBouncer, tmp_path: Path) -> None:
    conn = db.connect()
    with ProcGroup(bouncer.dsn(db.dsn), tmp_path) as group:
        wp = group.spawn("listens-through-pooler", queue=QUEUE, pooler="transaction",
                         listen_dsn=_pooled(bouncer, db), poll_interval=0.5)
        warning = wp.wait_event("log", timeout=60,
                                pred=lambda e: "LISTEN does not work" in e["msg"])
        assert warning["level"] == "WARNING"
        wp.wait_event("idle", timeout=30)
        _one_job_done(conn, wp, 30)
        report = wp.stop()
    assert report["stats"]["succeeded"] == 1
    said = [e for e in wp.events_of("log") if "LISTEN does not work" in e["msg"]]
    assert len(said) == 1


def test_a_pooled_worker_with_a_direct_listen_dsn_is_woken_by_notifications(
        db: TestDatabase, bouncer: pooler.PgBouncer, tmp_path: Path) -> None:
    conn = db.connect()
    with ProcGroup(bouncer.dsn(db.dsn), tmp_path) as group:
        # polls once a minute: only a notification can bring the job in time
        wp = group.spawn("direct-listener", queue=QUEUE, pooler="transaction",
                         listen_dsn=worker_dsn(db.dsn), poll_interval=60)
        wp.wait_event("idle", timeout=60)
        _one_job_done(conn, wp, 30)
        report = wp.stop()
    assert report["stats"]["succeeded"] == 1
    assert not [e for e in wp.events_of("log")
                if "LISTEN does not work" in e["msg"] or "not listening" in e["msg"]]


@pytest.mark.usefixtures("tables")
def test_a_batch_step_run_in_the_server_loops_in_the_database_through_the_pooler(
        db: TestDatabase, conn: psycopg.Connection[Any], bouncer: pooler.PgBouncer) -> None:
    # the procedure commits inside one CALL: PgBouncer keeps the server connection for
    # the call (one client transaction until it returns)
    log_chunks(conn, "public.dst")
    job = copy_job(NOWHERE, same_database=True)
    register_jobs(conn, [job])
    exec_id = launch(conn, "copy")
    app = App(_pooled(bouncer, db), pool_size=4, pooler="transaction")
    try:
        with LoopThread() as lt:
            use_batch(app, [job], recovery_interval=0.5)
            worker = lt.start(Worker(app, concurrency=1, poll_interval=0.2))
            wait_status(conn, exec_id, "COMPLETED")
            lt.stop(worker)
    finally:
        app.close()
    dst_equals_src(conn)
    chunks = logged(conn)
    assert len(chunks) == CHUNKS
    assert all(in_call for _, in_call in chunks)
