"""A real way to make the scheduler's SQL functions raise each of their error
codes (merged into tests/test_errors_table.py's TRIGGERS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]

CREATE = ("select pgbatch.create_schedule('s', 'cron', cron_expr => '* * * * *', queue => 'q')")


def _already_exists(conn: Conn) -> None:
    conn.execute(CREATE)
    conn.execute(CREATE)


#: SQLSTATE -> a call that raises it.
SCHEDULE_TRIGGERS: dict[str, Callable[[Conn], object]] = {
    "PB060": lambda c: c.execute("select pgbatch.pause_schedule('nope')"),
    "PB061": lambda c: c.execute(
        "select pgbatch.create_schedule('s', 'interval', every => '-1 minute', queue => 'q')"),
    "PB062": _already_exists,
}
