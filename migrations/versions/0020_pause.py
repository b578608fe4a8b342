"""Pause and resume of batch executions: park_execution, pause_execution,
resume_execution, resume_due_executions, the parked NOTIFY.

Revision ID: 0020_pause
Revises: 0019_chunk_commit

New functions: park_execution (worker), pause_execution and
resume_execution and paused_executions (admin), resume_due_executions
(worker: the timed-resume sweep), and the private _batch_notify_parked, _batch_check_resume_at,
_batch_park and _batch_resume. register_job accepts on_shutdown = 'pause';
_batch_recover notifies pgbatch_batch_parked when a PAUSING execution whose
worker was lost becomes PAUSED. No table changes (the pause columns exist since
0009_batch). Downgrade restores register_job and _batch_recover of
0013_batch_recovery and drops the new functions and their access rows.
"""

from __future__ import annotations

import re
from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0020_pause"
down_revision: str | None = "0019_chunk_commit"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0020_pause.sql: released SQL never changes.
SQL_SHA256 = "5c05c198602c206ce2074cf43c2ef613f7497b5eeba6a7d636606299e9dd2cc8"

#: Where the definitions this version replaces were last frozen.
_PREVIOUS = (("0013_batch_recovery", "register_job"), ("0013_batch_recovery", "_batch_recover"))
#: The functions the version adds.
_ADDED = ("park_execution", "pause_execution", "resume_execution", "resume_due_executions",
          "paused_executions", "_batch_resume", "_batch_park", "_batch_check_resume_at",
          "_batch_notify_parked")
#: The public ones, with their function_access rows.
_PUBLIC = ("park_execution", "pause_execution", "resume_execution", "resume_due_executions",
           "paused_executions")


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
    names = ", ".join(f"'{n}'" for n in _PUBLIC)
    execute_sql(f"delete from pgbatch.function_access where function_name in ({names});")
    execute_sql("select pgbatch._apply_privileges();")
