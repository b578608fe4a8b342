"""Job results and a bounded error history: limits, ack, nack, dead_letter, _with_error_history.

Revision ID: 0017_job_results
Revises: 0016_schedules_more

limits() gains max_result_bytes and error_history_length;
ack keeps an effects' "return_value" (a task's return value) as the
archived job's result -> 'return_value'; nack and dead_letter
store the earlier attempts' errors under last_error -> 'history'
(_with_error_history, new). Names, parameter names and the plain-ack path
(ack_ids, _ack_plain) are unchanged, so workers of the previous version
keep working against it. Downgrade restores the definitions of 0008_default_lease
(limits) and 0005_bad_input (ack, nack, dead_letter) and drops the new function.
"""

from __future__ import annotations

import re
from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0017_job_results"
down_revision: str | None = "0016_schedules_more"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0017_job_results.sql: released SQL never changes.
SQL_SHA256 = "24926596a00f0b785ca1300995925b600228060f991a019df85a87d63738af03"

#: Where the definitions this version replaces were last frozen.
_PREVIOUS = (("0008_default_lease", "limits"), ("0005_bad_input", "ack"),
             ("0005_bad_input", "nack"), ("0005_bad_input", "dead_letter"))
#: The functions the version adds.
_ADDED = ("_with_error_history",)


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
