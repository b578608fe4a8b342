"""Maintenance: reaping expired leases (also from many nodes at once), retention
sweeps, requeueing dead jobs, and counter compaction."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import psycopg
import pytest

from pgbatch import InvalidState, JobNotFound
from tests.conftest import TestDatabase
from tests.helpers import (
    archive_row,
    claim,
    claim_one,
    counts,
    db_now,
    enqueue,
    expire_lease,
    job_row,
    open_client,
    raises_sqlstate,
    run_threads,
    scalar,
    set_clock,
    state_snapshot,
)

Conn = psycopg.Connection[Any]


@pytest.mark.in_tx
def test_reap_requeues_expired_claims_only(conn: Conn) -> None:
    expired = enqueue(conn, "q", max_attempts=3, priority=1)
    live = enqueue(conn, "q", max_attempts=3)
    jobs = claim(conn, "q", 2, worker_id="w9")
    assert [j["id"] for j in jobs] == [expired, live]
    expire_lease(conn, expired)
    assert scalar(conn, "select pgbatch.reap_expired()") == 1
    row = job_row(conn, expired)
    assert row is not None
    assert (row["state"], row["attempt"], row["claim_token"], row["lease_expires_at"]) == (
        "pending", 1, None, None)
    assert row["last_error"]["type"] == "LeaseExpired"
    assert row["last_error"]["worker"] == "w9"
    still = job_row(conn, live)
    assert still is not None
    assert still["state"] == "claimed"
    assert scalar(conn, "select pgbatch.reap_expired()") == 0
    # requeued at once: claimable now, and the next claim is attempt 2
    again = claim_one(conn, "q")
    assert (again["id"], again["attempt"]) == (expired, 2)


def test_reap_uses_the_database_clock(db: TestDatabase, conn: Conn) -> None:
    enqueue(conn, "q")
    job = claim_one(conn, "q", lease="1 minute")
    reaper = db.connect()
    set_clock(reaper, job["lease_expires_at"])
    assert scalar(reaper, "select pgbatch.reap_expired()") == 0, "reaped at the expiry instant"
    set_clock(reaper, job["lease_expires_at"] + timedelta(microseconds=1))
    assert scalar(reaper, "select pgbatch.reap_expired()") == 1


@pytest.mark.in_tx
def test_reap_dead_letters_a_claim_at_its_last_attempt(conn: Conn) -> None:
    job_id = enqueue(conn, "q", max_attempts=2)
    for _ in range(2):
        claim_one(conn, "q")
        expire_lease(conn, job_id)
        assert scalar(conn, "select pgbatch.reap_expired()") == 1
    assert job_row(conn, job_id) is None
    dead = archive_row(conn, job_id)
    assert dead is not None
    assert (dead["state"], dead["attempt"]) == ("dead", 2)
    assert dead["last_error"]["type"] == "LeaseExpired"
    assert counts(conn, "q")["dead"] == 1


@pytest.mark.in_tx
def test_reap_of_a_cancel_requested_claim_ends_it_cancelled(conn: Conn) -> None:
    job_id = enqueue(conn, "q")
    claim_one(conn, "q")
    conn.execute("select pgbatch.cancel_job(%s)", [job_id])
    expire_lease(conn, job_id)
    assert scalar(conn, "select pgbatch.reap_expired()") == 1
    cancelled = archive_row(conn, job_id)
    assert cancelled is not None
    assert cancelled["state"] == "cancelled"


@pytest.mark.in_tx
def test_reap_respects_its_limit(conn: Conn) -> None:
    conn.execute("select pgbatch.enqueue_many(%s)", [json.dumps([{"queue": "q"}] * 7)])
    claim(conn, "q", 7)
    expire_lease(conn)
    assert scalar(conn, "select pgbatch.reap_expired(3)") == 3
    assert scalar(conn, "select pgbatch.reap_expired(\"limit\" => 3)") == 3
    assert scalar(conn, "select pgbatch.reap_expired(3)") == 1
    assert counts(conn, "q")["pending"] == 7


N_REAPERS = 4


@pytest.mark.parametrize("limit", [1000, 7])
def test_concurrent_reapers_process_each_expired_claim_exactly_once(
    db: TestDatabase, limit: int
) -> None:
    conn = db.connect()
    requests = [{"queue": "r", "max_attempts": 1 if i % 8 == 0 else 3} for i in range(400)]
    requests += [{"queue": "live"} for _ in range(20)]
    conn.execute("select pgbatch.enqueue_many(%s)", [json.dumps(requests)])
    jobs = claim(conn, "r", 400)
    claim(conn, "live", 20)
    assert len(jobs) == 400
    last_attempt = {j["id"] for j in jobs if j["max_attempts"] == 1}
    assert len(last_attempt) == 50
    conn.execute("update pgbatch.job set lease_expires_at = now() - interval '1 second'"
                 " where queue = 'r'")

    reapers = [db.connect() for _ in range(N_REAPERS)]
    barrier = threading.Barrier(N_REAPERS)
    results: list[list[int]] = [[] for _ in range(N_REAPERS)]

    def reap(i: int) -> None:
        barrier.wait(timeout=30)
        while True:
            n = scalar(reapers[i], "select pgbatch.reap_expired(%s)", [limit])
            results[i].append(n)
            if n < limit:
                return

    run_threads([partial(reap, i) for i in range(N_REAPERS)])
    assert sum(sum(r) for r in results) == 400
    assert counts(conn, "r") == {"pending": 350, "scheduled": 0, "claimed": 0, "done": 0,
                                 "dead": 50, "cancelled": 0}
    assert counts(conn, "live")["claimed"] == 20
    rows = conn.execute("select id, state, attempt from pgbatch.job where queue = 'r'").fetchall()
    assert all(state == "pending" and attempt == 1 for _, state, attempt in rows)
    dead = conn.execute("select id, attempt from pgbatch.job_archive where queue = 'r'").fetchall()
    assert {i for i, _ in dead} == last_attempt
    assert all(attempt == 1 for _, attempt in dead)
    # each requeued job was announced and counted once: one claim each, attempt 2
    again = claim(conn, "r", 1000)
    assert len(again) == 350
    assert {j["attempt"] for j in again} == {2}


# ---------------------------------------------------------------- retention


def finish(conn: Conn, queue: str, how: str) -> Any:
    job_id = enqueue(conn, queue)
    if how == "cancel":
        conn.execute("select pgbatch.cancel_job(%s)", [job_id])
        return job_id
    job = claim_one(conn, queue)
    conn.execute(f"select pgbatch.{how}(%s, %s)", [job_id, job["claim_token"]])
    return job_id


@pytest.mark.in_tx
def test_sweep_retention_deletes_old_done_and_dead_records(conn: Conn) -> None:
    t0 = db_now(conn)
    set_clock(conn, t0)
    done = finish(conn, "q", "ack")
    dead = finish(conn, "q", "dead_letter")
    cancelled = finish(conn, "q", "cancel")
    pending = enqueue(conn, "q", run_at=t0)
    assert counts(conn, "q") == {"pending": 1, "scheduled": 0, "claimed": 0, "done": 1,
                                 "dead": 1, "cancelled": 1}
    set_clock(conn, t0 + timedelta(hours=23))
    assert scalar(conn, "select pgbatch.sweep_retention()") == 0
    set_clock(conn, t0 + timedelta(days=1, seconds=1))
    assert scalar(conn, "select pgbatch.sweep_retention()") == 2
    assert archive_row(conn, done) is None
    assert archive_row(conn, cancelled) is None
    assert archive_row(conn, dead) is not None
    assert counts(conn, "q") == {"pending": 1, "scheduled": 0, "claimed": 0, "done": 0,
                                 "dead": 1, "cancelled": 0}
    set_clock(conn, t0 + timedelta(days=7, seconds=1))
    assert scalar(conn, "select pgbatch.sweep_retention()") == 1
    assert archive_row(conn, dead) is None
    assert job_row(conn, pending) is not None, "sweeping never touches live jobs"
    assert counts(conn, "q") == {"pending": 1, "scheduled": 0, "claimed": 0, "done": 0,
                                 "dead": 0, "cancelled": 0}


@pytest.mark.in_tx
def test_sweep_retention_respects_limit_and_custom_ages(conn: Conn) -> None:
    for _ in range(5):
        finish(conn, "q", "ack")
    finish(conn, "q", "dead_letter")
    set_clock(conn, db_now(conn) + timedelta(minutes=10))
    assert scalar(conn, "select pgbatch.sweep_retention('1 hour', '1 hour')") == 0
    assert scalar(conn, "select pgbatch.sweep_retention('5 minutes', '1 hour', 3)") == 3
    assert scalar(conn, "select pgbatch.sweep_retention(done_after => '5 minutes',"
                        " dead_after => '5 minutes', \"limit\" => 100)") == 3
    assert counts(conn, "q")["done"] == 0
    assert counts(conn, "q")["dead"] == 0


@pytest.mark.in_tx
def test_sweep_retention_limit_counts_done_and_dead_together(conn: Conn) -> None:
    for _ in range(3):
        finish(conn, "q", "ack")
        finish(conn, "q", "dead_letter")
    set_clock(conn, db_now(conn) + timedelta(days=8))
    assert scalar(conn, "select pgbatch.sweep_retention(\"limit\" => 4)") == 4
    assert scalar(conn, "select pgbatch.sweep_retention(\"limit\" => 4)") == 2
    assert counts(conn, "q") == {"pending": 0, "scheduled": 0, "claimed": 0, "done": 0,
                                 "dead": 0, "cancelled": 0}


@pytest.mark.in_tx
def test_sweep_retention_counts_from_settlement_for_jobs_created_long_before(conn: Conn) -> None:
    t0 = db_now(conn)
    set_clock(conn, t0)
    job_id = enqueue(conn, "q", run_at=t0 + timedelta(days=10))
    set_clock(conn, t0 + timedelta(days=10))
    job = claim_one(conn, "q")
    conn.execute("select pgbatch.ack(%s, %s)", [job_id, job["claim_token"]])
    set_clock(conn, t0 + timedelta(days=10, hours=23))
    # created 11 days ago, settled 23 hours ago: not due
    assert scalar(conn, "select pgbatch.sweep_retention()") == 0
    assert archive_row(conn, job_id) is not None
    set_clock(conn, t0 + timedelta(days=11, seconds=1))
    assert scalar(conn, "select pgbatch.sweep_retention()") == 1
    assert archive_row(conn, job_id) is None


def test_an_archived_done_job_costs_two_index_entries(conn: Conn) -> None:
    indexes = {r[0]: r[1] for r in conn.execute(
        "select indexname, indexdef from pg_indexes"
        " where schemaname = 'pgbatch' and tablename = 'job_archive'").fetchall()}
    assert set(indexes) == {"job_archive_pkey", "job_archive_listing_idx",
                            "job_archive_rare_listing_idx", "job_archive_rare_queue_listing_idx"}
    # the two others hold only dead and cancelled records
    assert "WHERE (state <> 'done'::text)" in indexes["job_archive_rare_listing_idx"]
    assert "WHERE (state <> 'done'::text)" in indexes["job_archive_rare_queue_listing_idx"]


def test_requeue_dead_job_after_sweep_is_job_not_found(db: TestDatabase, conn: Conn) -> None:
    job_id = finish(conn, "q", "dead_letter")
    set_clock(conn, db_now(conn) + timedelta(days=8))
    assert scalar(conn, "select pgbatch.sweep_retention()") == 1
    before = state_snapshot(conn)
    with raises_sqlstate("PB003", "not found"):
        conn.execute("select pgbatch.requeue_dead_job(%s)", [job_id])
    with open_client(db.dsn) as client, pytest.raises(JobNotFound):
        client.requeue_dead_job(job_id)
    assert state_snapshot(conn) == before
    assert job_row(conn, job_id) is None


@pytest.mark.parametrize("state", ["pending", "claimed", "done", "cancelled"])
def test_requeue_of_a_job_that_is_not_dead_is_invalid_state(
    db: TestDatabase, conn: Conn, state: str
) -> None:
    if state in ("pending", "claimed"):
        job_id = enqueue(conn, "q")
        if state == "claimed":
            claim_one(conn, "q")
    else:
        job_id = finish(conn, "q", "ack" if state == "done" else "cancel")
    before = state_snapshot(conn)
    with raises_sqlstate("PB004", "not dead"):
        conn.execute("select pgbatch.requeue_dead_job(%s)", [job_id])
    with open_client(db.dsn) as client, pytest.raises(InvalidState):
        client.requeue_dead_job(job_id)
    assert state_snapshot(conn) == before


@pytest.mark.in_tx
def test_requeue_dead_job_at_a_later_time(conn: Conn) -> None:
    job_id = finish(conn, "q", "dead_letter")
    at = db_now(conn) + timedelta(hours=1)
    assert scalar(conn, "select pgbatch.requeue_dead_job(%s, %s)", [job_id, at]) == job_id
    assert counts(conn, "q")["scheduled"] == 1
    assert counts(conn, "q")["dead"] == 0
    set_clock(conn, at)
    assert claim_one(conn, "q")["attempt"] == 1


@pytest.mark.in_tx
def test_requeue_dead_job_with_a_live_dedup_holder_is_dedup_conflict(conn: Conn) -> None:
    first = enqueue(conn, "q", dedup_key="k")
    job = claim_one(conn, "q")
    conn.execute("select pgbatch.dead_letter(%s, %s)", [first, job["claim_token"]])
    enqueue(conn, "q", dedup_key="k")
    before = state_snapshot(conn)
    with raises_sqlstate("PB010", "dedup_key"):
        conn.execute("select pgbatch.requeue_dead_job(%s)", [first])
    assert state_snapshot(conn) == before


# ---------------------------------------------------------------- counters


@pytest.mark.in_tx
def test_compact_counters_folds_deltas_without_changing_stats(conn: Conn) -> None:
    for queue in ("a", "b"):
        for how in ("ack", "ack", "dead_letter", "cancel"):
            finish(conn, queue, how)
    before = [counts(conn, q) for q in ("a", "b")]
    assert scalar(conn, "select count(*) from pgbatch.queue_count") == 8
    assert scalar(conn, "select pgbatch.compact_counters()") == 8
    assert scalar(conn, "select count(*) from pgbatch.queue_count") == 2
    assert [counts(conn, q) for q in ("a", "b")] == before
    assert scalar(conn, "select pgbatch.compact_counters()") == 0


def test_concurrent_acks_and_reapers_settle_each_expired_claim_once(db: TestDatabase) -> None:
    """An ack racing the reaper either wins (done) or gets ClaimLost (requeued): never both."""
    conn = db.connect()
    n = 600
    conn.execute("select pgbatch.enqueue_many(%s)", [json.dumps([{"queue": "race"}] * n)])
    jobs = claim(conn, "race", n)
    expire_lease(conn)
    ackers = [db.connect() for _ in range(3)]
    reapers = [db.connect() for _ in range(2)]
    barrier = threading.Barrier(len(ackers) + len(reapers))
    acked: list[Any] = []
    lost: list[Any] = []
    reaped: list[int] = []

    def ack(i: int) -> None:
        barrier.wait(timeout=30)
        for job in jobs[i::len(ackers)]:
            try:
                ackers[i].execute("select pgbatch.ack(%s, %s)", [job["id"], job["claim_token"]])
                acked.append(job["id"])
            except psycopg.Error as exc:
                lost.append((job["id"], exc.sqlstate))

    def reap(i: int) -> None:
        barrier.wait(timeout=30)
        while (k := scalar(reapers[i], "select pgbatch.reap_expired(5)")) > 0:
            reaped.append(k)

    targets: list[Callable[[], None]] = [partial(ack, i) for i in range(len(ackers))]
    targets += [partial(reap, i) for i in range(len(reapers))]
    run_threads(targets)
    assert {code for _, code in lost} <= {"PB001"}, "a racing ack failed with another error"
    assert len(acked) + len(lost) == n
    assert set(acked).isdisjoint(j for j, _ in lost)
    assert sum(reaped) == len(lost)
    assert counts(conn, "race") == {"pending": len(lost), "scheduled": 0, "claimed": 0,
                                    "done": len(acked), "dead": 0, "cancelled": 0}
