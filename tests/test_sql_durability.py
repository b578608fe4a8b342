"""Durability: claims commit relaxed, caller-driven settlements commit durably,
and a crash loses at most a claim (the job is redelivered), never an ack."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tests.conftest import PgTestServer, TestDatabase
from tests.helpers import archive_row, claim, claim_one, db_now, enqueue, job_row, scalar

Conn = psycopg.Connection[Any]


def sync_commit(conn: Conn) -> str:
    """The synchronous_commit the current transaction would commit with."""
    return str(scalar(conn, "show synchronous_commit"))


@pytest.fixture
def tx_conn(db: TestDatabase) -> Conn:
    """A connection that is not autocommit: each test drives its own transactions."""
    return db.connect(autocommit=False)


def test_claim_transaction_commits_with_synchronous_commit_off(tx_conn: Conn) -> None:
    enqueue(tx_conn, "d")
    tx_conn.commit()
    assert sync_commit(tx_conn) == "on"
    claim_one(tx_conn, "d")
    assert sync_commit(tx_conn) == "off"
    tx_conn.commit()
    # the relaxation was local to that transaction
    assert sync_commit(tx_conn) == "on"
    tx_conn.commit()


@pytest.mark.parametrize(
    "settle",
    [
        "select pgbatch.ack(%(id)s, %(tok)s)",
        "select pgbatch.ack(%(id)s, %(tok)s, '{\"kv_put\": {\"k\": 1}}')",
        "select pgbatch.nack(%(id)s, %(tok)s)",
        "select pgbatch.dead_letter(%(id)s, %(tok)s, 'why')",
        "select * from pgbatch.ack_many(jsonb_build_array("
        "jsonb_build_object('job_id', %(id)s::text, 'claim_token', %(tok)s::text)))",
        "select * from pgbatch.ack_ids(array[%(id)s::uuid], array[%(tok)s::uuid])",
        "select pgbatch.enqueue('other')",
        "select pgbatch.enqueue_many('[{\"queue\": \"other\"}]')",
    ],
    ids=["ack", "ack_effects", "nack", "dead_letter", "ack_many", "ack_ids", "enqueue",
         "enqueue_many"],
)
def test_settlement_after_claim_in_one_transaction_restores_durable_commit(
    tx_conn: Conn, settle: str
) -> None:
    enqueue(tx_conn, "d")
    tx_conn.commit()
    job = claim_one(tx_conn, "d")
    assert sync_commit(tx_conn) == "off"
    tx_conn.execute(settle, {"id": job["id"], "tok": job["claim_token"]})
    assert sync_commit(tx_conn) == "on"
    # a later claim in the same transaction does not relax it again
    enqueue(tx_conn, "d2")
    claim(tx_conn, "d2")
    assert sync_commit(tx_conn) == "on"
    tx_conn.commit()


def test_caller_driven_operations_commit_durably(tx_conn: Conn) -> None:
    job_id = enqueue(tx_conn, "d")
    assert sync_commit(tx_conn) == "on"
    tx_conn.commit()
    job = claim_one(tx_conn, "d")
    tx_conn.commit()
    tx_conn.execute("select pgbatch.ack(%s, %s)", [job_id, job["claim_token"]])
    assert sync_commit(tx_conn) == "on"
    tx_conn.commit()


@pytest.mark.parametrize(
    "maintenance",
    [
        "select pgbatch.reap_expired()",
        "select pgbatch.sweep_retention()",
        "select pgbatch.compact_counters()",
        "select pgbatch.announce_due()",
    ],
)
def test_maintenance_commits_relaxed(tx_conn: Conn, maintenance: str) -> None:
    tx_conn.execute(maintenance)
    assert sync_commit(tx_conn) == "off"
    tx_conn.commit()


def test_renew_lease_commits_relaxed(tx_conn: Conn) -> None:
    enqueue(tx_conn, "d")
    tx_conn.commit()
    job = claim_one(tx_conn, "d")
    tx_conn.commit()
    tx_conn.execute("select pgbatch.renew_lease(%s, %s)", [job["id"], job["claim_token"]])
    assert sync_commit(tx_conn) == "off"
    tx_conn.commit()


def test_claim_after_own_writes_keeps_the_transaction_durable(tx_conn: Conn) -> None:
    """A claim must not turn the caller's earlier writes (or an enqueue) asynchronous."""
    enqueue(tx_conn, "d")
    enqueue(tx_conn, "d")
    tx_conn.commit()
    # an enqueue, then a claim, in one transaction
    enqueue(tx_conn, "other")
    claim_one(tx_conn, "d")
    assert sync_commit(tx_conn) == "on"
    tx_conn.commit()
    # the application's own write, then a claim
    tx_conn.execute("create table app_orders (id int)")
    tx_conn.commit()
    tx_conn.execute("insert into app_orders values (1)")
    claim_one(tx_conn, "d")
    assert sync_commit(tx_conn) == "on"
    tx_conn.commit()


def test_settlement_restores_the_sessions_own_synchronous_commit(tx_conn: Conn) -> None:
    tx_conn.execute("set synchronous_commit = remote_write")
    tx_conn.commit()
    enqueue(tx_conn, "d")
    tx_conn.commit()
    job = claim_one(tx_conn, "d")
    assert sync_commit(tx_conn) == "off"
    tx_conn.execute("select pgbatch.ack(%s, %s)", [job["id"], job["claim_token"]])
    assert sync_commit(tx_conn) == "remote_write"
    tx_conn.commit()


def test_crash_keeps_acked_jobs_and_redelivers_a_lost_or_stuck_claim(
    pg_server: PgTestServer, db: TestDatabase
) -> None:
    conn = db.connect()
    acked = enqueue(conn, "crash", {"n": 1}, priority=3)
    claimed = enqueue(conn, "crash", {"n": 2}, priority=2)
    waiting = enqueue(conn, "crash", {"n": 3}, priority=1)
    first = claim_one(conn, "crash")
    assert first["id"] == acked
    conn.execute("select pgbatch.ack(%s, %s)", [acked, first["claim_token"]])
    second = claim_one(conn, "crash", lease="5 seconds")
    assert second["id"] == claimed

    pg_server.restart("immediate")

    conn = db.connect()
    done = archive_row(conn, acked)
    assert done is not None
    assert done["state"] == "done"
    row = job_row(conn, claimed)
    assert row is not None, "the enqueued job was lost in the crash"
    assert row["state"] in ("pending", "claimed")
    assert (row["state"] == "claimed") == (row["attempt"] == 1)
    pending = job_row(conn, waiting)
    assert pending is not None
    assert pending["state"] == "pending"

    if row["state"] == "claimed":
        # the claim survived: its worker is gone, so the lease runs out and it is reaped
        assert claim_one(conn, "crash")["id"] == waiting
        later = db_now(conn) + timedelta(seconds=6)
        conn.execute("select set_config('pgbatch.fake_now', %s, false)", [later.isoformat()])
        assert scalar(conn, "select pgbatch.reap_expired()") == 1
        redelivered = claim_one(conn, "crash")
        assert redelivered["attempt"] == 2
    else:
        # the relaxed claim commit was lost: the job is simply pending again
        redelivered = claim_one(conn, "crash")
        assert redelivered["attempt"] == 1
    assert redelivered["id"] == claimed
    conn.execute("select pgbatch.ack(%s, %s)", [claimed, redelivered["claim_token"]])
    finished = archive_row(conn, claimed)
    assert finished is not None
    assert finished["state"] == "done"
