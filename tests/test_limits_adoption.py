"""The limits of pgbatch/_limits.py applied where Python meets them first.

Task options and maintenance retention ages out of range fail when they are
declared; a huge error or dead-letter reason is cut to fit before the worker
records it, so recording it never fails (a real worker run).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from pgbatch import App, InvalidArgument, InvalidQueueName, TaskOptions, Worker, _limits
from pgbatch._types import ClaimedJob
from pgbatch.cli.common import MAX_QUEUE_NAME
from pgbatch.worker import Call, DeadLetter, JobContext
from pgbatch.worker.error_bounds import bounded_error, bounded_reason, cut_text
from pgbatch.worker.maintenance import MaintenanceConfig
from tests.conftest import TestDatabase
from tests.helpers import archive_row, job_row, scalar
from tests.worker_harness import LoopThread, app_on, wait_until

Conn = psycopg.Connection[Any]

HUGE = 4 * _limits.MAX_ERROR_BYTES


# -- one source ---------------------------------------------------------------------------

def test_python_defaults_read_the_one_source() -> None:
    app = App("postgresql://unused")

    @app.task
    def plain() -> None:
        return None

    assert plain.options.max_attempts == _limits.DEFAULT_MAX_ATTEMPTS
    assert plain.options.lease == _limits.DEFAULT_LEASE
    assert plain.request().max_attempts == _limits.DEFAULT_MAX_ATTEMPTS
    assert MAX_QUEUE_NAME == _limits.MAX_QUEUE_NAME_LENGTH


def test_the_default_max_attempts_of_python_equals_that_of_sql(conn: Conn) -> None:
    assert scalar(conn, "select (pgbatch.limits() ->> 'default_max_attempts')::int") == \
        App("postgresql://unused").task(lambda: None, name="t").options.max_attempts


@pytest.mark.parametrize("call", ["claim", "renew_lease", "fence_claim"])
def test_sql_functions_default_to_the_default_lease(conn: Conn, call: str) -> None:
    scalar(conn, "select pgbatch.enqueue('lease-q')")
    with conn.transaction():
        job_id, token = conn.execute(
            "select id, claim_token from pgbatch.claim('lease-q', lease => '5 minutes')"
            if call != "claim" else
            "select id, claim_token from pgbatch.claim('lease-q')").fetchone() or (None, None)
        if call == "renew_lease":
            conn.execute("select pgbatch.renew_lease(%s, %s)", [job_id, token])
        elif call == "fence_claim":
            conn.execute("select * from pgbatch.fence_claim(%s, %s)", [job_id, token])
        lease = scalar(conn, "select lease_expires_at - pgbatch.now() from pgbatch.job")
    assert lease == _limits.DEFAULT_LEASE


# -- task options at declaration ------------------------------------------------------------

BAD_OPTIONS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"lease": _limits.MIN_LEASE - timedelta(milliseconds=1)}, InvalidArgument, "invalid lease"),
    ({"lease": 0.0}, InvalidArgument, "invalid lease"),
    ({"lease": _limits.MAX_LEASE + timedelta(seconds=1)}, InvalidArgument, "invalid lease"),
    ({"max_attempts": 0}, InvalidArgument, "invalid max_attempts"),
    ({"max_attempts": 2**31}, InvalidArgument, "invalid max_attempts"),
    ({"priority": 2**31}, InvalidArgument, "invalid priority"),
    ({"priority": -(2**31) - 1}, InvalidArgument, "invalid priority"),
    ({"timeout": 0.0}, InvalidArgument, "invalid timeout"),
    ({"timeout": float("nan")}, InvalidArgument, "invalid timeout"),
    ({"backoff_base": -1.0}, InvalidArgument, "invalid backoff_base"),
    ({"backoff_cap": _limits.MAX_RUN_AT_OFFSET + timedelta(days=1)}, InvalidArgument,
     "invalid backoff_cap"),
    ({"queue": "q" * (_limits.MAX_QUEUE_NAME_LENGTH + 1)}, InvalidQueueName, "invalid queue name"),
    ({"queue": "   "}, InvalidQueueName, "invalid queue name"),
]


@pytest.mark.parametrize(("options", "error", "match"), BAD_OPTIONS,
                         ids=[next(iter(o)) + "-" + str(i) for i, (o, _, _) in
                              enumerate(BAD_OPTIONS)])
def test_a_task_with_options_out_of_range_fails_when_declared(
        options: dict[str, Any], error: type[Exception], match: str) -> None:
    app = App("postgresql://unused")

    def task() -> None:
        return None

    with pytest.raises(error, match=match):
        app.task(task, **options)
    assert app.tasks == {}


def test_task_options_made_directly_are_checked_too() -> None:
    with pytest.raises(InvalidArgument, match="invalid lease"):
        TaskOptions(lease=timedelta(days=2))


def test_options_at_the_limits_are_accepted() -> None:
    app = App("postgresql://unused")
    low = app.task(lambda: None, name="low", lease=_limits.MIN_LEASE, max_attempts=1,
                   priority=-(2**31), backoff_base=0.0, queue="q" * _limits.MAX_QUEUE_NAME_LENGTH)
    high = app.task(lambda: None, name="high", lease=_limits.MAX_LEASE, max_attempts=2**31 - 1,
                    priority=2**31 - 1, backoff_cap=_limits.MAX_RUN_AT_OFFSET)
    assert (low.options.lease, high.options.lease) == (_limits.MIN_LEASE, _limits.MAX_LEASE)


# -- maintenance retention ------------------------------------------------------------------

@pytest.mark.parametrize("field", ["retention_done", "retention_dead"])
def test_a_retention_over_the_maximum_fails_at_construction(field: str) -> None:
    def config(age: timedelta) -> MaintenanceConfig:
        if field == "retention_done":
            return MaintenanceConfig(retention_done=age)
        return MaintenanceConfig(retention_dead=age)

    with pytest.raises(InvalidArgument, match=f"invalid {field}"):
        config(_limits.MAX_RETENTION + timedelta(days=1))
    with pytest.raises(InvalidArgument, match=f"invalid {field}"):
        config(timedelta(seconds=-1))
    assert getattr(config(_limits.MAX_RETENTION), field) == _limits.MAX_RETENTION


# -- cutting errors and reasons ---------------------------------------------------------------

def test_cut_text_keeps_head_and_tail_and_says_how_much_was_cut() -> None:
    text = "HEAD" + "é" * 50_000 + "TAIL"
    cut = cut_text(text, 1000)
    assert len(cut.encode()) <= 1000
    assert cut.startswith("HEAD")
    assert cut.endswith("TAIL")
    removed = len(text.encode()) - len(cut.encode()) + len(cut.split("\n")[1]) + 2
    assert f"[... {removed} bytes cut ...]" in cut
    assert cut_text("short", 1000) == "short"


def test_bounded_error_leaves_small_errors_alone_and_cuts_big_ones() -> None:
    small = {"type": "E", "message": "m", "traceback": "t"}
    assert bounded_error(small) == small
    big = bounded_error({"type": "E", "message": "m" * HUGE, "traceback": "t" * HUGE})
    assert isinstance(big, dict)
    assert big["type"] == "E"
    assert len(json.dumps(big).encode()) <= _limits.MAX_ERROR_BYTES
    assert "bytes cut" in big["message"]
    assert "bytes cut" in big["traceback"]
    scalar_error = bounded_error("x" * HUGE)
    assert len(json.dumps(scalar_error).encode()) <= _limits.MAX_ERROR_BYTES
    reason = bounded_reason("r" * HUGE)
    assert reason is not None
    assert len(reason.encode()) <= _limits.MAX_ERROR_BYTES
    assert bounded_reason(None) is None


def _stored_error_bytes(conn: Conn, table: str, job_id: UUID) -> int:
    # re-cast, so the size is that of the uncompressed value nack measures, not of the
    # (possibly compressed) stored copy
    size = scalar(conn, f"select pg_column_size(last_error::text::jsonb) from pgbatch.{table}"
                  " where id = %s", [job_id])
    assert isinstance(size, int)
    return size


def test_a_huge_traceback_is_cut_and_the_job_retried_then_dead_lettered(
        db: TestDatabase) -> None:
    conn = db.connect()
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="huge-tb", max_attempts=2, backoff_base=0.0, backoff_cap=0.0)
        def explode() -> None:
            raise RuntimeError("start of the message " + "x" * HUGE + " end of the message")

        lt.start(Worker(app, ["huge-tb"], concurrency=1, poll_interval=30))
        jid = explode.defer()
        wait_until(lambda: archive_row(conn, jid), 20, "the job to be dead after two attempts")

    archived = archive_row(conn, jid)
    assert archived is not None
    assert (archived["state"], archived["attempt"]) == ("dead", 2)
    error = archived["last_error"]
    assert error["type"] == "RuntimeError"
    assert error["message"].startswith("start of the message")
    assert error["message"].endswith(" end of the message")
    assert "bytes cut" in error["message"]
    assert error["traceback"].startswith("Traceback (most recent call last)")
    assert error["traceback"].rstrip().endswith(" end of the message")  # the tail is kept
    assert _stored_error_bytes(conn, "job_archive", jid) <= _limits.MAX_ERROR_BYTES
    assert job_row(conn, jid) is None


def test_a_huge_first_failure_leaves_the_job_pending_for_its_retry(db: TestDatabase) -> None:
    conn = db.connect()
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="huge-retry", max_attempts=5, backoff_base=3600.0, backoff_cap=3600.0)
        def explode() -> None:
            raise ValueError("v" * HUGE)

        lt.start(Worker(app, ["huge-retry"], concurrency=1, poll_interval=30))
        jid = explode.defer()

        def retried() -> bool:
            row = job_row(conn, jid)
            return row is not None and row["state"] == "pending" and row["attempt"] == 1
        wait_until(retried, 20, "the failed attempt to be nacked")

    assert _stored_error_bytes(conn, "job", jid) <= _limits.MAX_ERROR_BYTES
    row = job_row(conn, jid)
    assert row is not None
    assert row["last_error"]["type"] == "ValueError"


class DeadLetterExecutor:
    """An executor of kind ``"doomed"`` whose every job dead-letters with a huge reason."""

    def queues(self) -> Sequence[str]:
        return ["doomed"]

    def claim_lease(self, queue: str) -> timedelta | None:
        return None

    def resolve(self, job: ClaimedJob) -> Call:
        def run(ctx: JobContext) -> DeadLetter:
            return DeadLetter("why: " + "r" * HUGE + " :end")
        return Call(name="doomed", fn=run, is_async=False)


def test_a_huge_dead_letter_reason_is_cut_and_the_job_is_dead(db: TestDatabase) -> None:
    conn = db.connect()
    with app_on(db.dsn) as app, LoopThread() as lt:
        app.register_executor("doomed", DeadLetterExecutor())
        lt.start(Worker(app, ["doomed"], concurrency=1, poll_interval=30))
        jid = app.client.enqueue("doomed", {"kind": "doomed"})
        wait_until(lambda: archive_row(conn, jid), 20, "the job to be dead-lettered")

    archived = archive_row(conn, jid)
    assert archived is not None
    assert (archived["state"], archived["attempt"]) == ("dead", 1)
    message = archived["last_error"]["message"]
    assert message.startswith("why: ")
    assert message.endswith(" :end")
    assert len(message.encode()) <= _limits.MAX_ERROR_BYTES
