"""requeue_dead_job's request_id: a retried call repeats the first answer and changes nothing.

The first call that succeeds with a request_id records it (pgbatch.job_request)
in its own transaction; a repeat for the same job returns the job's id again,
whatever happened to the job since (even when it died again); another
request_id, or none, behaves as a first call; a refused call records nothing.
"""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from pgbatch import InvalidState, JobNotFound
from tests.conftest import TestDatabase
from tests.helpers import (
    archive_row,
    claim,
    job_row,
    open_client,
    raises_sqlstate,
    scalar,
    state_snapshot,
)
from tests.web_helpers import claimed_job, dead_job
from tests.worker_harness import wait_until

Conn = psycopg.Connection[Any]


def _requeue(conn: Conn, job_id: UUID, request_id: UUID | None) -> UUID:
    return UUID(str(scalar(conn, "select pgbatch.requeue_dead_job(%s, request_id => %s)",
                           [job_id, request_id])))


def _requests(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute("select job_id, request_id, kind from pgbatch.job_request"
                        " order by 1, 2").fetchall()


def _snapshot(conn: Conn) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    return state_snapshot(conn), _requests(conn)


def _die_again(conn: Conn, job_id: UUID, queue: str = "rq") -> None:
    """Claim the revived job and nack it past its last attempt: dead again."""
    rows = claim(conn, queue, 100)
    for r in rows:
        if r["id"] != job_id:
            conn.execute("select pgbatch.release(%s, %s)", [r["id"], r["claim_token"]])
    tokens = [r["claim_token"] for r in rows if r["id"] == job_id]
    assert tokens, "the revived job was not claimable"
    conn.execute("select pgbatch.nack(%s, %s, '{\"message\": \"again\"}')", [job_id, tokens[0]])
    archived = archive_row(conn, job_id)
    assert archived is not None
    assert archived["state"] == "dead"


def test_the_same_request_twice_returns_the_same_answer_and_changes_nothing(
        conn: Conn) -> None:
    job_id = dead_job(conn, "rq")
    request = uuid4()
    assert _requeue(conn, job_id, request) == job_id
    assert _requests(conn) == [(job_id, request, "requeue_dead")]
    first = job_row(conn, job_id)
    assert first is not None
    assert (first["state"], first["attempt"]) == ("pending", 0)
    before = _snapshot(conn)
    assert _requeue(conn, job_id, request) == job_id
    assert _snapshot(conn) == before


def test_a_repeat_after_the_job_died_again_still_returns_the_first_answer(conn: Conn) -> None:
    job_id = dead_job(conn, "rq")
    request = uuid4()
    _requeue(conn, job_id, request)
    _die_again(conn, job_id)
    before = _snapshot(conn)
    assert _requeue(conn, job_id, request) == job_id
    assert _snapshot(conn) == before  # still dead: the repeat revived nothing
    # another request is a new call: it revives the job again
    other = uuid4()
    assert _requeue(conn, job_id, other) == job_id
    again = job_row(conn, job_id)
    assert again is not None
    assert again["state"] == "pending"
    assert sorted(r[1] for r in _requests(conn)) == sorted([request, other])


def test_another_request_or_none_is_refused_as_today(conn: Conn) -> None:
    job_id = dead_job(conn, "rq")
    _requeue(conn, job_id, uuid4())
    before = _snapshot(conn)
    with raises_sqlstate("PB004", "not dead"):
        _requeue(conn, job_id, uuid4())
    with raises_sqlstate("PB004", "not dead"):
        _requeue(conn, job_id, None)
    with raises_sqlstate("PB003", "not found"):
        _requeue(conn, uuid4(), uuid4())
    assert _snapshot(conn) == before


def test_a_refused_call_records_nothing_so_its_retry_is_tried_afresh(conn: Conn) -> None:
    job_id = claimed_job(conn, "rq")
    request = uuid4()
    before = _snapshot(conn)
    with raises_sqlstate("PB004", "is claimed"):
        _requeue(conn, job_id, request)
    with raises_sqlstate("PB013"):
        conn.execute("select pgbatch.requeue_dead_job(%s, 'infinity', %s)", [job_id, request])
    assert _snapshot(conn) == before
    token = conn.execute("select claim_token from pgbatch.job where id = %s",
                         [job_id]).fetchone()
    assert token is not None
    conn.execute("select pgbatch.dead_letter(%s, %s, 'gave up')", [job_id, token[0]])
    assert _requeue(conn, job_id, request) == job_id
    revived = job_row(conn, job_id)
    assert revived is not None
    assert revived["state"] == "pending"


def test_the_same_request_id_for_another_job_is_that_jobs_first_call(conn: Conn) -> None:
    first, second = dead_job(conn, "rq"), dead_job(conn, "rq")
    request = uuid4()
    assert _requeue(conn, first, request) == first
    assert _requeue(conn, second, request) == second
    assert [r[0] for r in _requests(conn)] == sorted([first, second])
    states = [job_row(conn, j) for j in (first, second)]
    assert [s["state"] if s else None for s in states] == ["pending", "pending"]


def test_a_concurrent_repeat_waits_for_the_first_and_returns_its_answer(
        db: TestDatabase, conn: Conn) -> None:
    job_id = dead_job(conn, "rq")
    request = uuid4()
    dead_before = scalar(conn, "select dead from pgbatch.queue_stats('rq')")
    answers: list[UUID] = []
    errors: list[BaseException] = []
    with psycopg.connect(db.dsn) as first, psycopg.connect(db.dsn, autocommit=True) as second:
        _requeue(first, job_id, request)  # open transaction: the record is not committed
        pid = scalar(second, "select pg_backend_pid()")

        def repeat() -> None:
            try:
                answers.append(_requeue(second, job_id, request))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        thread = threading.Thread(target=repeat)
        thread.start()
        wait_until(lambda: scalar(conn, "select wait_event_type = 'Lock' from"
                                        " pg_stat_activity where pid = %s", [pid]) is True,
                   30, "the repeat to wait for the first call's record")
        first.commit()
        thread.join(30)
    assert not thread.is_alive()
    assert errors == []
    assert answers == [job_id]
    assert scalar(conn, "select dead from pgbatch.queue_stats('rq')") == dead_before - 1
    assert scalar(conn, "select count(*) from pgbatch.job where id = %s", [job_id]) == 1


def test_sweep_retention_forgets_requests_older_than_dead_after(conn: Conn) -> None:
    old, recent = dead_job(conn, "rq"), dead_job(conn, "rq")
    old_request, recent_request = uuid4(), uuid4()
    _requeue(conn, old, old_request)
    _requeue(conn, recent, recent_request)
    conn.execute("update pgbatch.job_request set requested_at = requested_at - interval '8 days'"
                 " where request_id = %s", [old_request])
    conn.execute("select pgbatch.sweep_retention()")
    assert _requests(conn) == [(recent, recent_request, "requeue_dead")]


def test_the_client_passes_request_id(db: TestDatabase, conn: Conn) -> None:
    job_id = dead_job(conn, "rq")
    request = uuid4()
    with open_client(db.dsn) as client:
        assert client.requeue_dead_job(job_id, request_id=request) == job_id
        _die_again(conn, job_id)
        assert client.requeue_dead_job(job_id, request_id=request) == job_id
        dead = archive_row(conn, job_id)
        assert dead is not None
        assert dead["state"] == "dead"
        assert client.requeue_dead_job(job_id, request_id=uuid4()) == job_id  # a new request
        revived = job_row(conn, job_id)
        assert revived is not None
        assert revived["state"] == "pending"
        other = claimed_job(conn, "rq2")
        with pytest.raises(InvalidState):
            client.requeue_dead_job(other, request_id=uuid4())
        with pytest.raises(JobNotFound):
            client.requeue_dead_job(uuid4(), request_id=uuid4())
