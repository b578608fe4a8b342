"""Job results and the error history, end to end through a real worker.

A task's return value is kept with its done job (SQL ``get_job(...).result ->
'return_value'``, ``App.get_job(...).return_value``, ``pgbatch jobs show``);
a task returning None settles on the plain ``ack_ids`` path and keeps none;
a value over ``max_result_bytes`` or not JSON ends the job dead at once. A
failing job keeps its earlier attempts' errors under ``last_error ->
'history'``, newest first, at most ``error_history_length``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest

import pgbatch
from pgbatch import Worker, _limits
from pgbatch import cli as pgbatch_cli
from tests.conftest import TestDatabase
from tests.helpers import archive_row, raises_sqlstate
from tests.worker_harness import LoopThread, app_on, wait_until

Row = dict[str, Any]


def _archived(conn: Any, jid: UUID) -> Row:
    row = wait_until(lambda: archive_row(conn, jid), 15, "the job to be archived")
    assert row is not None
    return row


def _read(db: TestDatabase, job_id: UUID) -> pgbatch.JobInfo:
    """``App.get_job`` as the database owner (reading jobs is an operator's call)."""
    app = pgbatch.App(db.dsn, pool_size=1)
    try:
        return app.get_job(job_id)
    finally:
        app.close()


@pytest.fixture
def tasks(db: TestDatabase) -> Iterator[dict[str, Any]]:
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="res", name="res.adds")
        def adds(a: int, b: int) -> dict[str, int]:
            return {"sum": a + b}

        @app.task(queue="res", name="res.async_list")
        async def async_list(n: int) -> list[int]:
            return list(range(n))

        @app.task(queue="res", name="res.nothing")
        def nothing() -> None:
            return None

        @app.task(queue="res", name="res.too_big", max_attempts=5)
        def too_big() -> str:
            return "x" * (_limits.MAX_RESULT_BYTES + 1)

        @app.task(queue="res", name="res.not_json", max_attempts=5)
        def not_json() -> object:
            return object()

        @app.task(queue="res", name="res.in_tx", transactional=True, pass_context=True)
        def in_tx(ctx: Any) -> str:
            return "committed"

        @app.task(queue="res", name="res.fails", max_attempts=3, backoff_base=0.001,
                  backoff_cap=0.001)
        def fails() -> None:
            raise ValueError("attempt failed")

        lt.start(Worker(app, ["res"], concurrency=2, poll_interval=0.2))
        yield {"app": app, "adds": adds, "async_list": async_list, "nothing": nothing,
               "too_big": too_big, "not_json": not_json, "in_tx": in_tx, "fails": fails}


def test_return_value_is_kept_and_readable_everywhere(
        db: TestDatabase, tasks: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    conn = db.connect()
    jid = tasks["adds"].defer(a=2, b=3)
    row = _archived(conn, jid)
    assert row["state"] == "done"
    assert row["result"]["return_value"] == {"sum": 5}
    sql = conn.execute("select (pgbatch.get_job(%s)).result -> 'return_value'", (jid,)).fetchone()
    assert sql is not None
    assert sql[0] == {"sum": 5}
    listed = conn.execute("select result -> 'return_value' from pgbatch.list_jobs(queue => 'res')"
                          " where id = %s", (jid,)).fetchone()
    assert listed is not None
    assert listed[0] == {"sum": 5}
    assert _read(db, jid).return_value == {"sum": 5}

    capsys.readouterr()
    assert pgbatch_cli.main(["--dsn", db.dsn, "jobs", "show", str(jid)]) == 0
    out = capsys.readouterr().out
    assert 'return_value' in out
    assert '{"sum": 5}' in out
    assert pgbatch_cli.main(["--dsn", db.dsn, "jobs", "show", str(jid), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["return_value"] == {"sum": 5}


def test_async_and_transactional_tasks_keep_theirs(db: TestDatabase,
                                                   tasks: dict[str, Any]) -> None:
    conn = db.connect()
    assert _archived(conn, tasks["async_list"].defer(n=3))["result"]["return_value"] == [0, 1, 2]
    assert _archived(conn, tasks["in_tx"].defer())["result"]["return_value"] == "committed"


def test_none_keeps_nothing(db: TestDatabase, tasks: dict[str, Any]) -> None:
    conn = db.connect()
    jid = tasks["nothing"].defer()
    row = _archived(conn, jid)
    assert row["state"] == "done"
    assert "return_value" not in (row["result"] or {})
    assert _read(db, jid).return_value is None


@pytest.mark.parametrize(("name", "why"), [("too_big", "max_result_bytes"),
                                           ("not_json", "not JSON")])
def test_a_value_that_cannot_be_kept_is_dead_at_once(db: TestDatabase, tasks: dict[str, Any],
                                                     name: str, why: str) -> None:
    conn = db.connect()
    row = _archived(conn, tasks[name].defer())
    assert (row["state"], row["attempt"]) == ("dead", 1)
    assert row["last_error"]["type"] == "DeadLettered"
    assert row["last_error"]["message"].startswith("ResultRefused: ")
    assert why in row["last_error"]["message"]


def test_ack_refuses_a_return_value_over_the_limit(db: TestDatabase) -> None:
    conn = db.connect()
    assert conn.execute("select (pgbatch.limits() ->> 'max_result_bytes')::int").fetchone() == (
        _limits.MAX_RESULT_BYTES,)
    jid = conn.execute("select pgbatch.enqueue('resq', '{}')").fetchone()[0]  # type: ignore[index]
    claimed = conn.execute("select id, claim_token from pgbatch.claim('resq', 1)").fetchone()
    assert claimed is not None
    assert claimed[0] == jid
    big = json.dumps({"return_value": "y" * (_limits.MAX_RESULT_BYTES + 100)})
    with raises_sqlstate("PB012", "return value too large"):
        conn.execute("select pgbatch.ack(%s, %s, %s::jsonb)", (jid, claimed[1], big))
    conn.rollback()
    live = conn.execute("select state from pgbatch.job where id = %s", (jid,)).fetchone()
    assert live == ("claimed",)  # nothing changed
    conn.execute("select pgbatch.ack(%s, %s, %s::jsonb)",
                 (jid, claimed[1], json.dumps({"return_value": 42})))
    conn.commit()
    assert archive_row(conn, jid)["result"]["return_value"] == 42  # type: ignore[index]


def test_error_history_is_bounded_newest_first(db: TestDatabase) -> None:
    conn = db.connect()
    n = _limits.ERROR_HISTORY_LENGTH
    assert conn.execute("select (pgbatch.limits() ->> 'error_history_length')::int").fetchone() == (
        n,)
    jid = conn.execute("select pgbatch.enqueue('hist', '{}', max_attempts => %s)",
                       (n + 5,)).fetchone()[0]  # type: ignore[index]
    for i in range(1, n + 4):
        conn.execute("update pgbatch.job set run_at = pgbatch.now() where id = %s", (jid,))
        claimed = conn.execute("select claim_token from pgbatch.claim('hist', 1)").fetchone()
        assert claimed is not None
        error = {"type": "E", "message": f"failure {i}", "traceback": f"tb {i}"}
        conn.execute("select pgbatch.nack(%s, %s, %s::jsonb)",
                     (jid, claimed[0], json.dumps(error)))
        conn.commit()
    last = conn.execute("select last_error from pgbatch.job where id = %s", (jid,)).fetchone()
    assert last is not None
    assert last[0]["message"] == f"failure {n + 3}"
    assert last[0]["traceback"] == f"tb {n + 3}"
    history = last[0]["history"]
    assert [h["message"] for h in history] == [f"failure {i}" for i in range(n + 2, 2, -1)]
    assert all("traceback" not in h and "history" not in h for h in history)
    token = conn.execute("select claim_token from pgbatch.claim('hist', 1)").fetchone()
    assert token is None  # in its backoff: dead_letter it through a fresh claim instead
    conn.execute("update pgbatch.job set run_at = pgbatch.now() where id = %s", (jid,))
    token = conn.execute("select claim_token from pgbatch.claim('hist', 1)").fetchone()
    assert token is not None
    conn.execute("select pgbatch.dead_letter(%s, %s, 'enough')", (jid, token[0]))
    conn.commit()
    dead = archive_row(conn, jid)
    assert dead is not None
    assert dead["last_error"]["message"] == "enough"
    assert dead["last_error"]["history"][0]["message"] == f"failure {n + 3}"
    assert len(dead["last_error"]["history"]) == n


def test_worker_failures_keep_history_shown_by_jobs_show(
        db: TestDatabase, tasks: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    conn = db.connect()
    jid = tasks["fails"].defer()
    row = _archived(conn, jid)
    assert (row["state"], row["attempt"]) == ("dead", 3)
    history = row["last_error"]["history"]
    assert [h["type"] for h in history] == ["ValueError", "ValueError"]
    info = _read(db, jid)
    assert isinstance(info.last_error, dict)
    assert len(info.last_error["history"]) == 2
    capsys.readouterr()
    assert pgbatch_cli.main(["--dsn", db.dsn, "jobs", "show", str(jid)]) == 0
    out = capsys.readouterr().out
    earlier = out.split("earlier errors (2, newest first):\n", 1)[1].splitlines()
    assert len(earlier) == 2
    assert all(ln.endswith("ValueError: attempt failed") for ln in earlier)


def test_unused_id_is_not_found(db: TestDatabase, tasks: dict[str, Any]) -> None:
    with pytest.raises(pgbatch.JobNotFound):
        _read(db, uuid4())
