"""Approval gates: await_gate, approve_gate, reject_gate, approvals, expire_gates.

Revision ID: 0021_gates
Revises: 0020_pause

A worker that reaches a gate step parks the execution AWAITING_APPROVAL with
a PENDING approval (await_gate, T13); approve_gate and reject_gate decide it
in one transaction with a double compare-and-set (_batch_decide_gate,
T14/T15); approvals lists them; expire_gates applies a gate's on_timeout
once (every node's gate-timeout service). The approval table gains
on_timeout and the index approval_pending_expiry. No existing function
changes. Downgrade drops what the version added.
"""

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0021_gates"
down_revision: str | None = "0020_pause"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0021_gates.sql: released SQL never changes.
SQL_SHA256 = "ee6301299fe0f334edff6c0ef3a4559e76e4f926357b4b4f51775d1971728643"

#: The functions the version adds (name and argument types).
_ADDED = (
    "await_gate(bigint, text, uuid, uuid, interval, text, boolean)",
    "approve_gate(bigint, text, text, text, text)",
    "reject_gate(bigint, text, text, text, text)",
    "_batch_decide_gate(bigint, text, text, text, text, text, text, jsonb)",
    "approvals(text, integer)",
    "expire_gates(integer)",
)
#: The public ones, mapped in pgbatch.function_access.
_MAPPED = ("await_gate", "expire_gates", "approve_gate", "reject_gate", "approvals")


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    execute_sql("".join(f"drop function if exists pgbatch.{f};\n" for f in _ADDED))
    execute_sql("delete from pgbatch.function_access where function_name in ("
                + ", ".join(f"'{n}'" for n in _MAPPED) + ");\n")
    execute_sql("drop index if exists pgbatch.approval_pending_expiry;\n"
                "alter table pgbatch.approval drop column if exists on_timeout;\n")
    execute_sql("select pgbatch._apply_privileges();")
