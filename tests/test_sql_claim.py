"""claim(): order, due time, pause, batches, and claimers that never wait on
each other (FOR UPDATE SKIP LOCKED), up to 8 connections draining 10,000 jobs."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from datetime import timedelta
from functools import partial
from typing import Any
from uuid import UUID

import psycopg
import pytest

from tests.conftest import TestDatabase
from tests.helpers import (
    claim,
    claim_one,
    counts,
    db_now,
    enqueue,
    run_threads,
    scalar,
    set_clock,
    stats,
)

Conn = psycopg.Connection[Any]


@pytest.mark.in_tx
def test_claim_order_is_priority_then_run_at_then_enqueue_order(conn: Conn) -> None:
    base = db_now(conn) - timedelta(hours=1)
    spec = [  # (priority, run_at offset in seconds)
        (0, 20), (5, 30), (0, 10), (5, 30), (-1, 0), (0, 10), (5, 40), (2, 50), (0, 10),
    ]
    ids: list[UUID] = []
    for prio, offset in spec:
        run_at = base + timedelta(seconds=offset)
        for queue in ("batch", "single"):
            job_id = enqueue(conn, queue, {"prio": prio, "offset": offset},
                             run_at=run_at, priority=prio)
            if queue == "batch":
                ids.append(job_id)
    order = sorted(range(len(spec)), key=lambda i: (-spec[i][0], spec[i][1], i))
    expected = [spec[i] for i in order]

    batch = claim(conn, "batch", max_jobs=100)
    assert [r["id"] for r in batch] == [ids[i] for i in order]

    singles = [claim_one(conn, "single") for _ in spec]
    assert [(r["payload"]["prio"], r["payload"]["offset"]) for r in singles] == expected
    assert claim(conn, "single") == []


@pytest.mark.in_tx
def test_future_run_at_is_claimed_only_when_due(conn: Conn) -> None:
    now = db_now(conn)
    due_at = now + timedelta(hours=1)
    later = enqueue(conn, "q", run_at=due_at, priority=10)
    assert claim(conn, "q") == []
    assert counts(conn, "q")["scheduled"] == 1
    assert counts(conn, "q")["pending"] == 0
    set_clock(conn, due_at - timedelta(seconds=1))
    assert claim(conn, "q") == []
    set_clock(conn, due_at)
    assert counts(conn, "q")["pending"] == 1
    job = claim_one(conn, "q")
    assert job["id"] == later
    assert job["run_at"] == due_at


@pytest.mark.in_tx
def test_future_job_does_not_block_due_jobs_of_lower_priority(conn: Conn) -> None:
    now = db_now(conn)
    enqueue(conn, "q", run_at=now + timedelta(minutes=5), priority=100)
    due = enqueue(conn, "q", priority=-5)
    assert [r["id"] for r in claim(conn, "q", 10)] == [due]


@pytest.mark.in_tx
def test_paused_queue_yields_nothing_until_resumed(conn: Conn) -> None:
    job_id = enqueue(conn, "q")
    other = enqueue(conn, "other")
    conn.execute("select pgbatch.pause_queue('q')")
    assert claim(conn, "q", 10) == []
    s = stats(conn, "q")
    assert s["paused"] is True
    assert s["pending"] == 1
    # enqueues still work on a paused queue; other queues are not affected
    second = enqueue(conn, "q")
    assert claim_one(conn, "other")["id"] == other
    assert claim(conn, "q", 10) == []
    conn.execute("select pgbatch.resume_queue('q')")
    assert stats(conn, "q")["paused"] is False
    assert [r["id"] for r in claim(conn, "q", 10)] == [job_id, second]


@pytest.mark.in_tx
def test_claim_batch_shares_one_lease_with_fresh_tokens(conn: Conn) -> None:
    for i in range(5):
        enqueue(conn, "q", {"i": i}, max_attempts=7)
    now = db_now(conn)
    set_clock(conn, now)  # one fixed database time for the claim and the check
    rows = claim(conn, "q", 5, lease="2 minutes", worker_id="w1")
    assert len(rows) == 5
    assert {r["lease_expires_at"] for r in rows} == {now + timedelta(minutes=2)}
    assert len({r["claim_token"] for r in rows}) == 5
    assert all(r["attempt"] == 1 and r["max_attempts"] == 7 for r in rows)
    assert scalar(conn, "select count(*) from pgbatch.job where claimed_by = 'w1'") == 5
    # a new claim of the same job gets a new token
    job = rows[0]
    conn.execute("select pgbatch.nack(%s, %s, retry_at => pgbatch.now())",
                 [job["id"], job["claim_token"]])
    again = claim_one(conn, "q")
    assert again["id"] == job["id"]
    assert again["claim_token"] != job["claim_token"]
    assert again["attempt"] == 2


def test_claim_skips_rows_locked_by_another_transaction(db: TestDatabase) -> None:
    conn = db.connect()
    ids = [enqueue(conn, "q", {"i": i}) for i in range(10)]
    locker = db.connect(autocommit=False)
    locked = [r[0] for r in locker.execute(
        "select id from pgbatch.job where queue = 'q' order by seq limit 3 for update").fetchall()]
    assert locked == ids[:3]
    conn.execute("set statement_timeout = '2s'")
    got = claim(conn, "q", 10)
    assert [r["id"] for r in got] == ids[3:]
    locker.rollback()
    assert [r["id"] for r in claim(conn, "q", 10)] == ids[:3]


def test_open_claim_transaction_does_not_block_other_claimers(db: TestDatabase) -> None:
    conn = db.connect()
    ids = [enqueue(conn, "q") for _ in range(6)]
    first = db.connect(autocommit=False)
    held = claim(first, "q", 3)  # not committed: its rows stay locked
    assert [r["id"] for r in held] == ids[:3]
    conn.execute("set statement_timeout = '2s'")
    assert [r["id"] for r in claim(conn, "q", 10)] == ids[3:]
    assert claim(conn, "q", 10) == []
    first.commit()
    assert counts(conn, "q")["claimed"] == 6


N_JOBS = 10_000
N_CLAIMERS = 8


def test_10000_jobs_drained_by_8_claimers_each_claimed_and_acked_exactly_once(
    db: TestDatabase,
) -> None:
    setup = db.connect()
    requests = json.dumps([{"queue": "drain", "payload": {"n": i}} for i in range(N_JOBS)])
    enqueued = scalar(setup, "select pgbatch.enqueue_many(%s)", [requests])
    assert len(set(enqueued)) == N_JOBS

    conns = [db.connect(application_name=f"pgb-claimer-{i}") for i in range(N_CLAIMERS)]
    pids = {scalar(c, "select pg_backend_pid()") for c in conns}
    monitor = db.connect()
    claims: list[list[UUID]] = [[] for _ in range(N_CLAIMERS)]
    acked: list[list[UUID]] = [[] for _ in range(N_CLAIMERS)]
    barrier = threading.Barrier(N_CLAIMERS + 1)
    stop = threading.Event()
    samples: list[tuple[int, str | None, str | None, str | None, str | None, list[str] | None]] = []

    def claimer(i: int) -> None:
        conn = conns[i]
        rng = random.Random(i)
        barrier.wait(timeout=30)
        while True:
            batch = claim(conn, "drain", rng.randint(1, 50))
            if not batch:
                return
            claims[i].extend(r["id"] for r in batch)
            if len(batch) == 1 or rng.random() < 0.1:
                for r in batch:
                    conn.execute("select pgbatch.ack(%s, %s)", [r["id"], r["claim_token"]])
                    acked[i].append(r["id"])
            else:
                entries = json.dumps([{"job_id": str(r["id"]), "claim_token": str(r["claim_token"])}
                                      for r in batch])
                outcomes = conn.execute(
                    "select job_id, status from pgbatch.ack_many(%s)", [entries]).fetchall()
                assert [s for _, s in outcomes] == ["acked"] * len(batch)
                acked[i].extend(j for j, _ in outcomes)

    def sampler() -> None:
        barrier.wait(timeout=30)
        while not stop.is_set():
            rows = monitor.execute(
                "select a.pid, a.state, a.wait_event_type, a.wait_event, a.query,"
                " array(select b.state from pg_stat_activity b"
                "       where b.pid = any(pg_blocking_pids(a.pid)))"
                " from pg_stat_activity a where a.pid = any(%s)", [list(pids)]).fetchall()
            samples.extend(rows)
            stop.wait(0.002)

    sample_thread = threading.Thread(target=sampler, name="pgb-sampler")
    sample_thread.start()
    try:
        run_threads([partial(claimer, i) for i in range(N_CLAIMERS)], timeout=120)
    finally:
        stop.set()
        sample_thread.join(30)

    all_claims = [j for c in claims for j in c]
    dupes = [j for j, n in Counter(all_claims).items() if n > 1]
    assert dupes == [], f"{len(dupes)} jobs were claimed more than once"
    assert set(all_claims) == set(enqueued)
    all_acks = [j for a in acked for j in a]
    assert len(all_acks) == N_JOBS
    assert set(all_acks) == set(enqueued)
    assert sum(1 for c in claims if c) >= 2, "the claimers did not run concurrently"

    s = stats(setup, "drain")
    assert (s["pending"], s["claimed"], s["done"], s["dead"]) == (0, 0, N_JOBS, 0)
    assert scalar(setup, "select count(*) from pgbatch.job") == 0
    assert scalar(setup, "select count(*) from pgbatch.job_archive"
                         " where state = 'done' and attempt = 1") == N_JOBS

    # No claim ever queued behind a row someone holds: SKIP LOCKED passes over
    # locked rows (the deterministic proof is test_claim_skips_rows_locked_by_*).
    # PostgreSQL may still make a claim wait for a moment while it follows the
    # update chain of a row another claim or ack just changed: that wait lasts
    # only as long as that other claim/ack statement's transaction, and the
    # holder is always busy running one. So every lock wait seen here must be
    # on a transaction that is itself running a claim or an ack, never on an
    # idle one. ('extend' is the relation-extension lock of concurrent inserts.)
    active = [s for s in samples if s[1] == "active"]
    assert len(active) > 0, "the sampler saw no claimer at work"
    lock_waits = [s for s in samples if s[2] == "Lock" and s[3] != "extend"]
    unexpected = [s for s in lock_waits
                  if "pgbatch.claim" not in (s[4] or "") and "pgbatch.ack" not in (s[4] or "")]
    assert unexpected == [], f"unexpected lock waits: {unexpected[:10]}"
    idle_blockers = [s for s in lock_waits
                     if s[5] and any(b == "idle in transaction" for b in s[5])]
    assert idle_blockers == [], f"claims waited on idle transactions: {idle_blockers[:10]}"


@pytest.mark.in_tx
@pytest.mark.parametrize("max_jobs", [1, 3])
def test_claim_returns_fewer_when_fewer_are_due(conn: Conn, max_jobs: int) -> None:
    assert claim(conn, "q", max_jobs) == []
    only = enqueue(conn, "q")
    assert [r["id"] for r in claim(conn, "q", max_jobs)] == [only]
