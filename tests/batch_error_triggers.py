"""A real way to make the batch SQL functions raise each of their error codes
(merged into tests/test_errors_table.py's TRIGGERS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from tests.batch_helpers import claim_item, launch, register, start, start_step

Conn = psycopg.Connection[Any]


def _launched(conn: Conn) -> int:
    register(conn)
    return launch(conn)


def _completed_instance(conn: Conn) -> None:
    register(conn, steps=[{"name": "only", "kind": "tasklet"}])
    launch(conn)
    item = claim_item(conn)
    start(conn, item)
    step = start_step(conn, item)["step_execution_id"]
    conn.execute(
        "select pgbatch.end_step(%s, %s, %s, 'COMPLETED')", [step, item.job_id, item.claim_token]
    )
    launch(conn)


def _abandoned_instance(conn: Conn) -> None:
    exec_id = _launched(conn)
    conn.execute("select pgbatch.stop_execution(%s)", [exec_id])
    conn.execute("select pgbatch.abandon_execution(%s)", [exec_id])
    conn.execute("select pgbatch.restart_execution(%s)", [exec_id])


def _fenced_out(conn: Conn) -> None:
    exec_id = _launched(conn)
    item = claim_item(conn)
    conn.execute("select pgbatch.stop_execution(%s)", [exec_id])
    start_step(conn, item)


def _invalid_execution_state(conn: Conn) -> None:
    _launched(conn)
    item = claim_item(conn)
    start(conn, item)
    start_step(conn, item, "no-such-step")


def _definition_changed(conn: Conn) -> None:
    conn.execute("select pgbatch.register_job('v', '{\"version\": 1, \"steps\": [{\"name\": \"a\","
                 " \"kind\": \"tasklet\"}]}')")
    conn.execute("select pgbatch.register_job('v', '{\"version\": 1, \"steps\": [{\"name\": \"b\","
                 " \"kind\": \"tasklet\"}]}')")


BATCH_TRIGGERS: dict[str, Callable[[Conn], object]] = {
    "PB040": lambda c: c.execute("select pgbatch.job_key('[]')"),
    "PB041": lambda c: c.execute("select pgbatch.register_job('j', '{}')"),
    "PB042": lambda c: c.execute("select pgbatch.launch_job('nobody')"),
    "PB043": _completed_instance,
    "PB044": lambda c: (_launched(c), launch(c)),
    "PB045": _abandoned_instance,
    "PB046": _fenced_out,
    "PB047": lambda c: c.execute("select pgbatch.restart_execution(0)"),
    "PB048": _invalid_execution_state,
    "PB049": _definition_changed,
    "PB050": lambda c: c.execute("select pgbatch.pause_execution(%s, resume_at => '-infinity')",
                                 [_launched(c)]),
}


def _gated(conn: Conn) -> int:
    register(conn, "g", steps=[{"name": "check", "kind": "gate"},
                               {"name": "after", "kind": "tasklet"}])
    return launch(conn, "g")


BATCH_TRIGGERS.update({
    "PB055": lambda c: c.execute("select pgbatch.approve_gate(%s, 'nope')", [_gated(c)]),
    "PB056": lambda c: c.execute("select pgbatch.approve_gate(%s, 'check')", [_gated(c)]),
})
