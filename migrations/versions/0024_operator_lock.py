"""Operator calls take their locks in a subtransaction per attempt: _batch_lock_operator.

Revision ID: 0024_operator_lock
Revises: 0023_web_runs

_batch_lock_operator (every operator call's lock: the work item's queue row,
then the execution's row) rolls each attempt back before a retry, so a retry
never holds the execution's row while waiting for a new work item's row.
Name and parameters are unchanged. Downgrade restores the definition frozen
in 0009_batch.
"""

from __future__ import annotations

import re
from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0024_operator_lock"
down_revision: str | None = "0023_web_runs"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0024_operator_lock.sql: released SQL never changes.
SQL_SHA256 = "0820e16bff2d2a7ae2c85b3962503459418d4b60bd7deca80e4d7c95c1eefd59"


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    text = Path(__file__).with_name("0009_batch.sql").read_text(encoding="utf-8")
    match = re.search(r"^create or replace function pgbatch\._batch_lock_operator\(.*?^\$\$;\n",
                      text, flags=re.MULTILINE | re.DOTALL)
    if match is None:
        raise RuntimeError("0009_batch.sql does not define pgbatch._batch_lock_operator")
    execute_sql("set local check_function_bodies = off;")
    execute_sql(match.group(0))
    execute_sql("select pgbatch._apply_privileges();")
