"""Retention of batch history, and one execution for operators (docs/batch.md).

Revision ID: 0011_batch_retention
Revises: 0010_archive_indexes

``purge_batch_history(older_than, batch_size)`` deletes terminal job
executions that ended more than ``older_than`` ago, with their step
executions, contexts, approvals and events (on delete cascade), and the job
instances left without an execution; the maintenance leader runs it (worker
role). ``get_execution(execution_id)`` returns one execution with its summed
step counters (admin role). New functions only; downgrade drops them.
"""

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0011_batch_retention"
down_revision: str | None = "0010_archive_indexes"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0011_batch_retention.sql: released SQL never changes.
SQL_SHA256 = "4a3d32d56c33627938e7547a035c7b5567f937b6e27de74f79f538f622fdc47d"

#: The functions the version adds.
FUNCTIONS = ("purge_batch_history", "_batch_known_execution", "get_execution")


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    names = ", ".join(f"'{n}'" for n in FUNCTIONS)
    execute_sql(f"delete from pgbatch.function_access where function_name in ({names});\n"
                + "".join(f"drop function if exists pgbatch.{n} cascade;\n" for n in FUNCTIONS))
