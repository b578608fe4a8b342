"""Add pgbatch.fence_claim: many fenced, durable commits inside one claim.

Revision ID: 0006_fence_claim
Revises: 0005_bad_input

A handler (a batch chunk step, a transactional task) may commit several
transactions while it holds one claim; each ends with ``fence_claim``, which
checks the claim token and extends the lease in that same transaction, and
unlike ``renew_lease`` keeps the commit durable. Additive: old workers never
call it. Downgrade drops the function.
"""

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0006_fence_claim"
down_revision: str | None = "0005_bad_input"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0006_fence_claim.sql: released SQL never changes.
SQL_SHA256 = "f37072131e9920c35a27ec0b3131685660515e8c3c994223bea7916195d85c02"


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    execute_sql("delete from pgbatch.function_access where function_name = 'fence_claim';\n"
                "drop function if exists pgbatch.fence_claim(uuid, uuid, interval);")
