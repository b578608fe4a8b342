"""pgbatch/_limits.py mirrors pgbatch.limits(), the one source of every default and limit."""

from __future__ import annotations

from typing import Any

import psycopg

from pgbatch import _limits
from tests.helpers import scalar

Conn = psycopg.Connection[Any]


def test_python_constants_equal_what_the_database_reports(conn: Conn) -> None:
    assert scalar(conn, "select pgbatch.limits()") == _limits.as_sql_json()


def test_max_payload_bytes_reads_the_same_limit(conn: Conn) -> None:
    assert scalar(conn, "select pgbatch.max_payload_bytes()") == _limits.MAX_PAYLOAD_BYTES


def test_enqueue_defaults_to_the_default_max_attempts(conn: Conn) -> None:
    single = scalar(conn, "select pgbatch.enqueue('q')")
    conn.execute("select pgbatch.enqueue_many('[{\"queue\": \"q\"}]')")
    attempts = conn.execute("select max_attempts from pgbatch.job").fetchall()
    assert attempts == [(_limits.DEFAULT_MAX_ATTEMPTS,)] * 2
    assert single is not None


def test_the_limits_are_constants_of_every_plan(conn: Conn) -> None:
    """Immutable, so the planner folds them: reading a limit costs nothing per call."""
    volatility = conn.execute(
        "select proname, provolatile from pg_proc where pronamespace = 'pgbatch'::regnamespace"
        " and proname in ('limits', '_limit', '_limit_interval', 'max_payload_bytes')"
        " order by proname").fetchall()
    assert volatility == [("_limit", "i"), ("_limit_interval", "i"), ("limits", "i"),
                          ("max_payload_bytes", "i")]
