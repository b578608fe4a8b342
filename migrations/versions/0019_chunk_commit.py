"""A cheaper chunk commit: commit_chunk.

Revision ID: 0019_chunk_commit
Revises: 0018_schedule_speed

commit_chunk keeps its name, parameter names, result columns and errors;
its successful path is one UPDATE each of the work item, the execution, the
step and the step's context (the fence checked by their conditions), with
the leases extended when due: after a commit the lease is never less than
90% of the ``lease`` argument (and never more), so most chunk commits are
HOT updates. Downgrade restores the definition of 0009_batch.
"""

from __future__ import annotations

import re
from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0019_chunk_commit"
down_revision: str | None = "0018_schedule_speed"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0019_chunk_commit.sql: released SQL never changes.
SQL_SHA256 = "6b2128d0f460789d7e0905aa10b71a7b770fc526925bed945559c448627cf43b"

#: Where the definitions this version replaces were last frozen.
_PREVIOUS = (("0009_batch", "commit_chunk"),)


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
    execute_sql("select pgbatch._apply_privileges();")
