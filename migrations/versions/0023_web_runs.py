"""The dashboard's keyset page of job executions: job_executions_page.

Revision ID: 0023_web_runs
Revises: 0022_web_reading

job_executions_page (the executions of a job and status below a given id,
newest first: the runs list's keyset pages) is a new admin report, with its
function_access row. Nothing existing changes, so servers and workers of the
previous version are unaffected. Downgrade drops the function and its row.
"""

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0023_web_runs"
down_revision: str | None = "0022_web_reading"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0023_web_runs.sql: released SQL never changes.
SQL_SHA256 = "aa516c500854c2e60dd189d020ed287a123a5477a58ee1cc5d9a097342b3bbfa"

#: The functions the version adds.
_ADDED = ("job_executions_page",)


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    execute_sql("".join(f"drop function if exists pgbatch.{n};\n" for n in _ADDED))
    execute_sql("delete from pgbatch.function_access where function_name = "
                "'job_executions_page';")
    execute_sql("select pgbatch._apply_privileges();")
