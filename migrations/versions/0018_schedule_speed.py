"""Scheduler speed: counting missed cron occurrences, one parse per tick, one ledger write.

Revision ID: 0018_schedule_speed
Revises: 0017_job_results

The tick (tick_schedules) decides a fire for about a quarter of the server time:
_cron_missed counts the occurrences in (after, until] by calendar arithmetic
where no DST transition is within two days of the range (_cron_count and
_cron_count_day_until, new; the enumeration stays for the other ranges);
_cron_next_after and _cron_prev_at take a short way in zones of one offset
(_tz_fixed, new); _cron_next_local and _cron_prev_local find a field's next or
previous value by a loop instead of a query; the tick parses each cron expression once per call
(_schedule_missed_parsed and _schedule_next_after_parsed, new; _schedule_missed
and _schedule_next_after parse and call them); a fired queue job's ledger row is
written with its job id (_schedule_job_id, new) instead of being updated after
the enqueue. Names, parameters and results are unchanged; no table changes.
Downgrade restores the definitions of 0007_cron and 0014_schedules and drops the
new functions.
"""

from __future__ import annotations

import re
from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0018_schedule_speed"
down_revision: str | None = "0017_job_results"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0018_schedule_speed.sql: released SQL never changes.
SQL_SHA256 = "9274bf6ae5ae2302c8207143cdf00876b2c87dc1be1de7aae41dffd9c4127b2e"

#: Where the definitions this version replaces were last frozen.
_PREVIOUS = (("0007_cron", "_cron_next_local"), ("0007_cron", "_cron_prev_local"),
             ("0007_cron", "_cron_next_after"), ("0007_cron", "_cron_prev_at"),
             ("0007_cron", "_cron_missed"), ("0014_schedules", "_schedule_next_after"),
             ("0014_schedules", "_schedule_missed"), ("0014_schedules", "_schedule_launch"),
             ("0014_schedules", "_schedule_record_fire"), ("0014_schedules", "tick_schedules"))
#: The functions the version adds.
_ADDED = ("_tz_fixed", "_cron_count", "_cron_count_day_until", "_schedule_next_after_parsed",
          "_schedule_missed_parsed", "_schedule_job_id")


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def _definition_in(version: str, function: str) -> str:
    """The ``create or replace function pgbatch.<function>`` statement of a frozen version."""
    text = Path(__file__).with_name(f"{version}.sql").read_text(encoding="utf-8")
    match = re.search(rf"^create or replace function pgbatch\.{function}\(.*?^\$\$;\n", text,
                      flags=re.MULTILINE | re.DOTALL)
    if match is None:
        raise RuntimeError(f"{version}.sql does not define pgbatch.{function}")
    return match.group(0)


def downgrade() -> None:
    execute_sql("set local check_function_bodies = off;")
    for version, function in _PREVIOUS:
        execute_sql(_definition_in(version, function))
    execute_sql("".join(f"drop function if exists pgbatch.{n};\n" for n in _ADDED))
    execute_sql("select pgbatch._apply_privileges();")
