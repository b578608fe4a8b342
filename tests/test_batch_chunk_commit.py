"""The chunk commit's cheap path (migration 0019_chunk_commit, docs/batch.md "What a
chunk commit costs"): commit_chunk extends the leases only when due (after a commit
a lease is never less than 90% of ``lease``, never more than ``lease``), its
successful commits are HOT updates of the work item, the execution, the step and
the context, and every refusal still changes nothing. The chunk statement of a
step run in the server (pgbatch/batch/pushdown.py) has one text and one set of
parameter types, so PostgreSQL keeps one generic plan, whatever the keys' values."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pgbatch.batch import SqlReader, TableWriter
from pgbatch.batch.items import ExecutionContext
from pgbatch.batch.pushdown import ServerChunk
from tests.batch_helpers import (
    WorkItem,
    assert_invariants,
    batch_state,
    claim_item,
    commit_chunk,
    execution,
    launch,
    register,
    start,
    start_step,
    steps,
)
from tests.helpers import db_now, job_row, raises_sqlstate, set_clock

Conn = psycopg.Connection[Any]
TTL = timedelta(seconds=100)
CHUNK_STEP = [{"name": "load", "kind": "chunk", "chunk_size": 3}]


def started(conn: Conn) -> tuple[int, WorkItem, int]:
    """A running execution of job ``j`` (one chunk step): its id, work item, step id."""
    register(conn, steps=CHUNK_STEP)
    exec_id = launch(conn, "j")
    item = claim_item(conn)
    assert start(conn, item)["status"] == "STARTED"
    return exec_id, item, int(start_step(conn, item)["step_execution_id"])


def commit(conn: Conn, item: WorkItem, step_id: int, seq: int, context: dict[str, Any],
           lease: timedelta) -> dict[str, Any]:
    """commit_chunk of one read item with ``lease``."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("select * from pgbatch.commit_chunk(%s, %s, %s, %s, %s, read_count => 1,"
                          " lease => %s)", [step_id, item.job_id, item.claim_token, seq,
                                            Jsonb(context), lease]).fetchone()
    assert row is not None
    return row


def leases(conn: Conn, item: WorkItem, exec_id: int) -> tuple[datetime, datetime]:
    """The work item's lease and the execution's."""
    job = job_row(conn, item.job_id)
    assert job is not None
    return job["lease_expires_at"], execution(conn, exec_id)["lease_expires_at"]


def hot_updates(conn: Conn) -> dict[str, tuple[int, int]]:
    """(updates, HOT updates) of this transaction per batch table."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "select relname, n_tup_upd, n_tup_hot_upd from pg_stat_xact_user_tables"
            " where schemaname = 'pgbatch' and relname = any(%s)",
            [["job", "job_execution", "step_execution", "step_execution_context"]]).fetchall()
    return {r["relname"]: (int(r["n_tup_upd"]), int(r["n_tup_hot_upd"])) for r in rows}


def test_the_lease_is_extended_when_due_and_stays_within_90_to_100_percent(conn: Conn) -> None:
    exec_id, item, step_id = started(conn)
    t0 = db_now(conn)
    set_clock(conn, t0)
    # the claim's lease is longer than TTL: the first commit sets both leases to now + TTL
    commit(conn, item, step_id, 0, {"n": 1}, TTL)
    assert leases(conn, item, exec_id) == (t0 + TTL, t0 + TTL)
    # 5% of the TTL later the lease is still over 90% of it: kept
    set_clock(conn, t0 + TTL * 0.05)
    commit(conn, item, step_id, 1, {"n": 2}, TTL)
    assert leases(conn, item, exec_id) == (t0 + TTL, t0 + TTL)
    # 11% later less than 90% is left: extended to now + TTL
    later = t0 + TTL * 0.11
    set_clock(conn, later)
    commit(conn, item, step_id, 2, {"n": 3}, TTL)
    assert leases(conn, item, exec_id) == (later + TTL, later + TTL)
    # a shorter lease than the one left: shortened to now + lease, as before
    commit(conn, item, step_id, 3, {"n": 4}, timedelta(seconds=10))
    assert leases(conn, item, exec_id) == (later + timedelta(seconds=10),) * 2
    set_clock(conn, None)
    assert steps(conn, exec_id)[0]["chunk_seq"] == 4
    assert_invariants(conn)


def test_a_commit_within_the_lease_is_hot_on_every_row_it_changes(conn: Conn) -> None:
    _, item, step_id = started(conn)
    commit_chunk(conn, item, step_id, 0, {"n": 1}, read_count=1)
    with conn.transaction():
        before = hot_updates(conn)
        row = commit_chunk(conn, item, step_id, 1, {"n": 2}, read_count=1)
        after = hot_updates(conn)
    assert (row["applied"], row["chunk_seq"]) == (True, 2)
    for table in ("job", "job_execution", "step_execution", "step_execution_context"):
        upd, hot = (a - b for a, b in zip(after[table], before.get(table, (0, 0)), strict=True))
        assert (upd, hot) == (1, 1), table
    assert_invariants(conn)


@pytest.mark.parametrize("wrong", ["token", "seq", "step_state", "execution"])
def test_a_refused_commit_changes_nothing(conn: Conn, wrong: str) -> None:
    exec_id, item, step_id = started(conn)
    commit_chunk(conn, item, step_id, 0, {"n": 1}, read_count=1)
    seq = 1
    code = "PB048"
    if wrong == "token":
        item = WorkItem(item.job_id, uuid4(), item.execution_id, item.step)
        code = "PB001"
    elif wrong == "seq":
        seq = 3
    elif wrong == "step_state":
        conn.execute("update pgbatch.step_execution set status = 'STOPPED' where id = %s",
                     [step_id])
    else:
        conn.execute("update pgbatch.job_execution set queue_job_id = gen_random_uuid()"
                     " where id = %s", [exec_id])
        code = "PB046"
    before = batch_state(conn)
    lease = job_row(conn, item.job_id)
    with raises_sqlstate(code):
        commit(conn, item, step_id, seq, {"n": 99}, timedelta(seconds=7))
    assert batch_state(conn) == before
    assert job_row(conn, item.job_id) == lease


def test_a_retried_commit_reads_back_and_changes_no_counter(conn: Conn) -> None:
    exec_id, item, step_id = started(conn)
    commit_chunk(conn, item, step_id, 0, {"n": 1}, read_count=4)
    conn.execute("select pgbatch.stop_execution(%s)", [exec_id])
    retry = commit_chunk(conn, item, step_id, 0, {"n": 1}, read_count=4)
    assert (retry["applied"], retry["chunk_seq"], retry["status"], retry["stop_requested"]) == (
        False, 1, "STOPPING", True)
    (st,) = steps(conn, exec_id)
    assert (st["chunk_seq"], st["read_count"], st["commit_count"]) == (1, 4, 1)


def _plans(conn: Conn, marker: str) -> tuple[int, int]:
    """(generic, custom) plans of this session's one prepared statement containing ``marker``."""
    rows = conn.execute("select generic_plans, custom_plans from pg_prepared_statements"
                        " where statement like %s", [f"%{marker}%"]).fetchall()
    assert len(rows) == 1, f"one prepared chunk statement expected: {rows}"
    return int(rows[0][0]), int(rows[0][1])


def test_the_chunk_statement_is_planned_once_whatever_the_keys(conn: Conn) -> None:
    # keys across the int2, int4 and int8 ranges: psycopg would send each as another type
    conn.execute("create table public.big (id bigint primary key, v text not null)")
    conn.execute("insert into public.big select i, 'v' || i from"
                 " (select generate_series(1, 20) union all select generate_series(32760, 32780)"
                 " union all select generate_series(2147483640, 2147483660)) g(i)")
    conn.execute("create table public.big_copy (id bigint primary key, v text not null)")
    exec_id, item, step_id = started(conn)
    reader = SqlReader("", "select id, v from public.big", "id", rows="tuple", name="big",
                       same_database=True)
    writer = TableWriter("public.big_copy", ["id", "v"])
    server = ServerChunk.plan(conn, reader, writer, 4)
    assert server is not None
    committed: ExecutionContext = {}
    seq = 0
    while True:
        query, params = server.statement(conn, committed,
                                         [step_id, item.job_id, item.claim_token, seq, TTL])
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(query, params).fetchone()
        assert row is not None
        done = ServerChunk.result(row)
        if done.read == 0:
            break
        assert done.commit is not None
        assert done.commit["applied"]
        committed, seq = done.context, int(done.commit["chunk_seq"])
    assert seq == 16  # 62 rows in chunks of 4
    assert conn.execute("select count(*) from public.big_copy").fetchone() == (62,)
    assert committed == {"big": {"after": [{"t": "int", "v": 2147483660}], "read": 62}}
    generic, custom = _plans(conn, "big_copy")
    # psycopg prepares it at its 5th run (the first chunk's text has no cursor):
    # 11 prepared runs, the first 5 planned for their values, then the generic plan
    assert custom <= 5, (generic, custom)
    assert generic == 11 - custom, (generic, custom)
    assert steps(conn, exec_id)[0]["read_count"] == 62
    assert_invariants(conn)
