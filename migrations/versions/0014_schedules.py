"""Add the scheduler: persisted schedules, the fire ledger, the tick (docs/schedules.md).

Revision ID: 0014_schedules
Revises: 0013_batch_recovery

Schedules of kind cron, interval, once and manual whose target is a queue
job or a batch job launch; the fire ledger (one row per decided fire,
unique on schedule, source and occurrence); tick_schedules, the one call in
one transaction that decides due fires on every worker node; the lifecycle
functions and the reads. Additive: nothing older uses these tables.
Downgrade drops them.
"""

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0014_schedules"
down_revision: str | None = "0013_batch_recovery"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0014_schedules.sql: released SQL never changes.
SQL_SHA256 = "c6cc53fbcfc90f2fa70f16823c8a398b901b46105c7f8813ab550d597788a8a8"

#: The functions the version adds.
FUNCTIONS = (
    '_schedule_next_after',
    '_schedule_missed',
    '_schedule_run_status',
    '_schedule_overlap_active',
    '_schedule_launch',
    '_schedule_fire_info',
    '_schedule_record_fire',
    '_schedule_checked',
    '_schedule_info',
    '_schedule_lock',
    'tick_schedules',
    'create_schedule',
    'update_schedule',
    'delete_schedule',
    'pause_schedule',
    'resume_schedule',
    'trigger_schedule',
    'backfill_schedule',
    'schedules',
    'schedule_fires',
)
#: Its tables, dependents first, and its types.
TABLES = (
    'schedule_fire',
    'schedule',
)
TYPES = (
    'schedule_fire_info',
    'schedule_info',
)


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    names = ", ".join(f"'{n}'" for n in FUNCTIONS)
    execute_sql(f"delete from pgbatch.function_access where function_name in ({names});\n"
                + "".join(f"drop function if exists pgbatch.{n} cascade;\n" for n in FUNCTIONS)
                + "".join(f"drop table if exists pgbatch.{t};\n" for t in TABLES)
                + "".join(f"drop type if exists pgbatch.{t};\n" for t in TYPES))
