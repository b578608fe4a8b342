"""Reading jobs: ``pgbatch.get_job``/``pgbatch.list_jobs`` and ``Client.get_job``/``list_jobs``.

The listing order is creation time, then enqueue order (``seq``), then id,
newest first. Jobs made by one statement share ``created_at``, and ids a
caller gives may be in any order, so only ``seq`` orders them: a test
makes hundreds at once, settles some of them (so the page mixes live and
archived rows) and pages through them by keyset cursor. Another test fills
the archive and counts the rows a deep page reads (``pg_stat_xact_user_tables``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from pgbatch import (
    JOB_STATES,
    Client,
    EnqueueRequest,
    InvalidArgument,
    InvalidQueueName,
    JobCursor,
    JobInfo,
    JobNotFound,
)
from tests.conftest import TestDatabase
from tests.helpers import raises_sqlstate, scalar, set_clock

Conn = psycopg.Connection[Any]

MANY = 400


@pytest.fixture
def client(db: TestDatabase) -> Iterator[Client]:
    c = Client.connect(db.dsn, max_size=2)
    try:
        yield c
    finally:
        c.close()


def _all_pages(client: Client, page: int, **filters: Any) -> list[JobInfo]:
    out: list[JobInfo] = []
    cursor: JobCursor | None = None
    while True:
        rows = client.list_jobs(limit=page, cursor=cursor, **filters)
        out.extend(rows)
        if len(rows) < page:
            return out
        cursor = rows[-1].cursor


def test_jobs_made_in_one_statement_list_in_enqueue_order(client: Client) -> None:
    # given, random ids: their order is not the enqueue order
    ids = client.enqueue_many([EnqueueRequest("many", {"i": i}, id=uuid4()) for i in range(MANY)])
    # settle some of them, so the listing interleaves live and archived rows
    claimed = client.claim("many", 150)
    for job in claimed[:100]:
        client.ack(job.id, job.claim_token)
    for job in claimed[100:120]:
        client.dead_letter(job.id, job.claim_token, "gave up")
    for job_id in ids[300:310]:
        assert client.cancel_job(job_id) == "cancelled"

    newest_first = list(reversed(ids))
    listed = [j.id for j in client.list_jobs("many", limit=MANY)]
    assert listed == newest_first
    # one statement: one creation time, and the ids alone would not give this order
    assert len({j.created_at for j in client.list_jobs("many", limit=MANY)}) == 1
    assert sorted(ids, reverse=True) != newest_first
    # stable across calls, and paging by cursor neither repeats nor skips a job
    for _ in range(3):
        assert [j.id for j in client.list_jobs("many", limit=MANY)] == newest_first
    for page in (1, 7, 37, 150, MANY):
        assert [j.id for j in _all_pages(client, page, queue="many")] == newest_first
    states = {j.id: j.state for j in client.list_jobs("many", limit=MANY)}
    assert sum(s == "done" for s in states.values()) == 100
    assert sum(s == "dead" for s in states.values()) == 20
    assert sum(s == "cancelled" for s in states.values()) == 10
    assert sum(s == "claimed" for s in states.values()) == 30
    # a filtered listing keeps the same order
    done = [j.id for j in _all_pages(client, 9, queue="many", state="done")]
    assert done == [i for i in newest_first if states[i] == "done"]


def test_states_and_get_job(client: Client, conn: Conn) -> None:
    pending = client.enqueue("s", {"task": "t", "kwargs": {}})
    scheduled = client.enqueue("s", {}, run_at=datetime.now(UTC) + timedelta(hours=1))
    claimed = client.enqueue("s", {"n": 3})
    [c] = client.claim("s", worker_id="node-a")
    assert c.id == pending
    done = pending
    client.ack(c.id, c.claim_token)
    [c2] = client.claim("s", worker_id="node-b")
    assert c2.id == claimed
    cancelled = client.enqueue("s", {})
    client.cancel_job(cancelled)
    dead = client.enqueue("s", {}, max_attempts=1)
    [c3] = client.claim("s")
    client.nack(c3.id, c3.claim_token, error={"type": "ValueError", "message": "boom"})
    live_pending = client.enqueue("s", {})

    expect = {done: "done", scheduled: "scheduled", claimed: "claimed", cancelled: "cancelled",
              dead: "dead", live_pending: "pending"}
    assert {j.id: j.state for j in client.list_jobs("s")} == expect
    for state in JOB_STATES:
        assert [j.id for j in client.list_jobs(state=state)] == [
            i for i, s in expect.items() if s == state]
    # "scheduled" is the database clock's call, as in queue_stats
    [stats] = client.queue_stats("s")
    assert (stats.pending, stats.scheduled, stats.claimed) == (1, 1, 1)
    set_clock(conn, datetime.now(UTC) + timedelta(hours=2))
    assert client.get_job(scheduled, conn=conn).state == "pending"
    set_clock(conn, None)

    got = client.get_job(claimed)
    assert (got.state, got.claimed_by, got.attempt, got.payload) == ("claimed", "node-b", 1,
                                                                     {"n": 3})
    assert got.lease_expires_at is not None
    assert got.claimed_at is not None
    assert got.finished_at is None
    assert got.result is None
    archived = client.get_job(done)
    assert (archived.state, archived.claimed_by, archived.task) == ("done", "node-a", "t")
    assert archived.finished_at is not None
    assert archived.result == {"op": "ack", "ids": []}
    assert client.get_job(dead).last_error["message"] == "boom"
    assert client.get_job(claimed).cursor == JobCursor(got.created_at, got.seq, got.id)


def test_no_claim_token_is_ever_returned(client: Client, conn: Conn) -> None:
    client.enqueue("t", {})
    [job] = client.claim("t")
    with conn.cursor(row_factory=dict_row) as cur:
        listed = cur.execute("select * from pgbatch.list_jobs()").fetchall()
        shown = cur.execute("select * from pgbatch.get_job(%s)", [job.id]).fetchall()
    assert len(listed) == len(shown) == 1
    for row in (*listed, *shown):
        assert not any("token" in column for column in row)
        assert str(job.claim_token) not in json.dumps(row, default=str)


def test_time_window(client: Client, conn: Conn) -> None:
    base = datetime(2030, 1, 1, tzinfo=UTC)
    made: dict[int, UUID] = {}
    for hour in range(5):
        set_clock(conn, base + timedelta(hours=hour))
        made[hour] = client.enqueue("w", {"h": hour}, conn=conn)
    set_clock(conn, None)
    window = client.list_jobs("w", created_after=base + timedelta(hours=1),
                              created_before=base + timedelta(hours=3))
    assert [j.id for j in window] == [made[2], made[1]]
    assert [j.id for j in client.list_jobs("w", created_after=base + timedelta(hours=4))] == [
        made[4]]


def test_unknown_job_and_bad_arguments_change_nothing(client: Client, conn: Conn) -> None:
    missing = UUID("01a20000-0000-7000-8000-000000000000")
    with pytest.raises(JobNotFound, match=f"job {missing} not found"):
        client.get_job(missing)
    with pytest.raises(InvalidArgument, match="invalid state: sleeping"):
        client.list_jobs(state="sleeping")
    for limit in (0, -1, 10_001):
        with pytest.raises(InvalidArgument, match="invalid limit"):
            client.list_jobs(limit=limit)
    with pytest.raises(InvalidQueueName):
        client.list_jobs("")
    with pytest.raises(InvalidQueueName, match="129 characters"):
        client.list_jobs("q" * 129)
    with raises_sqlstate("PB007", "invalid cursor"):
        conn.execute("select * from pgbatch.list_jobs(cursor_seq => 5)")
    with raises_sqlstate("PB007", "finite"):
        conn.execute("select * from pgbatch.list_jobs(created_after => 'infinity')")
    with raises_sqlstate("PB007", "finite"):
        conn.execute("select * from pgbatch.list_jobs(cursor_created_at => '-infinity',"
                     " cursor_seq => 1, cursor_id => gen_random_uuid())")
    with raises_sqlstate("PB007", "job_id"):
        conn.execute("select * from pgbatch.get_job(null)")
    assert client.list_jobs() == []


ARCHIVED = 30_000


def _archive_reads(conn: Conn) -> tuple[int, int]:
    row = conn.execute(
        "select coalesce(seq_tup_read, 0), coalesce(idx_tup_fetch, 0)"
        " from pg_stat_xact_user_tables where relid = 'pgbatch.job_archive'::regclass").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_a_deep_page_of_a_large_archive_reads_one_page_of_rows(conn: Conn) -> None:
    # a state factory: archived records as a superuser, many per creation time
    conn.execute(
        "insert into pgbatch.job_archive (id, queue, payload, priority, run_at, state, attempt,"
        " max_attempts, created_at, finished_at, seq)"
        " select gen_random_uuid(), 'q' || (i %% 3), '{}', 0, t, 'done', 1, 20, t, t, i"
        " from generate_series(1, %s) i,"
        " lateral (select timestamptz '2030-01-01Z' + (i / 50) * interval '1 ms') x(t)",
        [ARCHIVED])
    conn.execute("analyze pgbatch.job_archive")
    client = Client(None)  # type: ignore[arg-type] # every call runs on conn
    middle_id = scalar(conn, "select id from pgbatch.job_archive where seq = %s", [ARCHIVED // 2])
    middle = client.get_job(middle_id, conn=conn)
    with conn.transaction():
        seq0, idx0 = _archive_reads(conn)
        page = client.list_jobs(limit=20, cursor=middle.cursor, conn=conn)
        seq1, idx1 = _archive_reads(conn)
    assert [j.seq for j in page] == list(range(middle.seq - 1, middle.seq - 21, -1))
    assert seq1 - seq0 == 0
    assert idx1 - idx0 <= 25  # the page, and a few rows of lookahead
    # filtered by queue: still along the index, about three rows read per row kept
    with conn.transaction():
        seq0, idx0 = _archive_reads(conn)
        page = client.list_jobs("q1", limit=20, cursor=middle.cursor, conn=conn)
        seq1, idx1 = _archive_reads(conn)
    assert len(page) == 20
    assert {j.queue for j in page} == {"q1"}
    assert seq1 - seq0 == 0
    assert idx1 - idx0 <= 70


RARE_ARCHIVED = 200_000


def test_pages_of_dead_and_cancelled_jobs_read_one_page_of_rows_among_many_done_ones(
        conn: Conn) -> None:
    # one record in a hundred is dead (every third of those cancelled instead), in 3 queues;
    # large enough that reading along the listing index would show (100 rows per kept one)
    conn.execute(
        "insert into pgbatch.job_archive (id, queue, payload, priority, run_at, state, attempt,"
        " max_attempts, created_at, finished_at, seq)"
        " select gen_random_uuid(), 'q' || ((i / 7) %% 3), '{}', 0, t,"
        " case when i %% 100 <> 0 then 'done' when i %% 300 = 0 then 'cancelled' else 'dead' end,"
        " 1, 20, t, t, i"
        " from generate_series(1, %s) i,"
        " lateral (select timestamptz '2030-01-01Z' + (i / 50) * interval '1 ms') x(t)",
        [RARE_ARCHIVED])
    conn.execute("analyze pgbatch.job_archive")
    client = Client(None)  # type: ignore[arg-type] # every call runs on conn
    for queue in (None, "q1"):
        for state in ("dead", "cancelled"):
            want = [int(r[0]) for r in conn.execute(
                "select seq from pgbatch.job_archive where state = %s"
                " and (%s::text is null or queue = %s)"
                " order by created_at desc, seq desc, id desc", [state, queue, queue]).fetchall()]
            assert len(want) >= 150, (queue, state)
            # page by page, in order, neither repeating nor skipping a job
            listed: list[int] = []
            cursor: JobCursor | None = None
            while True:
                with conn.transaction():
                    seq0, idx0 = _archive_reads(conn)
                    page = client.list_jobs(queue, state=state, limit=50, cursor=cursor,
                                            conn=conn)
                    seq1, idx1 = _archive_reads(conn)
                assert {j.state for j in page} <= {state}
                assert queue is None or {j.queue for j in page} <= {queue}
                # along the rare states' indexes: about the page (at most the rare records
                # of the three queues), not the hundred done records around each kept one
                assert seq1 - seq0 == 0
                assert idx1 - idx0 <= 3 * 50 + 10, (queue, state, len(listed))
                listed.extend(j.seq for j in page)
                if len(page) < 50:
                    break
                cursor = page[-1].cursor
            assert listed == want
