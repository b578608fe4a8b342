"""Helpers of the approval-gate tests: reaching a gate through the SQL API,
deciding it, and the gate invariants checked after every gate test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.batch_helpers import (
    WorkItem,
    assert_invariants,
    claim_item,
    next_step_name,
    register,
    start,
    start_step,
)
from tests.conftest import TestDatabase

Conn = psycopg.Connection[Any]
Row = dict[str, Any]

#: A job with a gate between two tasklets.
GATED: list[dict[str, Any]] = [
    {"name": "prepare", "kind": "tasklet"},
    {"name": "check", "kind": "gate"},
    {"name": "publish", "kind": "tasklet"},
]


def register_gated(conn: Conn, job_name: str = "g",
                   steps: list[dict[str, Any]] | None = None) -> str:
    """Register a job with a gate (default :data:`GATED`)."""
    return register(conn, job_name, GATED if steps is None else steps)


def run_tasklet(conn: Conn, item: WorkItem, step: str) -> Row:
    """start_step + end_step COMPLETED of a tasklet step; end_step's row."""
    s = start_step(conn, item, step)
    assert s["action"] == "run", s
    return end_step_completed(conn, item, int(s["step_execution_id"]))


def await_gate(conn: Conn, item: WorkItem, gate: str = "check",
               timeout: timedelta | None = None, on_timeout: str = "reject") -> Row:
    """await_gate for a claimed work item (its gate step already started)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("select * from pgbatch.await_gate(%s, %s, %s, %s, timeout => %s,"
                          " on_timeout => %s)",
                          [item.execution_id, gate, item.job_id, item.claim_token, timeout,
                           on_timeout]).fetchone()
    assert row is not None
    return row


def reach_gate(conn: Conn, execution_id: int, timeout: timedelta | None = None,
               on_timeout: str = "reject", gate: str = "check") -> Row:
    """Run a STARTING execution of :data:`GATED` (or any job whose steps before
    ``gate`` are tasklets) through the SQL API, as the executor does (skipped
    steps go on in the same claim), until it waits at ``gate``."""
    while True:
        item = claim_item(conn)
        assert item.execution_id == execution_id
        assert start(conn, item)["status"] == "STARTED"
        step: str | None = item.step
        while step is not None:
            s = start_step(conn, item, step)
            if s["action"] == "skip":
                step = next_step_name(conn, execution_id, step)
                continue
            assert s["action"] == "run", s
            if step == gate:
                return await_gate(conn, item, gate, timeout, on_timeout)
            end = end_step_completed(conn, item, int(s["step_execution_id"]))
            assert end["job_status"] == "STARTING", end
            break


def end_step_completed(conn: Conn, item: WorkItem, step_execution_id: int) -> Row:
    """end_step COMPLETED; its row."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("select * from pgbatch.end_step(%s, %s, %s, 'COMPLETED')",
                          [step_execution_id, item.job_id, item.claim_token]).fetchone()
    assert row is not None
    return row


def decide(conn: Conn, action: str, execution_id: int, gate: str = "check",
           actor: str | None = None, comment: str | None = None,
           request_id: str | None = None) -> tuple[bool, str, str]:
    """approve_gate / reject_gate; (applied, status, execution_status)."""
    row = conn.execute(f"select * from pgbatch.{action}_gate(%s, %s, %s, %s, %s)",
                       [execution_id, gate, actor, comment, request_id]).fetchone()
    assert row is not None
    return bool(row[0]), str(row[1]), str(row[2])


def approval(conn: Conn, execution_id: int, gate: str = "check") -> Row:
    """The approval row of ``gate`` in the execution."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("select * from pgbatch.approval where job_execution_id = %s"
                          " and gate_name = %s", [execution_id, gate]).fetchone()
    assert row is not None, f"no approval for {gate} of execution {execution_id}"
    return row


GATE_VIOLATIONS = """
select format('execution %s AWAITING_APPROVAL has %s PENDING approvals', x.id,
              (select count(*) from pgbatch.approval a
                where a.job_execution_id = x.id and a.status = 'PENDING'))
  from pgbatch.job_execution x
 where x.status = 'AWAITING_APPROVAL'
   and (select count(*) from pgbatch.approval a
         where a.job_execution_id = x.id and a.status = 'PENDING'
           and a.gate_name = x.current_step) <> 1
union all
select format('execution %s AWAITING_APPROVAL holds a lease or a work item', x.id)
  from pgbatch.job_execution x
 where x.status = 'AWAITING_APPROVAL'
   and (x.lease_owner is not null or x.lease_expires_at is not null
        or exists (select 1 from pgbatch.job j where (j.payload ->> 'execution_id')::bigint = x.id))
union all
select format('approval %s is PENDING but execution %s is %s', a.id, x.id, x.status)
  from pgbatch.approval a join pgbatch.job_execution x on x.id = a.job_execution_id
 where a.status = 'PENDING' and x.status <> 'AWAITING_APPROVAL'
union all
select format('approval %s is %s but its gate step is %s/%s', a.id, a.status, s.status, s.exit_code)
  from pgbatch.approval a
  join pgbatch.step_execution s
    on s.job_execution_id = a.job_execution_id and s.step_name = a.gate_name
 where (a.status = 'APPROVED' and (s.status, s.exit_code) <> ('COMPLETED', 'APPROVED'))
    or (a.status = 'REJECTED' and (s.status, s.exit_code) <> ('FAILED', 'APPROVAL_REJECTED'))
    or (a.status = 'PENDING' and s.status <> 'STARTED')
union all
select format('approval %s is %s without decided_at', a.id, a.status)
  from pgbatch.approval a
 where a.status <> 'PENDING' and a.decided_at is null
union all
select format('approval %s: %s decision events', a.id, count(e.id))
  from pgbatch.approval a
  left join pgbatch.execution_event e
    on e.job_execution_id = a.job_execution_id and e.kind in ('approve', 'reject')
   and (e.detail ->> 'approval_id')::bigint = a.id
 group by a.id, a.status
having count(e.id) <> case when a.status in ('APPROVED', 'REJECTED') then 1 else 0 end
"""


def gate_violations(conn: Conn) -> list[str]:
    """The gate invariants that do not hold (none when all do): an AWAITING_APPROVAL
    execution has exactly one PENDING approval, for its current step, and no
    lease or work item; a PENDING approval belongs to an AWAITING_APPROVAL
    execution; a decided approval matches its gate step; every decision wrote
    exactly one event."""
    return [str(r[0]) for r in conn.execute(GATE_VIOLATIONS).fetchall()]


@pytest.fixture
def gates_checked(db: TestDatabase) -> Iterator[None]:
    """After the test, I1-I7 and the gate invariants hold on its database."""
    yield
    with db.connect() as c:
        assert_invariants(c)
        assert gate_violations(c) == []
