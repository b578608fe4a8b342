"""The next occurrences of a schedule's timing: schedule_occurrences.

Revision ID: 0025_schedule_occurrences
Revises: 0024_operator_lock

schedule_occurrences (kind, cron_expr, tz, every, anchor, once_at as
create_schedule takes them; after; max_count) lists the next instants the
scheduler would make due, by the scheduler's own rule, for cron, interval
and once schedules: the preview of the dashboard's wizard. A new function
with its function_access row (every pgbatch role, like the cron functions);
nothing existing changes, so servers and workers of the previous version are
unaffected. Downgrade drops the function and its row.
"""

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0025_schedule_occurrences"
down_revision: str | None = "0024_operator_lock"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0025_schedule_occurrences.sql: released SQL never changes.
SQL_SHA256 = "c1491a3fa9df9cb21308dc966bfb30c87fa67af4382dd284d49bcfe955550c04"


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    execute_sql("drop function if exists pgbatch.schedule_occurrences;\n")
    execute_sql("delete from pgbatch.function_access where function_name = "
                "'schedule_occurrences';")
    execute_sql("select pgbatch._apply_privileges();")
