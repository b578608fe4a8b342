"""enqueue_arrays (the bulk form with one array per field), the ids minted once
per call, and the lean single enqueue: the same semantics as enqueue_many and
the JSON requests, checked through plain SQL as a psql user writes it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from tests.conftest import TestDatabase
from tests.helpers import (
    archive_row,
    claim,
    claim_one,
    collect_notifies,
    counts,
    db_now,
    enqueue,
    job_row,
    listen,
    raises_sqlstate,
    scalar,
    state_snapshot,
)

Conn = psycopg.Connection[Any]


def arrays(conn: Conn, queues: list[str], **kw: Any) -> list[UUID]:
    """pgbatch.enqueue_arrays(queues, name => value, ...); returns the ids."""
    names = "".join(f", {k} => %s" for k in kw)
    ids = scalar(conn, f"select pgbatch.enqueue_arrays(%s::text[]{names})", [queues, *kw.values()])
    return list(ids)


# ---------------------------------------------------------------- the ids


@pytest.mark.in_tx
def test_minted_ids_are_version_7_unique_ordered_and_keep_given_ones(conn: Conn) -> None:
    given = uuid4()
    ids = list(scalar(conn, "select pgbatch._mint_ids(5, array[null, null, %s, null, null]"
                            "::uuid[])", [given]))
    assert ids[2] == given
    minted = [i for k, i in enumerate(ids) if k != 2]
    assert all(i.version == 7 for i in minted)
    assert all((i.int >> 62) & 0b11 == 0b10 for i in minted)  # RFC 9562 variant
    assert minted == sorted(minted)
    assert len(set(minted)) == 4
    ms = (db_now(conn).timestamp() * 1000)
    assert all(abs((i.int >> 80) - ms) < 60_000 for i in minted)  # the Unix ms prefix
    again = list(scalar(conn, "select pgbatch._mint_ids(1000)"))
    assert len(set(again)) == 1000
    assert not set(again) & set(minted)
    assert scalar(conn, "select pgbatch._mint_ids(0)") == []


@pytest.mark.in_tx
def test_two_calls_in_one_millisecond_never_share_an_id(conn: Conn) -> None:
    ids = scalar(conn, "select array_agg(i) from (select unnest(pgbatch._mint_ids(50)) i"
                       " from generate_series(1, 40)) x")
    assert len(ids) == 2000
    assert len(set(ids)) == 2000


# ---------------------------------------------------------------- enqueue_arrays


@pytest.mark.in_tx
def test_arrays_insert_every_field_in_order(conn: Conn) -> None:
    now = db_now(conn)
    later = now + timedelta(hours=1)
    given = uuid4()
    ids = arrays(conn, ["a", "a", "b"], payloads=json.dumps([{"n": 1}, [2], None]),
                 run_ats=[None, later, None], priorities=[1, None, 7],
                 max_attempts=[3, None, 9], ids=[None, given, None])
    assert ids[1] == given
    assert len(set(ids)) == 3
    rows = [job_row(conn, i) for i in ids]
    assert [r["payload"] if r else "missing" for r in rows] == [{"n": 1}, [2], None]
    assert [r["priority"] for r in rows if r] == [1, 0, 7]
    assert [r["max_attempts"] for r in rows if r] == [3, 20, 9]
    assert [r["run_at"] for r in rows if r] == [now, later, now]
    assert [r["seq"] for r in rows if r] == sorted(r["seq"] for r in rows if r)


@pytest.mark.in_tx
def test_arrays_left_out_take_the_defaults(conn: Conn) -> None:
    [job_id] = arrays(conn, ["q"])
    row = job_row(conn, job_id)
    assert row is not None
    assert (row["payload"], row["priority"], row["max_attempts"], row["dedup_key"]) == (
        {}, 0, 20, None)
    assert arrays(conn, []) == []


@pytest.mark.in_tx
def test_arrays_honour_priority_and_run_at_in_claim_order(conn: Conn) -> None:
    future = db_now(conn) + timedelta(minutes=5)
    ids = arrays(conn, ["q"] * 4, priorities=[0, 5, 0, 9], run_ats=[None, None, future, None])
    assert [j["id"] for j in claim(conn, "q", 10)] == [ids[3], ids[1], ids[0]]


@pytest.mark.in_tx
def test_arrays_dedup_inside_the_call_and_against_live_jobs(conn: Conn) -> None:
    live = enqueue(conn, "q", dedup_key="live")
    ids = arrays(conn, ["q", "q", "q", "q2", "q"], dedup_keys=["a", "a", "live", "a", None],
                 payloads=json.dumps([1, 2, 3, 4, 5]))
    assert ids[0] == ids[1]
    assert ids[2] == live
    assert len({ids[0], ids[3], ids[4], live}) == 4
    first = job_row(conn, ids[0])
    assert first is not None
    assert first["payload"] == 1
    assert counts(conn, "q")["pending"] == 3
    assert counts(conn, "q2")["pending"] == 1


@pytest.mark.parametrize(("call", "code", "message"), [
    ("select pgbatch.enqueue_arrays(null)", "PB007", "queues must be an array"),
    ("select pgbatch.enqueue_arrays(array['a', 'b'], priorities => array[1])", "PB007",
     "priorities has 1 elements"),
    ("select pgbatch.enqueue_arrays(array['a'], ids => array[null, null]::uuid[])", "PB007",
     "ids has 2 elements"),
    ("select pgbatch.enqueue_arrays(array[['a'], ['b']])", "PB007", "more than one dimension"),
    ("select pgbatch.enqueue_arrays(array['a', 'b'], '[1]')", "PB007", "got 1 elements"),
    ("select pgbatch.enqueue_arrays(array['a'], '{\"a\": 1}')", "PB007", "got a JSON object"),
    ("select pgbatch.enqueue_arrays(array['a', '', 'b'])", "PB005",
     "invalid enqueue request 1: invalid queue name"),
    ("select pgbatch.enqueue_arrays(array['a', 'b'], max_attempts => array[1, 0])", "PB007",
     "invalid enqueue request 1: invalid max_attempts"),
    ("select pgbatch.enqueue_arrays(array['a', 'b'],"
     " run_ats => array[null, 'infinity']::timestamptz[])",
     "PB013", "invalid enqueue request 1: invalid run_at"),
    ("select pgbatch.enqueue_arrays(array['a', 'b', 'c'], dedup_keys => array[null, null,"
     " repeat('k', 300)])", "PB012", "invalid enqueue request 2: dedup_key too long"),
    ("select pgbatch.enqueue_arrays(array['a'], '[null]', priorities => array[1])", None, None),
])
def test_bad_arrays_are_refused_with_the_request_index_and_change_nothing(
    db: TestDatabase, call: str, code: str | None, message: str | None
) -> None:
    conn = db.connect()
    enqueue(conn, "a")
    before = state_snapshot(conn)
    if code is None:  # the control: a good call changes the state
        conn.execute(call.encode())
        assert state_snapshot(conn) != before
        return
    with raises_sqlstate(code, message):
        conn.execute(call.encode())
    assert state_snapshot(conn) == before


def test_given_ids_are_probed_against_live_and_archived_jobs(db: TestDatabase) -> None:
    conn = db.connect()
    live = enqueue(conn, "q", id_override=uuid4())
    done = enqueue(conn, "d", id_override=uuid4())
    job = claim_one(conn, "d")
    conn.execute("select pgbatch.ack(%s, %s)", [done, job["claim_token"]])
    assert archive_row(conn, done) is not None
    before = state_snapshot(conn)
    for taken in (live, done):
        with raises_sqlstate("PB002", "duplicate job id"):
            arrays(conn, ["q", "q"], ids=[None, taken])
    fresh = uuid4()
    with raises_sqlstate("PB002", "duplicate job id"):
        arrays(conn, ["q", "q"], ids=[fresh, fresh])
    assert state_snapshot(conn) == before


def test_one_notification_per_queue_with_the_ready_count(db: TestDatabase) -> None:
    sender = db.connect()
    listener = db.connect()
    channel = str(scalar(sender, "select pgbatch.channel_name('a')"))
    listen(listener, channel)
    soon = db_now(sender) + timedelta(minutes=5)
    arrays(sender, ["a"] * 100 + ["b"] * 7)
    assert collect_notifies(listener, sender, channel) == ["100"]
    arrays(sender, ["a", "a", "a", "a"], run_ats=[None, soon, None, None],
           dedup_keys=[None, None, "k", "k"])
    assert collect_notifies(listener, sender, channel) == ["2", f"@{int(soon.timestamp() * 1000)}"]
    arrays(sender, ["a"], dedup_keys=["k"])  # a dedup hit inserts nothing: no wakeup
    assert collect_notifies(listener, sender, channel) == []


def test_arrays_in_a_rolled_back_transaction_leave_nothing(db: TestDatabase) -> None:
    watcher = db.connect()
    listener = db.connect()
    channel = str(scalar(watcher, "select pgbatch.channel_name('tx')"))
    listen(listener, channel)
    before = state_snapshot(watcher)
    caller = db.connect(autocommit=False)
    arrays(caller, ["tx", "tx"], dedup_keys=["k", None])
    caller.rollback()
    assert state_snapshot(watcher) == before
    assert collect_notifies(listener, watcher, channel) == []


def test_a_producer_may_call_enqueue_arrays(db: TestDatabase) -> None:
    owner = db.connect()
    owner.execute("create role enqueue_arrays_producer login in role pgbatch_producer")
    try:
        with psycopg.connect(db.dsn, user="enqueue_arrays_producer", autocommit=True) as producer:
            [job_id] = arrays(producer, ["p"])
            assert job_row(owner, job_id) is not None
            with raises_sqlstate("42501"):
                producer.execute("select pgbatch._mint_ids(1)")
    finally:
        owner.execute("drop owned by enqueue_arrays_producer")
        owner.execute("drop role enqueue_arrays_producer")


# ---------------------------------------------------------------- the lean single enqueue


@pytest.mark.in_tx
def test_single_enqueue_with_every_argument(conn: Conn) -> None:
    later = db_now(conn) + timedelta(minutes=1)
    job_id = enqueue(conn, "q", {"x": 1}, run_at=later, priority=4, dedup_key="k",
                     max_attempts=2)
    row = job_row(conn, job_id)
    assert row is not None
    assert (row["payload"], row["run_at"], row["priority"], row["dedup_key"],
            row["max_attempts"], row["state"], row["attempt"]) == (
        {"x": 1}, later, 4, "k", 2, "pending", 0)
    assert job_id.version == 7
    assert enqueue(conn, "q", {"x": 2}, dedup_key="k") == job_id
    assert enqueue(conn, "q2", dedup_key="k") != job_id
    assert counts(conn, "q") == {"pending": 0, "scheduled": 1, "claimed": 0, "done": 0,
                                 "dead": 0, "cancelled": 0}


def test_single_enqueue_dedup_key_is_free_again_once_the_job_is_settled(db: TestDatabase) -> None:
    conn = db.connect()
    first = enqueue(conn, "q", dedup_key="k")
    job = claim_one(conn, "q")
    assert enqueue(conn, "q", dedup_key="k") == first  # claimed is still live
    conn.execute("select pgbatch.ack(%s, %s)", [first, job["claim_token"]])
    second = enqueue(conn, "q", dedup_key="k")
    assert second != first
    assert job_row(conn, second) is not None


def test_single_enqueue_in_a_transaction_that_relaxed_durability_commits_durably(
    db: TestDatabase,
) -> None:
    conn = db.connect(autocommit=False)
    enqueue(conn, "q")
    conn.commit()
    claim(conn, "q")  # a claim alone relaxes synchronous_commit for its transaction
    assert scalar(conn, "select current_setting('synchronous_commit')") == "off"
    enqueue(conn, "q")
    assert scalar(conn, "select current_setting('synchronous_commit')") == "on"
    conn.rollback()
