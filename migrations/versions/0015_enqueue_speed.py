"""The producer's hot path made lean: enqueue, _insert_jobs, and enqueue_arrays (new).

Revision ID: 0015_enqueue_speed
Revises: 0014_schedules

``enqueue`` without ``id_override`` validates, inserts and announces in
one short body; ``_insert_jobs`` (enqueue_many, enqueue_arrays, ack effects)
mints a call's ids with one random draw (``_mint_ids``, new) and inserts jobs
without dedup keys with one plain INSERT; ``enqueue_arrays`` (new, granted
to the producer role) is the bulk form with one array per field, which the
Python client's ``enqueue_many`` calls. Names, parameter names and semantics
of the existing functions are unchanged, so workers of the previous version
keep working against it. Downgrade restores the definitions of 0005_bad_input
and drops the new functions.
"""

from __future__ import annotations

import re
from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0015_enqueue_speed"
down_revision: str | None = "0014_schedules"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0015_enqueue_speed.sql: released SQL never changes.
SQL_SHA256 = "798f4a3dffbc076898baa2db6c8c2d9c8d09e0f7b4be6ffc077b2dffc73abdaa"

#: Where the definitions this version replaces were last frozen.
_PREVIOUS = (("0005_bad_input", "_insert_jobs"), ("0005_bad_input", "enqueue"))
#: The functions the version adds.
_ADDED = ("enqueue_arrays", "_mint_ids")


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
    execute_sql("delete from pgbatch.function_access where function_name = 'enqueue_arrays';\n"
                + "".join(f"drop function if exists pgbatch.{n};\n" for n in _ADDED))
    execute_sql("select pgbatch._apply_privileges();")
