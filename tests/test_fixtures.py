"""The test fixtures' own guarantees: the leak checks catch leaks, ``tx`` rolls back."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from tests.conftest import PgTestServer, TestDatabase, open_connections, threads_left
from tests.helpers import enqueue, job_row, raises_sqlstate, scalar

Conn = psycopg.Connection[Any]


def test_a_daemon_thread_still_running_is_reported_and_an_ended_one_is_not() -> None:
    before = set(threading.enumerate())
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="pgb-test-lingering", daemon=True)
    thread.start()
    try:
        assert threads_left(before, 0.05) == ["pgb-test-lingering (daemon)"]
    finally:
        release.set()
    assert threads_left(before, 5.0) == []
    assert not thread.is_alive()


def test_a_connection_left_open_to_the_database_is_reported(
        db: TestDatabase, pg_server: PgTestServer) -> None:
    admin = pg_server.admin_dsn()
    assert open_connections(admin, db.name) == []
    stray = psycopg.connect(db.dsn, application_name="pgb-test-stray")
    try:
        left = open_connections(admin, db.name)
        assert len(left) == 1
        assert "'pgb-test-stray'" in left[0]
    finally:
        stray.close()
    assert open_connections(admin, db.name) == []


def test_tx_starts_from_an_empty_queue_whatever_ran_before(tx: Conn) -> None:
    # Every test on tx_db rolls back, so in any order the queue's tables are empty here.
    for table in ("job", "job_archive", "kv", "node"):
        assert scalar(tx, f"select count(*) from pgbatch.{table}") == 0, table


def test_tx_changes_are_invisible_to_other_sessions_and_an_error_leaves_it_usable(
        tx: Conn) -> None:
    job_id = enqueue(tx, "q")
    with raises_sqlstate("PB005"):
        enqueue(tx, "")
    assert job_row(tx, job_id) is not None  # the error undid only its own statement
    with psycopg.connect(tx.info.dsn, autocommit=True) as other:
        assert job_row(other, job_id) is None  # never committed


@pytest.mark.in_tx
def test_in_tx_makes_conn_the_tx_connection(conn: Conn, tx: Conn) -> None:
    assert conn is tx
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS

