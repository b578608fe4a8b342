"""Schedules defined in code, and the scheduler invariant as a query.

Revision ID: 0016_schedules_more
Revises: 0015_enqueue_speed

Adds ensure_schedule (create a schedule, or bring an existing one to a
definition with update_schedule's rules; granted to the worker role: workers
register the schedules defined in their code at start) and
_schedule_invariant_violations (BATCH.md I8 as far as the rows show it).
Nothing existing changes. Downgrade drops both and the access row.
"""

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0016_schedules_more"
down_revision: str | None = "0015_enqueue_speed"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0016_schedules_more.sql: released SQL never changes.
SQL_SHA256 = "01c6f23ce5ef3455596747f63247102d7cfe9249e5ea4a01ab18c761b6af0522"


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    execute_sql("delete from pgbatch.function_access where function_name = 'ensure_schedule';\n"
                "drop function if exists pgbatch.ensure_schedule;\n"
                "drop function if exists pgbatch._schedule_invariant_violations;\n")
    execute_sql("select pgbatch._apply_privileges();")
