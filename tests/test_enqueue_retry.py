"""Producer retries: an enqueue whose connection is terminated makes exactly one job.

The outcome of a call is made unknown to the client the real way: its backend
is terminated with ``pg_terminate_backend`` while it waits, either before its
transaction committed (the insert waits on a table lock) or after (the commit
record is flushed and the backend waits for a synchronous standby that never
comes). These tests run on a server of their own whose
``synchronous_standby_names`` names a standby that does not exist, so every
transaction committing with ``synchronous_commit = on`` waits after its local
commit; everything else here commits with ``synchronous_commit = local``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pgbatch import AsyncClient, DuplicateJobId, EnqueueRequest
from pgbatch._errors import EnqueueUnconfirmed
from pgbatch.embedded import PgServer
from tests.conftest import short_tmp_dir
from tests.helpers import open_client

Conn = psycopg.Connection[Any]

#: The application_name of the clients under test (how pg_stat_activity finds them).
APP_NAME = "pgbatch-retry-test"
#: How long a test waits for a backend to reach the state it waits for.
STATE_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    """A server of this module: commits with synchronous_commit=on wait for ever."""
    kind = os.environ.get("PGBATCH_TEST_PG", "embedded").strip().lower()
    if os.environ.get("PGBATCH_TEST_DSN") or kind not in ("embedded", "system"):
        pytest.skip("needs a server of its own (embedded or system PostgreSQL)")
    tmp = short_tmp_dir("pgbatch-retry-")
    factory = PgServer.system if kind == "system" else PgServer.embedded
    srv = factory(tmp / "data", settings={
        "synchronous_standby_names": "pgbatch_absent_standby",
        "max_connections": "50"})
    try:
        srv.start()
        with psycopg.connect(local_dsn(srv.dsn()), autocommit=True) as c:
            c.execute("create database pgbatch")
        with psycopg.connect(local_dsn(srv.dsn("pgbatch")), autocommit=True) as c:
            from pgbatch import _install  # noqa: PLC0415

            _install.install_schema(c)
        yield srv
    finally:
        try:
            srv.destroy()
        finally:
            shutil.rmtree(Path(tmp), ignore_errors=True)


def local_dsn(dsn: str) -> str:
    """``dsn`` with commits that do not wait for the (absent) synchronous standby."""
    return make_conninfo(dsn, options="-c synchronous_commit=local")


@pytest.fixture
def admin(server: PgServer) -> Iterator[Conn]:
    """A superuser connection to the module's database; clears the queue table after the test."""
    with psycopg.connect(local_dsn(server.dsn("pgbatch")), autocommit=True) as conn:
        conn.execute("truncate pgbatch.job, pgbatch.job_archive")
        yield conn


def client_dsn(server: PgServer, *, waits_for_standby: bool) -> str:
    """The DSN of a client under test; ``waits_for_standby``: its commits wait after committing."""
    dsn = make_conninfo(server.dsn("pgbatch"), application_name=APP_NAME)
    return dsn if waits_for_standby else local_dsn(dsn)


def jobs_in(admin: Conn, queue: str) -> list[UUID]:
    """Ids of the live jobs of ``queue``."""
    return [r[0] for r in admin.execute(
        "select id from pgbatch.job where queue = %s order by id", [queue]).fetchall()]


def terminate_when(admin: Conn, condition: str) -> int:
    """Terminate the client backend under test once pg_stat_activity shows ``condition``.

    Polls the view (a row says when the backend waits); returns the pid.
    """
    until = time.monotonic() + STATE_TIMEOUT
    while time.monotonic() < until:
        row = admin.execute(
            "select pid from pg_stat_activity where application_name = %s"
            f" and {condition} limit 1", [APP_NAME]).fetchone()
        if row is not None:
            admin.execute("select pg_terminate_backend(%s)", [row[0]])
            pid: int = row[0]
            return pid
        time.sleep(0.01)
    raise AssertionError(f"no backend of {APP_NAME} reached {condition} in {STATE_TIMEOUT}s")


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Start ``fn`` in a thread; the list gets its result or its exception."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, name="pgb-test-enqueue")
    thread.start()
    return thread, out


def result_of(thread: threading.Thread, out: list[Any]) -> Any:
    """Join the thread; return its result or raise its exception."""
    thread.join(STATE_TIMEOUT)
    assert not thread.is_alive(), "the enqueue did not return"
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


SYNC_REP_WAIT = "wait_event = 'SyncRep'"
LOCK_WAIT = "wait_event_type = 'Lock'"


def test_terminated_after_commit_makes_one_job(server: PgServer, admin: Conn) -> None:
    """Committed, then the backend is terminated before the client hears: one job, its id."""
    with open_client(client_dsn(server, waits_for_standby=True), max_size=2) as client:
        thread, out = in_thread(lambda: client.enqueue("retry_after", {"n": 1}))
        terminate_when(admin, SYNC_REP_WAIT)
        job_id = result_of(thread, out)
    assert jobs_in(admin, "retry_after") == [job_id]


def test_terminated_before_commit_makes_one_job(server: PgServer, admin: Conn) -> None:
    """Terminated while the insert waits (nothing committed): the retry makes the one job."""
    with open_client(client_dsn(server, waits_for_standby=False), max_size=2) as client:
        admin.execute("begin")
        admin.execute("lock table pgbatch.job in exclusive mode")
        thread, out = in_thread(lambda: client.enqueue("retry_before", {"n": 1}))
        terminate_when(admin, LOCK_WAIT)
        admin.execute("commit")  # the retry (waiting on the lock, or not sent yet) goes on
        job_id = result_of(thread, out)
    assert jobs_in(admin, "retry_before") == [job_id]


def test_enqueue_many_terminated_after_commit(server: PgServer, admin: Conn) -> None:
    """enqueue_many: a lost commit retried makes every job once, ids in request order."""
    requests = [EnqueueRequest("retry_many", {"n": i}) for i in range(5)]
    with open_client(client_dsn(server, waits_for_standby=True), max_size=2) as client:
        thread, out = in_thread(lambda: client.enqueue_many(requests))
        terminate_when(admin, SYNC_REP_WAIT)
        ids = result_of(thread, out)
    assert len(ids) == 5
    assert sorted(jobs_in(admin, "retry_many")) == sorted(ids)
    payloads = dict(admin.execute(
        "select id, payload from pgbatch.job where queue = 'retry_many'").fetchall())
    assert [payloads[i]["n"] for i in ids] == list(range(5))


def test_async_enqueue_terminated_after_commit(server: PgServer, admin: Conn) -> None:
    """AsyncClient.enqueue: the same guarantee on an event loop."""
    async def main() -> UUID:
        client = await AsyncClient.connect(client_dsn(server, waits_for_standby=True),
                                           max_size=2)
        try:
            task = asyncio.create_task(client.enqueue("retry_async", {"n": 1}))
            await asyncio.to_thread(terminate_when, admin, SYNC_REP_WAIT)
            return await task
        finally:
            await client.close()

    job_id = asyncio.run(main())
    assert jobs_in(admin, "retry_async") == [job_id]


def test_retry_deadline_raises_unconfirmed_with_the_id(server: PgServer, admin: Conn) -> None:
    """retry_for=0: no retry; EnqueueUnconfirmed carries the id, and enqueuing that id again
    says whether the job exists (here it does: DuplicateJobId)."""
    with open_client(client_dsn(server, waits_for_standby=True), max_size=2) as client:
        thread, out = in_thread(lambda: client.enqueue("retry_none", {"n": 1}, retry_for=0))
        terminate_when(admin, SYNC_REP_WAIT)
        with pytest.raises(EnqueueUnconfirmed) as info:
            result_of(thread, out)
        (job_id,) = info.value.job_ids
        assert isinstance(info.value.__cause__, psycopg.OperationalError)
        with pytest.raises(DuplicateJobId):
            client.enqueue("retry_none", {"n": 1}, id=job_id)
    assert jobs_in(admin, "retry_none") == [job_id]


def test_enqueue_in_callers_transaction_is_not_retried(server: PgServer, admin: Conn) -> None:
    """With conn=, the caller owns the transaction: the lost connection is the caller's error."""
    with open_client(client_dsn(server, waits_for_standby=False), max_size=2) as client, \
            psycopg.connect(client_dsn(server, waits_for_standby=False)) as conn:
        conn.execute("select 1")
        pid = conn.info.backend_pid
        admin.execute("select pg_terminate_backend(%s)", [pid])
        with pytest.raises(psycopg.OperationalError):
            client.enqueue("retry_tx", {"n": 1}, conn=conn)
    assert jobs_in(admin, "retry_tx") == []


def test_a_given_id_that_exists_is_still_a_duplicate(server: PgServer, admin: Conn) -> None:
    """No connection was lost: DuplicateJobId for a caller's id is an error, as before."""
    with open_client(client_dsn(server, waits_for_standby=False), max_size=2) as client:
        job_id = client.enqueue("retry_dup", {"n": 1})
        with pytest.raises(DuplicateJobId):
            client.enqueue("retry_dup", {"n": 2}, id=job_id)
    assert jobs_in(admin, "retry_dup") == [job_id]
