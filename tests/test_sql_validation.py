"""Bad input: each mistake gets its own SQLSTATE, a clear message, the matching
Python exception, and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from pgbatch import (
    AckEffects,
    Client,
    EnqueueRequest,
    InvalidArgument,
    InvalidEffects,
    InvalidPayload,
    InvalidQueueName,
    JobNotFound,
    PgBatchError,
    ValidationError,
)
from tests.conftest import PgTestServer, TestDatabase
from tests.helpers import (
    claim_one,
    cloned_database,
    enqueue,
    open_client,
    raises_sqlstate,
    scalar,
    state_snapshot,
)

Conn = psycopg.Connection[Any]


@dataclass
class World:
    """A database holding a pending, a claimed and a done job, and a kv entry."""

    conn: Conn
    pending: UUID
    claimed: UUID
    token: UUID
    done: UUID


@pytest.fixture(scope="module")
def shared_db(pg_server: PgTestServer, template_db: str) -> Iterator[TestDatabase]:
    """One database for the whole module: every case here must leave it unchanged."""
    with cloned_database(pg_server, template_db, "validation") as database:
        yield database


@pytest.fixture(scope="module")
def world(shared_db: TestDatabase) -> World:
    conn = shared_db.connect()
    done = enqueue(conn, "q", priority=2)
    job = claim_one(conn, "q", lease="1 day")
    conn.execute("select pgbatch.ack(%s, %s, '{\"kv_put\": {\"k\": 1}}')",
                 [done, job["claim_token"]])
    claimed = enqueue(conn, "q", priority=1)
    token = claim_one(conn, "q", lease="1 day")["claim_token"]
    pending = enqueue(conn, "q")
    return World(conn, pending, claimed, token, done)


BIG = "jsonb_build_object('data', repeat('x', pgbatch.max_payload_bytes()))"

# (sql, params(world), sqlstate, message fragment)
SQL_CASES: list[tuple[str, Callable[[World], list[Any]], str, str]] = [
    ("select pgbatch.enqueue('', '{}')", lambda w: [], "PB005", "invalid queue name"),
    ("select pgbatch.enqueue(repeat('q', 129), '{}')", lambda w: [], "PB005", "129 characters"),
    ("select pgbatch.enqueue(null, '{}')", lambda w: [], "PB005", "invalid queue name"),
    ("select pgbatch.enqueue('q', null::jsonb)", lambda w: [], "PB006", "invalid payload"),
    (f"select pgbatch.enqueue('q', {BIG})", lambda w: [], "PB006", "payload too large"),
    ("select pgbatch.enqueue('q', '{}', max_attempts => 0)", lambda w: [], "PB007",
     "max_attempts"),
    ("select pgbatch.enqueue('q', '{}', max_attempts => -3)", lambda w: [], "PB007",
     "max_attempts"),
    ("select pgbatch.enqueue('q', '{}', max_attempts => null)", lambda w: [], "PB007",
     "max_attempts"),
    ("select * from pgbatch.claim('')", lambda w: [], "PB005", "invalid queue name"),
    ("select * from pgbatch.claim(repeat('q', 129))", lambda w: [], "PB005",
     "invalid queue name"),
    ("select * from pgbatch.claim('q', 0)", lambda w: [], "PB007", "max_jobs"),
    ("select * from pgbatch.claim('q', -1)", lambda w: [], "PB007", "max_jobs"),
    ("select * from pgbatch.claim('q', 1, '0 seconds')", lambda w: [], "PB007", "lease"),
    ("select * from pgbatch.claim('q', 1, '-5 seconds')", lambda w: [], "PB007", "lease"),
    ("select * from pgbatch.claim('q', 1, null)", lambda w: [], "PB007", "lease"),
    ("select pgbatch.renew_lease(%s, %s, '0 seconds')", lambda w: [w.claimed, w.token],
     "PB007", "lease"),
    ("select pgbatch.ack(%s, %s, '{\"enqueue\": 1}')", lambda w: [w.claimed, w.token],
     "PB008", "invalid effects"),
    ("select pgbatch.ack(%s, %s, '[]')", lambda w: [w.claimed, w.token], "PB008",
     "invalid effects"),
    # unknown job ids
    ("select pgbatch.ack(%s, %s)", lambda w: [uuid4(), uuid4()], "PB003", "not found"),
    ("select pgbatch.nack(%s, %s)", lambda w: [uuid4(), uuid4()], "PB003", "not found"),
    ("select pgbatch.dead_letter(%s, %s)", lambda w: [uuid4(), uuid4()], "PB003", "not found"),
    ("select pgbatch.renew_lease(%s, %s)", lambda w: [uuid4(), uuid4()], "PB003", "not found"),
    ("select pgbatch.cancel_job(%s)", lambda w: [uuid4()], "PB003", "not found"),
    ("select pgbatch.requeue_dead_job(%s)", lambda w: [uuid4()], "PB003", "not found"),
    # malformed enqueue_many requests
    ("select pgbatch.enqueue_many('{\"queue\": \"q\"}')", lambda w: [], "PB007", "JSON array"),
    ("select pgbatch.enqueue_many(null)", lambda w: [], "PB007", "JSON array"),
    ("select pgbatch.enqueue_many('[1]')", lambda w: [], "PB007", "JSON object"),
    ("select pgbatch.enqueue_many('[{\"queue\": \"q\", \"colour\": \"red\"}]')", lambda w: [],
     "PB007", "unknown key(s): colour"),
    ("select pgbatch.enqueue_many('[{\"payload\": {}}]')", lambda w: [], "PB005",
     "queue must be a string"),
    ("select pgbatch.enqueue_many('[{\"queue\": 5}]')", lambda w: [], "PB005",
     "queue must be a string"),
    ("select pgbatch.enqueue_many('[{\"queue\": \"\"}]')", lambda w: [], "PB005",
     "invalid queue name"),
    ("select pgbatch.enqueue_many(jsonb_build_array(jsonb_build_object('queue',"
     " repeat('q', 129))))", lambda w: [], "PB005", "invalid queue name"),
    ("select pgbatch.enqueue_many('[{\"queue\": \"q\", \"priority\": \"high\"}]')", lambda w: [],
     "PB007", "priority"),
    ("select pgbatch.enqueue_many('[{\"queue\": \"q\", \"priority\": 1.5}]')", lambda w: [],
     "PB007", "invalid enqueue request"),
    ("select pgbatch.enqueue_many('[{\"queue\": \"q\", \"priority\": 1e12}]')", lambda w: [],
     "PB007", "invalid enqueue request"),
    ("select pgbatch.enqueue_many('[{\"queue\": \"q\", \"max_attempts\": 0}]')", lambda w: [],
     "PB007", "max_attempts"),
    ("select pgbatch.enqueue_many('[{\"queue\": \"q\", \"max_attempts\": \"3\"}]')",
     lambda w: [], "PB007", "max_attempts"),
    ("select pgbatch.enqueue_many('[{\"queue\": \"q\", \"run_at\": \"not a time\"}]')",
     lambda w: [], "PB007", "invalid enqueue request"),
    ("select pgbatch.enqueue_many('[{\"queue\": \"q\", \"run_at\": 1700000000}]')",
     lambda w: [], "PB007", "run_at"),
    ("select pgbatch.enqueue_many('[{\"queue\": \"q\", \"id\": \"nope\"}]')", lambda w: [],
     "PB007", "invalid enqueue request"),
    ("select pgbatch.enqueue_many('[{\"queue\": \"q\", \"id\": 7}]')", lambda w: [],
     "PB007", "id must be"),
    ("select pgbatch.enqueue_many('[{\"queue\": \"q\", \"dedup_key\": 7}]')", lambda w: [],
     "PB007", "dedup_key"),
    (f"select pgbatch.enqueue_many(jsonb_build_array(jsonb_build_object('queue', 'q',"
     f" 'payload', {BIG})))", lambda w: [], "PB006", "payload too large"),
    # the first bad request is reported, and the good ones before it are not inserted
    ("select pgbatch.enqueue_many('[{\"queue\": \"q\"}, {\"queue\": \"q\"}, {\"queue\": 1}]')",
     lambda w: [], "PB005", "request 2"),
    # other entry points
    ("select * from pgbatch.ack_many('{}')", lambda w: [], "PB007", "JSON array"),
    ("select * from pgbatch.ack_many('[{\"job_id\": 1}]')", lambda w: [], "PB007", "job_id"),
    ("select * from pgbatch.ack_many('[{\"job_id\": \"x\", \"claim_token\": \"y\"}]')",
     lambda w: [], "PB007", "invalid ack entry"),
    ("select * from pgbatch.ack_ids(null, '{}')", lambda w: [], "PB007", "must not be NULL"),
    ("select * from pgbatch.ack_ids(array[gen_random_uuid()], '{}')", lambda w: [], "PB007",
     "job_ids has 1 entries but claim_tokens has 0"),
    ("select * from pgbatch.ack_ids(array[null::uuid], array[gen_random_uuid()])",
     lambda w: [], "PB007", "must not contain NULLs"),
    ("select pgbatch.reap_expired(0)", lambda w: [], "PB007", "limit"),
    ("select pgbatch.sweep_retention(\"limit\" => 0)", lambda w: [], "PB007", "limit"),
    ("select pgbatch.sweep_retention('-1 day')", lambda w: [], "PB007", "retention"),
    ("select pgbatch.pause_queue('')", lambda w: [], "PB005", "invalid queue name"),
    ("select pgbatch.resume_queue(repeat('q', 129))", lambda w: [], "PB005",
     "invalid queue name"),
    ("select pgbatch.set_queue_notify('q', null)", lambda w: [], "PB007", "enabled"),
]


@pytest.mark.parametrize(("query", "params", "sqlstate", "fragment"), SQL_CASES,
                         ids=[f"{c[2]}-{i}" for i, c in enumerate(SQL_CASES)])
def test_bad_input_gets_its_sqlstate_and_changes_nothing(
    world: World, query: str, params: Callable[[World], list[Any]], sqlstate: str,
    fragment: str
) -> None:
    before = state_snapshot(world.conn)
    with raises_sqlstate(sqlstate, fragment):
        world.conn.execute(query, params(world) or None)
    assert state_snapshot(world.conn) == before


@pytest.mark.in_tx
def test_limits_themselves_are_accepted(conn: Conn) -> None:
    assert enqueue(conn, "q" * 128)
    assert enqueue(conn, "q", max_attempts=1)
    payload_ok = scalar(conn, "select pgbatch.enqueue('q', jsonb_build_object('data',"
                              " repeat('x', pgbatch.max_payload_bytes() - 100)))")
    assert payload_ok is not None
    # the shortest and the longest lease (docs/limits.md)
    assert conn.execute("select * from pgbatch.claim('q', 1, '1 second')").fetchall()
    assert conn.execute("select * from pgbatch.claim('q', 1, '1 day')").fetchall()


@pytest.fixture(scope="module")
def client(shared_db: TestDatabase) -> Iterator[Client]:
    with open_client(shared_db.dsn) as c:
        yield c


# (call, Python class, sqlstate or None for a client-side check)
CLIENT_CASES: list[tuple[str, Callable[[Client, World], Any], type[PgBatchError],
                         str | None]] = [
    ("enqueue_empty_queue", lambda c, w: c.enqueue(""), InvalidQueueName, "PB005"),
    ("enqueue_long_queue", lambda c, w: c.enqueue("q" * 129), InvalidQueueName, "PB005"),
    ("enqueue_zero_attempts", lambda c, w: c.enqueue("q", max_attempts=0), InvalidArgument,
     "PB007"),
    ("enqueue_big_payload", lambda c, w: c.enqueue("q", {"d": "x" * 1_100_000}), InvalidPayload,
     "PB006"),
    ("enqueue_unserialisable", lambda c, w: c.enqueue("q", {"d": object()}), InvalidPayload,
     None),
    ("enqueue_nan", lambda c, w: c.enqueue("q", {"d": float("nan")}), InvalidPayload, None),
    ("claim_zero", lambda c, w: c.claim("q", 0), InvalidArgument, "PB007"),
    ("claim_zero_lease", lambda c, w: c.claim("q", 1, lease=timedelta(0)), InvalidArgument,
     "PB007"),
    ("claim_negative_lease", lambda c, w: c.claim("q", lease=timedelta(seconds=-1)),
     InvalidArgument, "PB007"),
    ("claim_empty_queue", lambda c, w: c.claim(""), InvalidQueueName, "PB005"),
    ("ack_bad_effects",
     lambda c, w: c.ack(w.claimed, w.token, AckEffects(enqueue=[EnqueueRequest("")])),
     InvalidEffects, "PB008"),
    ("ack_unknown", lambda c, w: c.ack(uuid4(), uuid4()), JobNotFound, "PB003"),
    ("nack_unknown", lambda c, w: c.nack(uuid4(), uuid4()), JobNotFound, "PB003"),
    ("dead_letter_unknown", lambda c, w: c.dead_letter(uuid4(), uuid4()), JobNotFound, "PB003"),
    ("renew_unknown", lambda c, w: c.renew_lease(uuid4(), uuid4()), JobNotFound, "PB003"),
    ("renew_zero", lambda c, w: c.renew_lease(w.claimed, w.token, timedelta(0)),
     InvalidArgument, "PB007"),
    ("cancel_unknown", lambda c, w: c.cancel_job(uuid4()), JobNotFound, "PB003"),
    ("requeue_unknown", lambda c, w: c.requeue_dead_job(uuid4()), JobNotFound, "PB003"),
    ("enqueue_many_zero_attempts",
     lambda c, w: c.enqueue_many([EnqueueRequest("q"), EnqueueRequest("q", max_attempts=0)]),
     InvalidArgument, "PB007"),
    ("enqueue_many_empty_queue", lambda c, w: c.enqueue_many([EnqueueRequest("")]),
     InvalidQueueName, "PB005"),
    ("pause_empty_queue", lambda c, w: c.pause_queue(""), InvalidQueueName, "PB005"),
    ("reap_zero", lambda c, w: c.reap_expired(0), InvalidArgument, "PB007"),
]


@pytest.mark.parametrize(("call", "cls", "sqlstate"), [c[1:] for c in CLIENT_CASES],
                         ids=[c[0] for c in CLIENT_CASES])
def test_bad_input_raises_its_python_class(
    world: World, client: Client, call: Callable[[Client, World], Any],
    cls: type[PgBatchError], sqlstate: str | None
) -> None:
    before = state_snapshot(world.conn)
    with pytest.raises(cls) as info:
        call(client, world)
    err = info.value
    assert type(err) is cls, f"got the generic {type(err).__name__}"
    assert err.sqlstate == cls.sqlstate
    assert err.message
    if sqlstate is not None:
        assert err.sqlstate == sqlstate
        assert isinstance(err.__cause__, psycopg.Error)
        assert err.__cause__.sqlstate == sqlstate
    assert state_snapshot(world.conn) == before


def test_validation_errors_are_value_errors(client: Client) -> None:
    with pytest.raises(ValueError, match="invalid queue name"):
        client.enqueue("")
    with pytest.raises(ValidationError):
        client.claim("q", -1)


@pytest.mark.in_tx
def test_enqueue_many_error_names_the_bad_request(conn: Conn) -> None:
    requests = [{"queue": "q"}] * 3 + [{"queue": "q", "priority": "x"}]
    with raises_sqlstate("PB007", "invalid enqueue request 3: priority must be an integer"):
        conn.execute("select pgbatch.enqueue_many(%s)", [json.dumps(requests)])
    assert scalar(conn, "select count(*) from pgbatch.job") == 0
