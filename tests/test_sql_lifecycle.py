"""A job's whole life through plain SQL (as a psql user writes it), dedup keys,
explicit ids, and cancellation."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from functools import partial
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from pgbatch import DuplicateJobId, InvalidState, JobCancelled, JobNotFound
from tests.conftest import TestDatabase
from tests.helpers import (
    archive_row,
    claim,
    claim_one,
    counts,
    enqueue,
    job_row,
    open_client,
    raises_sqlstate,
    run_threads,
    scalar,
    state_snapshot,
)

Conn = psycopg.Connection[Any]


def one(conn: Conn, query: str) -> tuple[Any, ...]:
    """Run a literal SQL statement (no parameters, as typed in psql); return its only row."""
    rows = conn.execute(query.encode()).fetchall()
    assert len(rows) == 1, f"{query}: expected one row, got {rows}"
    return tuple(rows[0])


# ---------------------------------------------------------------- plain SQL life


@pytest.mark.in_tx
def test_enqueue_claim_ack_in_plain_sql(conn: Conn) -> None:
    (job_id,) = one(conn, "select pgbatch.enqueue('emails', '{}')")
    assert job_id.version == 7, "job ids are time-ordered UUIDv7"
    assert counts(conn, "emails")["pending"] == 1
    cid, queue, payload, attempt, token = one(
        conn, "select id, queue, payload, attempt, claim_token from pgbatch.claim('emails')")
    assert (cid, queue, payload, attempt) == (job_id, "emails", {}, 1)
    assert counts(conn, "emails")["claimed"] == 1
    (follow_ups,) = one(conn, f"select pgbatch.ack('{job_id}', '{token}')")
    assert follow_ups == []
    assert counts(conn, "emails") == {"pending": 0, "scheduled": 0, "claimed": 0, "done": 1,
                                      "dead": 0, "cancelled": 0}
    archived = archive_row(conn, job_id)
    assert archived is not None
    assert archived["state"] == "done"
    assert job_row(conn, job_id) is None


@pytest.mark.in_tx
def test_nack_retry_dead_letter_requeue_ack_in_plain_sql(conn: Conn) -> None:
    (job_id,) = one(conn, "select pgbatch.enqueue('emails', '{\"to\": \"a@example.com\"}')")
    _, token1, attempt = one(conn, "select id, claim_token, attempt from pgbatch.claim('emails')")
    assert attempt == 1
    (state,) = one(conn, f"select pgbatch.nack('{job_id}', '{token1}')")
    assert state == "pending"
    # the default backoff put it (0.5 to 1 s) in the future: not claimable yet
    assert conn.execute("select * from pgbatch.claim('emails')").fetchall() == []
    assert counts(conn, "emails")["scheduled"] == 1
    conn.execute("set pgbatch.fake_now = '2100-01-01 00:00Z'")
    _, token2, attempt = one(conn, "select id, claim_token, attempt from pgbatch.claim('emails')")
    assert attempt == 2
    assert token2 != token1
    one(conn, f"select pgbatch.dead_letter('{job_id}', '{token2}', 'bad address')")
    dead = archive_row(conn, job_id)
    assert dead is not None
    assert dead["state"] == "dead"
    assert dead["last_error"] == {"type": "DeadLettered", "message": "bad address"}
    assert counts(conn, "emails")["dead"] == 1
    (requeued,) = one(conn, f"select pgbatch.requeue_dead_job('{job_id}')")
    assert requeued == job_id
    assert counts(conn, "emails")["dead"] == 0
    _, token3, attempt = one(conn, "select id, claim_token, attempt from pgbatch.claim('emails')")
    assert attempt == 1, "a requeued dead job starts with a fresh attempt count"
    one(conn, f"select pgbatch.ack('{job_id}', '{token3}')")
    assert counts(conn, "emails") == {"pending": 0, "scheduled": 0, "claimed": 0, "done": 1,
                                      "dead": 0, "cancelled": 0}
    done = archive_row(conn, job_id)
    assert done is not None
    assert done["state"] == "done"
    assert done["payload"] == {"to": "a@example.com"}


PSQL_SCRIPT = r"""
\set ON_ERROR_STOP on
select pgbatch.enqueue('emails', '{"to": "a@example.com"}') as job1 \gset
select * from pgbatch.claim('emails') \gset c1_
select pgbatch.ack(:'c1_id', :'c1_claim_token');
select pgbatch.enqueue('emails', '{}') as job2 \gset
select * from pgbatch.claim('emails') \gset c2_
select pgbatch.nack(:'job2', :'c2_claim_token', retry_at => now());
select * from pgbatch.claim('emails') \gset c3_
select pgbatch.dead_letter(:'job2', :'c3_claim_token', 'poison');
select pgbatch.requeue_dead_job(:'job2');
select * from pgbatch.claim('emails', max_jobs => 10, lease => '1 minute') \gset c4_
select pgbatch.ack(:'c4_id', :'c4_claim_token');
select pgbatch.reap_expired();
select 'stats', pending, claimed, done, dead from pgbatch.queue_stats('emails');
select 'channel', pgbatch.channel_name('emails');
"""


def test_psql_binary_runs_the_documented_calls_as_written(db: TestDatabase,
                                                         tmp_path: Any) -> None:
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not on PATH")
    script = tmp_path / "life.sql"
    script.write_text(PSQL_SCRIPT, encoding="utf-8")
    proc = subprocess.run(
        [psql, "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-d", db.dsn,
         "-f", str(script)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert "stats|0|0|2|0" in lines, proc.stdout
    conn = db.connect()
    assert scalar(conn, "select count(*) from pgbatch.job") == 0
    assert scalar(conn, "select count(*) from pgbatch.job_archive where state = 'done'") == 2
    channel = scalar(conn, "select pgbatch.channel_name('emails')")
    assert f"channel|{channel}" in lines


# ---------------------------------------------------------------- dedup and ids


@pytest.mark.in_tx
def test_dedup_key_returns_live_pending_job_and_inserts_nothing(conn: Conn) -> None:
    first = enqueue(conn, "q", {"v": 1}, dedup_key="k")
    before = state_snapshot(conn)
    second = enqueue(conn, "q", {"v": 2}, dedup_key="k", priority=9)
    assert second == first
    assert state_snapshot(conn) == before
    row = job_row(conn, first)
    assert row is not None
    assert row["payload"] == {"v": 1}
    assert row["priority"] == 0
    # the same key in another queue is another job
    assert enqueue(conn, "other", dedup_key="k") != first


@pytest.mark.in_tx
def test_dedup_key_against_a_claimed_job(conn: Conn) -> None:
    first = enqueue(conn, "q", dedup_key="k")
    job = claim_one(conn, "q")
    before = state_snapshot(conn)
    assert enqueue(conn, "q", dedup_key="k") == first
    assert state_snapshot(conn) == before
    # once the first is done, the key is free again: a new job is created
    conn.execute("select pgbatch.ack(%s, %s)", [first, job["claim_token"]])
    third = enqueue(conn, "q", dedup_key="k")
    assert third != first
    assert counts(conn, "q")["pending"] == 1


@pytest.mark.in_tx
@pytest.mark.parametrize("ending", ["ack", "dead_letter", "cancel"])
def test_dedup_key_is_free_after_the_job_ends(conn: Conn, ending: str) -> None:
    first = enqueue(conn, "q", dedup_key="k")
    if ending == "cancel":
        conn.execute("select pgbatch.cancel_job(%s)", [first])
    else:
        job = claim_one(conn, "q")
        conn.execute(f"select pgbatch.{ending}(%s, %s)", [first, job["claim_token"]])
    again = enqueue(conn, "q", dedup_key="k")
    assert again != first
    assert job_row(conn, again) is not None


@pytest.mark.in_tx
def test_dedup_key_inside_one_enqueue_many_batch(conn: Conn) -> None:
    live = enqueue(conn, "q", dedup_key="live")
    ids = scalar(conn, """select pgbatch.enqueue_many('[
        {"queue": "q", "dedup_key": "a", "payload": 1},
        {"queue": "q", "dedup_key": "a", "payload": 2},
        {"queue": "q"},
        {"queue": "q", "dedup_key": "live"},
        {"queue": "q2", "dedup_key": "a"},
        {"queue": "q", "dedup_key": "a", "payload": 3}
    ]')""")
    assert len(ids) == 6
    assert ids[0] == ids[1] == ids[5]
    assert ids[3] == live
    assert len({ids[0], ids[2], ids[4], live}) == 4
    assert counts(conn, "q")["pending"] == 3  # live, a, and the one without a key
    assert counts(conn, "q2")["pending"] == 1
    row = job_row(conn, ids[0])
    assert row is not None
    assert row["payload"] == 1


def test_duplicate_id_override_of_live_job_raises_and_leaves_it_untouched(
    db: TestDatabase, conn: Conn
) -> None:
    job_id = uuid4()
    assert enqueue(conn, "q", {"v": 1}, id_override=job_id) == job_id
    before = state_snapshot(conn)
    with raises_sqlstate("PB002", "duplicate job id"):
        enqueue(conn, "q", {"v": 2}, id_override=job_id)
    with raises_sqlstate("PB002", "duplicate job id"):
        enqueue(conn, "other", {"v": 2}, id_override=job_id, dedup_key="x")
    with raises_sqlstate("PB002", "duplicate job id"):
        conn.execute("select pgbatch.enqueue_many(%s)",
                     [f'[{{"queue": "q"}}, {{"queue": "q", "id": "{job_id}"}}]'])
    assert state_snapshot(conn) == before
    with open_client(db.dsn) as client, pytest.raises(DuplicateJobId):
        client.enqueue("q", {"v": 3}, id=job_id)
    assert state_snapshot(conn) == before


def test_duplicate_id_override_of_archived_job_raises(db: TestDatabase, conn: Conn) -> None:
    job_id = enqueue(conn, "q", id_override=uuid4())
    job = claim_one(conn, "q")
    conn.execute("select pgbatch.ack(%s, %s)", [job_id, job["claim_token"]])
    before = state_snapshot(conn)
    with raises_sqlstate("PB002"):
        enqueue(conn, "q", id_override=job_id)
    with raises_sqlstate("PB002"):
        conn.execute("select pgbatch.enqueue_many(%s)", [f'[{{"queue": "q", "id": "{job_id}"}}]'])
    assert state_snapshot(conn) == before
    with open_client(db.dsn) as client, pytest.raises(DuplicateJobId):
        client.enqueue("q", id=job_id)


@pytest.mark.in_tx
def test_duplicate_ids_inside_one_batch_raise(conn: Conn) -> None:
    job_id = uuid4()
    with raises_sqlstate("PB002"):
        conn.execute("select pgbatch.enqueue_many(%s)",
                     [f'[{{"queue": "a", "id": "{job_id}"}}, {{"queue": "b", "id": "{job_id}"}}]'])
    assert scalar(conn, "select count(*) from pgbatch.job") == 0


# ---------------------------------------------------------------- cancellation


@pytest.mark.in_tx
def test_cancel_pending_job_archives_it_and_it_is_never_claimed(conn: Conn) -> None:
    job_id = enqueue(conn, "q")
    assert scalar(conn, "select pgbatch.cancel_job(%s)", [job_id]) == "cancelled"
    assert claim(conn, "q") == []
    assert job_row(conn, job_id) is None
    archived = archive_row(conn, job_id)
    assert archived is not None
    assert archived["state"] == "cancelled"
    assert counts(conn, "q")["cancelled"] == 1
    # cancelling again reports the same state and changes nothing
    before = state_snapshot(conn)
    assert scalar(conn, "select pgbatch.cancel_job(%s)", [job_id]) == "cancelled"
    assert state_snapshot(conn) == before


def test_cancel_claimed_job_stops_renewal_and_nack_ends_it_cancelled(
    db: TestDatabase, conn: Conn
) -> None:
    job_id = enqueue(conn, "q", max_attempts=5)
    job = claim_one(conn, "q")
    assert scalar(conn, "select pgbatch.cancel_job(%s)", [job_id]) == "cancel_requested"
    row = job_row(conn, job_id)
    assert row is not None
    assert row["state"] == "claimed"
    assert row["cancel_requested"] is True
    with raises_sqlstate("PB009", "cancelled"):
        conn.execute("select pgbatch.renew_lease(%s, %s)", [job_id, job["claim_token"]])
    with open_client(db.dsn) as client, pytest.raises(JobCancelled):
        client.renew_lease(job_id, job["claim_token"])
    # the failed renewals changed nothing: the lease is the claim's
    row2 = job_row(conn, job_id)
    assert row2 is not None
    assert row2["lease_expires_at"] == job["lease_expires_at"]
    state = scalar(conn, "select pgbatch.nack(%s, %s, '{\"message\": \"stopped\"}')",
                   [job_id, job["claim_token"]])
    assert state == "cancelled"
    archived = archive_row(conn, job_id)
    assert archived is not None
    assert archived["state"] == "cancelled"
    assert counts(conn, "q") == {"pending": 0, "scheduled": 0, "claimed": 0, "done": 0,
                                 "dead": 0, "cancelled": 1}


@pytest.mark.in_tx
def test_cancel_claimed_job_that_completes_is_done(conn: Conn) -> None:
    job_id = enqueue(conn, "q")
    job = claim_one(conn, "q")
    assert scalar(conn, "select pgbatch.cancel_job(%s)", [job_id]) == "cancel_requested"
    conn.execute("select pgbatch.ack(%s, %s)", [job_id, job["claim_token"]])
    archived = archive_row(conn, job_id)
    assert archived is not None
    assert archived["state"] == "done"
    assert counts(conn, "q")["done"] == 1
    assert counts(conn, "q")["cancelled"] == 0


@pytest.mark.parametrize("ending", ["ack", "dead_letter"])
def test_cancel_of_finished_job_is_invalid_state(db: TestDatabase, conn: Conn,
                                                 ending: str) -> None:
    job_id = enqueue(conn, "q")
    job = claim_one(conn, "q")
    conn.execute(f"select pgbatch.{ending}(%s, %s)", [job_id, job["claim_token"]])
    before = state_snapshot(conn)
    with raises_sqlstate("PB004", "cannot be cancelled"):
        conn.execute("select pgbatch.cancel_job(%s)", [job_id])
    with open_client(db.dsn) as client, pytest.raises(InvalidState):
        client.cancel_job(job_id)
    assert state_snapshot(conn) == before


def test_cancel_of_unknown_job_is_job_not_found(db: TestDatabase, conn: Conn) -> None:
    unknown: UUID = uuid4()
    with raises_sqlstate("PB003", "not found"):
        conn.execute("select pgbatch.cancel_job(%s)", [unknown])
    with open_client(db.dsn) as client, pytest.raises(JobNotFound):
        client.cancel_job(unknown)


def test_concurrent_enqueues_with_one_dedup_key_create_one_job(db: TestDatabase) -> None:
    conns = [db.connect() for _ in range(8)]
    barrier = threading.Barrier(len(conns))
    ids: list[UUID] = []

    def enqueue_same(i: int) -> None:
        barrier.wait(timeout=30)
        for round_ in range(20):
            if i % 2:
                ids.append(enqueue(conns[i], "q", {"from": i}, dedup_key=f"k{round_}"))
            else:
                got = scalar(conns[i], "select pgbatch.enqueue_many(%s)", [json.dumps(
                    [{"queue": "q", "dedup_key": f"k{round_}"}, {"queue": "q", "dedup_key": "z"}])])
                ids.extend(got)

    run_threads([partial(enqueue_same, i) for i in range(len(conns))])
    check = conns[0]
    assert scalar(check, "select count(*) from pgbatch.job") == 21
    assert len(set(ids)) == 21
    rows = check.execute("select dedup_key, id from pgbatch.job").fetchall()
    assert {k for k, _ in rows} == {f"k{r}" for r in range(20)} | {"z"}
