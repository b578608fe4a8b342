"""Recovery of batch executions after host loss, hand-off at shutdown, recover and cancel.

Revision ID: 0013_batch_recovery
Revises: 0012_task_registry

Adds ``job_execution.fresh_from_step`` and the functions ``handoff_execution``,
``execution_control``, ``recover_executions`` (workers), ``recover_execution``,
``cancel_execution`` (admins) and the internal ``_batch_retire_item``,
``_batch_relaunch``, ``_batch_recover``; replaces ``register_job``,
``start_execution``, ``start_step`` and ``end_step`` (names and parameter names
kept). Downgrade drops what it added and restores the definitions of
0009_batch.
"""

from __future__ import annotations

import re
from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0013_batch_recovery"
down_revision: str | None = "0012_task_registry"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0013_batch_recovery.sql: released SQL never changes.
SQL_SHA256 = "0c67c42ab2cd0ca0db24b99f1c2ec1128c6a5cccf74d56bcadd66f328770e942"

#: The functions the version adds.
FUNCTIONS = (
    "_batch_retire_item",
    "_batch_relaunch",
    "handoff_execution",
    "execution_control",
    "_batch_recover",
    "recover_execution",
    "cancel_execution",
    "recover_executions",
)
#: The functions it replaces, last frozen in 0009_batch.
_PREVIOUS = ("register_job", "start_execution", "start_step", "end_step")


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
    names = ", ".join(f"'{n}'" for n in FUNCTIONS)
    execute_sql("set local check_function_bodies = off;")
    execute_sql(f"delete from pgbatch.function_access where function_name in ({names});\n"
                + "".join(f"drop function if exists pgbatch.{n} cascade;\n" for n in FUNCTIONS))
    for function in _PREVIOUS:
        execute_sql(_definition_in("0009_batch", function))
    execute_sql("alter table pgbatch.job_execution drop column if exists fresh_from_step;")
    execute_sql("select pgbatch._apply_privileges();")
