"""A fake worker for the pause SQL tests: it drives the step executor's SQL
functions directly (claim, start_execution, start_step, commit_chunk,
park_execution) so that tests can park and resume executions quickly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.batch_helpers import WorkItem, claim_item, commit_chunk, register, start, start_step

Conn = psycopg.Connection[Any]
#: One chunk step (the fake worker writes its items into public.out).
ONE_STEP: list[dict[str, Any]] = [
    {"name": "load", "kind": "chunk", "reader": "r.Reader", "writer": "w.Writer", "chunk_size": 10},
]
OUT_DDL = "create table if not exists public.out (item_id int primary key)"


def setup(conn: Conn, steps: list[dict[str, Any]] | None = None, job: str = "j") -> str:
    """The out table and the job's definition; returns its fingerprint."""
    conn.execute(OUT_DDL)
    return register(conn, job, ONE_STEP if steps is None else steps)


def park(conn: Conn, item: WorkItem, reason: str | None = "check it",
         resume_at: datetime | None = None, source: str = "logic") -> dict[str, Any]:
    """park_execution for a claimed item (acked by the function)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "select * from pgbatch.park_execution(%s, %s, %s, reason => %s, resume_at => %s,"
            " source => %s)",
            [item.execution_id, item.job_id, item.claim_token, reason, resume_at, source],
        ).fetchone()
    assert row is not None
    return row


def run_and_park(conn: Conn, items: list[int], reason: str = "check it",
                 resume_at: datetime | None = None) -> WorkItem:
    """Claim the one pending work item, start it, commit one chunk that writes ``items``
    into public.out and park, in the chunk's transaction (ctx.request_pause())."""
    item = claim_item(conn)
    assert start(conn, item)["status"] == "STARTED"
    s = start_step(conn, item)
    assert s["action"] == "run", s
    with conn.transaction():
        conn.cursor().executemany("insert into public.out (item_id) values (%s)",
                                  [[i] for i in items])
        done = int(s["context"].get("done", 0)) + len(items)
        commit_chunk(conn, item, s["step_execution_id"], int(s["chunk_seq"]), {"done": done},
                     read_count=len(items), write_count=len(items))
        assert park(conn, item, reason, resume_at)["status"] == "PAUSED"
    return item


def resume(conn: Conn, execution_id: int, request_id: str | None = None,
           allow_definition_change: bool = False) -> tuple[bool, str]:
    """resume_execution → (applied, status)."""
    row = conn.execute("select * from pgbatch.resume_execution(%s, %s, %s)",
                       [execution_id, request_id, allow_definition_change]).fetchone()
    assert row is not None
    return bool(row[0]), str(row[1])


def pause(conn: Conn, execution_id: int, request_id: str | None = None,
          resume_at: datetime | None = None) -> tuple[bool, str]:
    """pause_execution → (applied, status)."""
    row = conn.execute("select * from pgbatch.pause_execution(%s, %s, resume_at => %s)",
                       [execution_id, request_id, resume_at]).fetchone()
    assert row is not None
    return bool(row[0]), str(row[1])
