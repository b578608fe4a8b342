"""Client.enqueue_many / AsyncClient.enqueue_many through pgbatch.enqueue_arrays,
and Client.enqueue's short and full statements: every field honoured, the same
ids and rows as the JSON form, bad requests refused with their index before
anything changes, one NOTIFY per queue, nothing left by a rolled-back caller."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from pgbatch import (
    AsyncClient,
    DuplicateJobId,
    EnqueueRequest,
    InvalidArgument,
    InvalidPayload,
    InvalidQueueName,
    InvalidTime,
    ValueTooLarge,
)
from tests.conftest import TestDatabase
from tests.helpers import (
    claim,
    collect_notifies,
    counts,
    db_now,
    job_row,
    listen,
    open_client,
    scalar,
    state_snapshot,
)

Conn = psycopg.Connection[Any]


def test_enqueue_many_sends_every_field(db: TestDatabase) -> None:
    conn = db.connect()
    later = db_now(conn) + timedelta(minutes=3)
    given = uuid4()
    requests = [EnqueueRequest("a", {"n": 1}, priority=2, max_attempts=4),
                EnqueueRequest("a", None, run_at=later, dedup_key="k"),
                EnqueueRequest("b", [1, 2], id=given),
                EnqueueRequest("a", "text", dedup_key="k")]
    with open_client(db.dsn) as client:
        ids = client.enqueue_many(requests)
    assert ids[2] == given
    assert ids[3] == ids[1]  # same (queue, dedup_key) in one call
    rows = [job_row(conn, i) for i in ids[:3]]
    assert [(r["queue"], r["payload"], r["priority"], r["max_attempts"], r["dedup_key"])
            for r in rows if r] == [("a", {"n": 1}, 2, 4, None), ("a", {}, 0, 20, "k"),
                                    ("b", [1, 2], 0, 20, None)]
    second = rows[1]
    assert second is not None
    assert second["run_at"] == later


def test_enqueue_many_gives_the_rows_of_the_json_form(db: TestDatabase) -> None:
    conn = db.connect()
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    naive = datetime(2030, 1, 2, 3, 4, 5)  # the session's time zone applies
    requests = [EnqueueRequest("q", {"i": i}, priority=i % 3, run_at=(at, naive, None)[i % 3],
                               dedup_key=f"k{i % 4}" if i % 2 else None,
                               max_attempts=1 + i % 5) for i in range(12)]
    with open_client(db.dsn) as client:
        ids = client.enqueue_many(requests)
    arrays_rows = conn.execute(
        "select queue, payload, priority, nullif(run_at, created_at), dedup_key, max_attempts"
        " from pgbatch.job order by seq").fetchall()
    conn.execute("delete from pgbatch.job")
    json_ids = scalar(conn, "select pgbatch.enqueue_many(%s)",
                      [json.dumps([r.to_json() for r in requests])])
    json_rows = conn.execute(
        "select queue, payload, priority, nullif(run_at, created_at), dedup_key, max_attempts"
        " from pgbatch.job order by seq").fetchall()
    assert arrays_rows == json_rows
    assert [ids.index(i) for i in ids] == [list(json_ids).index(j) for j in json_ids]


def test_enqueue_many_of_nothing_returns_nothing(db: TestDatabase) -> None:
    with open_client(db.dsn) as client:
        assert client.enqueue_many([]) == []


@pytest.mark.parametrize(("request_", "error", "message"), [
    (EnqueueRequest(""), InvalidQueueName, "invalid enqueue request 1: invalid queue name"),
    (EnqueueRequest(7), InvalidQueueName,  # type: ignore[arg-type]  # a wrong type on purpose
     "invalid enqueue request 1: queue must be a string"),
    (EnqueueRequest("q", priority=2**31), InvalidArgument,
     "invalid enqueue request 1: priority must be an integer"),
    (EnqueueRequest("q", priority="high"), InvalidArgument,  # type: ignore[arg-type]
     "invalid enqueue request 1: priority must be an integer"),
    (EnqueueRequest("q", max_attempts=0), InvalidArgument,
     "invalid enqueue request 1: invalid max_attempts"),
    (EnqueueRequest("q", run_at=datetime.max.replace(tzinfo=UTC)), InvalidTime,
     "invalid enqueue request 1: invalid run_at"),
    (EnqueueRequest("q", run_at="soon"), InvalidArgument,  # type: ignore[arg-type]
     "invalid enqueue request 1: run_at must be a datetime"),
    (EnqueueRequest("q", dedup_key="k" * 300), ValueTooLarge,
     "invalid enqueue request 1: dedup_key too long"),
    (EnqueueRequest("q", dedup_key=5), InvalidArgument,  # type: ignore[arg-type]
     "invalid enqueue request 1: dedup_key must be a string"),
    (EnqueueRequest("q", id="nope"), InvalidArgument,  # type: ignore[arg-type]
     "invalid enqueue request 1: id must be a UUID"),
    (EnqueueRequest("q", {"x": float("nan")}), InvalidPayload, "not JSON-serialisable"),
    (EnqueueRequest("q", {"x": "y" * 1_100_000}), InvalidPayload,
     "invalid enqueue request 1: payload too large"),
])
def test_a_bad_request_is_refused_with_its_index_and_nothing_changes(
    db: TestDatabase, request_: EnqueueRequest, error: type[Exception], message: str
) -> None:
    conn = db.connect()
    with open_client(db.dsn) as client:
        client.enqueue("q")
        before = state_snapshot(conn)
        with pytest.raises(error, match=message):
            client.enqueue_many([EnqueueRequest("q"), request_, EnqueueRequest("q")])
        assert state_snapshot(conn) == before
        # the pooled connection is clean afterwards
        assert len(client.enqueue_many([EnqueueRequest("q")])) == 1


def test_a_given_id_that_exists_is_duplicate_job_id(db: TestDatabase) -> None:
    conn = db.connect()
    with open_client(db.dsn) as client:
        taken = client.enqueue("q", id=uuid4())
        before = state_snapshot(conn)
        with pytest.raises(DuplicateJobId):
            client.enqueue_many([EnqueueRequest("q"), EnqueueRequest("q", id=taken)])
        assert state_snapshot(conn) == before


def test_enqueue_many_notifies_each_queue_once(db: TestDatabase) -> None:
    watcher = db.connect()
    listener = db.connect()
    channels = {q: str(scalar(watcher, "select pgbatch.channel_name(%s)", [q])) for q in "ab"}
    for channel in channels.values():
        listen(listener, channel)
    with open_client(db.dsn) as client:
        client.enqueue_many([EnqueueRequest("a")] * 30 + [EnqueueRequest("b")] * 2
                            + [EnqueueRequest("a")] * 5)
    got = [(n.channel, n.payload) for n in _drain(listener, watcher, channels["b"])]
    assert sorted(got) == [(channels["a"], "35"), (channels["b"], "2")]


def _drain(listener: Conn, sender: Conn, marker_channel: str) -> list[psycopg.Notify]:
    sender.execute("select pg_notify(%s, 'marker')", [marker_channel])
    got: list[psycopg.Notify] = []
    for n in listener.notifies(timeout=10):
        if n.payload == "marker":
            return got
        got.append(n)
    pytest.fail(f"no marker within 10 s; got {got}")


def test_enqueue_many_in_a_rolled_back_caller_transaction_leaves_nothing(
    db: TestDatabase,
) -> None:
    watcher = db.connect()
    listener = db.connect()
    channel = str(scalar(watcher, "select pgbatch.channel_name('tx')"))
    listen(listener, channel)
    before = state_snapshot(watcher)
    caller = db.connect(autocommit=False)
    with open_client(db.dsn) as client:
        client.enqueue_many([EnqueueRequest("tx", dedup_key="k"), EnqueueRequest("tx")],
                            conn=caller)
        assert scalar(caller, "select count(*) from pgbatch.job") == 2
        caller.rollback()
    assert state_snapshot(watcher) == before
    assert collect_notifies(listener, watcher, channel) == []


def test_short_and_full_enqueue_statements(db: TestDatabase) -> None:
    conn = db.connect()
    with open_client(db.dsn) as client:
        plain = client.enqueue("q", {"a": 1})
        full = client.enqueue("q", {"a": 2}, priority=1, max_attempts=3, dedup_key="d",
                              run_at=db_now(conn) - timedelta(seconds=1))
        assert client.enqueue("q", dedup_key="d") == full
        assert isinstance(plain, UUID)
        assert [j["id"] for j in claim(conn, "q", 5)] == [full, plain]
    assert counts(conn, "q")["claimed"] == 2


def test_async_enqueue_many_and_enqueue(db: TestDatabase) -> None:
    async def main() -> list[UUID]:
        client = await AsyncClient.connect(db.dsn, min_size=1, max_size=2)
        try:
            ids = await client.enqueue_many([EnqueueRequest("aq", {"i": i}, priority=i)
                                             for i in range(3)])
            ids.append(await client.enqueue("aq", {"i": 9}, priority=9))
            with pytest.raises(InvalidQueueName, match="invalid enqueue request 1"):
                await client.enqueue_many([EnqueueRequest("aq"), EnqueueRequest(" ")])
            caller = await psycopg.AsyncConnection.connect(db.dsn)
            try:
                await client.enqueue_many([EnqueueRequest("aq")], conn=caller)
                await caller.rollback()
            finally:
                await caller.close()
            return ids
        finally:
            await client.close()

    ids = asyncio.run(main())
    conn = db.connect()
    assert [j["id"] for j in claim(conn, "aq", 10)] == [ids[3], ids[2], ids[1], ids[0]]
    assert counts(conn, "aq")["pending"] == 0


def test_enqueue_on_a_caller_connection_with_its_own_row_factory(db: TestDatabase) -> None:
    caller = psycopg.connect(db.dsn, autocommit=True, row_factory=dict_row)
    try:
        with open_client(db.dsn) as client:
            one = client.enqueue("rf", conn=caller)
            many = client.enqueue_many([EnqueueRequest("rf")] * 2, conn=caller)
    finally:
        caller.close()
    assert isinstance(one, UUID)
    assert len(many) == 2
    assert counts(db.connect(), "rf")["pending"] == 3
