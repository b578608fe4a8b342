"""One SQL call of the step executor, with pgbatch's own errors raised as
their Python classes (``FencedOut``, ``ClaimLost``, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgbatch._errors import translate


def call_row(conn: psycopg.Connection[Any], query: str, args: Sequence[Any]) -> dict[str, Any]:
    """The one row ``query`` returns; a ``PB`` error becomes its pgbatch class."""
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(query, args).fetchone()
    except psycopg.Error as exc:
        mine = translate(exc)
        if mine is not None:
            raise mine from exc
        raise
    assert row is not None, query
    return row
