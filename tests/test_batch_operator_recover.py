# ruff: noqa: N802
"""JobOperator.recover and JobOperator.cancel against the real database (T20,
H11, the administrative cancel of BATCH.md §3/§5).

They wrap ``pgbatch.recover_execution`` and ``pgbatch.cancel_execution``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pgbatch import JobExecutionNotFound
from pgbatch.batch import JobOperator
from tests.batch_helpers import (
    claim_item,
    events,
    invariants_checked,  # noqa: F401 - the fixture of pytestmark
    register,
    run_to_end,
    start,
)
from tests.conftest import TestDatabase
from tests.helpers import expire_lease

#: I1-I7 hold after every test (tests/batch_helpers.py).
pytestmark = pytest.mark.usefixtures("invariants_checked")

Conn = psycopg.Connection[Any]

TERMINAL = ("COMPLETED", "FAILED", "STOPPED", "ABANDONED")


@pytest.fixture
def op(db: TestDatabase) -> Iterator[JobOperator]:
    operator = JobOperator.connect(db.dsn, max_size=2)
    try:
        yield operator
    finally:
        operator.close()


@pytest.fixture
def job(conn: Conn) -> str:
    register(conn)
    return "j"


def make_unknown(conn: Conn, execution_id: int) -> None:
    """Put a running execution in UNKNOWN, as a worker does after an indeterminate write."""
    conn.execute("update pgbatch.job_execution set status = 'UNKNOWN', exit_code = 'UNKNOWN',"
                 " lease_expires_at = null where id = %s", [execution_id])


def test_H11_recover_an_unknown_execution_then_restart(op: JobOperator, conn: Conn,
                                                       job: str) -> None:
    x = op.launch(job)
    assert start(conn, claim_item(conn))["status"] == "STARTED"
    make_unknown(conn, x)
    result = op.recover(x, request_id="rec-1")
    assert (result.action, result.applied, result.status) == ("recover", True, "FAILED")
    assert op.execution(x).status == "FAILED"
    n_events = len(events(conn, x))
    assert op.recover(x, request_id="rec-1") == result  # a retry: the first result, no event
    assert len(events(conn, x)) == n_events
    y = op.restart(x)
    assert op.execution(y).status == "STARTING"


def test_recover_a_running_execution_whose_lease_expired(op: JobOperator, conn: Conn,
                                                         job: str) -> None:
    x = op.launch(job)
    item = claim_item(conn)
    assert start(conn, item)["status"] == "STARTED"
    assert expire_lease(conn, item.job_id) == 1
    result = op.recover(x)
    assert (result.applied, result.status) == (True, "FAILED")


def test_recover_and_cancel_of_a_completed_execution_lose(op: JobOperator, conn: Conn,
                                                          job: str) -> None:
    x = op.launch(job)
    assert run_to_end(conn, x) == "COMPLETED"
    for call in (op.recover, op.cancel):
        result = call(x)
        assert (result.applied, result.status) == (False, "COMPLETED")


def test_cancel_ends_a_waiting_execution_as_cancelled(op: JobOperator, conn: Conn,
                                                      job: str) -> None:
    x = op.launch(job)
    result = op.cancel(x, request_id="c-1")
    assert result.applied
    assert result.status in TERMINAL
    detail = op.execution(x)
    assert detail.end_time is not None
    assert "CANCELLED" in (detail.status, detail.exit_code)
    assert op.cancel(x, request_id="c-1") == result


def test_recover_and_cancel_of_an_unknown_id(op: JobOperator) -> None:
    for call in (op.recover, op.cancel):
        with pytest.raises(JobExecutionNotFound):
            call(987654)
