"""Cron evaluation in SQL: pgbatch.cron_parse, cron_next, cron_prev, cron_occurrences, cron_missed.

Revision ID: 0007_cron
Revises: 0006_fence_claim

Adds the type ``pgbatch.cron_spec`` (a parsed cron expression), the public
functions ``cron_parse``, ``cron_next``, ``cron_prev``, ``cron_occurrences`` and
``cron_missed`` (docs/schedules.md), the internal helpers the scheduler's
tick will share with them, and the codes PB020 (InvalidCron) and PB021
(InvalidTimeZone). Additive only (new functions and a new type), so workers
of the previous version keep working during a rolling deploy.

Downgrade deletes the function_access rows and drops the functions and the type.
"""

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0007_cron"
down_revision: str | None = "0006_fence_claim"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0007_cron.sql: released SQL never changes.
SQL_SHA256 = "7f22cca887947379156003155afee53b84e078b0f15623faddcf70f06accd961"

_DOWNGRADE = """
delete from pgbatch.function_access
 where function_name in ('cron_parse', 'cron_next', 'cron_prev', 'cron_occurrences',
                         'cron_missed');
drop function if exists pgbatch.cron_missed(text, text, timestamptz, timestamptz, integer);
drop function if exists pgbatch.cron_occurrences(text, text, timestamptz, timestamptz, integer);
drop function if exists pgbatch.cron_prev(text, text, timestamptz);
drop function if exists pgbatch.cron_next(text, text, timestamptz);
drop function if exists pgbatch._cron_missed(pgbatch.cron_spec, text, timestamptz, timestamptz,
                                             integer);
drop function if exists pgbatch._cron_between(pgbatch.cron_spec, text, timestamptz, timestamptz,
                                              integer);
drop function if exists pgbatch._cron_prev_at(pgbatch.cron_spec, text, timestamptz);
drop function if exists pgbatch._cron_next_after(pgbatch.cron_spec, text, timestamptz);
drop function if exists pgbatch._cron_offset_bounds(text, timestamptz);
drop function if exists pgbatch._cron_instants(text, timestamp, boolean);
drop function if exists pgbatch._cron_prev_local(pgbatch.cron_spec, timestamp);
drop function if exists pgbatch._cron_next_local(pgbatch.cron_spec, timestamp);
drop function if exists pgbatch._cron_day_matches(pgbatch.cron_spec, timestamp);
drop function if exists pgbatch.cron_parse(text);
drop function if exists pgbatch._cron_field(text, text, text, integer, integer, text[], integer);
drop function if exists pgbatch._cron_time_problem(text, timestamptz);
drop function if exists pgbatch._tz_offset(text, timestamptz);
drop function if exists pgbatch._tz_problem(text);
drop type if exists pgbatch.cron_spec;
"""


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    execute_sql(_DOWNGRADE)
