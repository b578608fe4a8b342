"""The web dashboard's read functions: web_nodes and metrics.

Revision ID: 0022_web_reading
Revises: 0021_gates

web_nodes (the registered worker nodes, heartbeat age, alive or not) and
metrics (every gauge of the web server's /metrics in one query) are new
admin reports, with their function_access rows. Nothing existing changes,
so servers and workers of the previous version are unaffected. Downgrade
drops both functions and their rows.
"""

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0022_web_reading"
down_revision: str | None = "0021_gates"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0022_web_reading.sql: released SQL never changes.
SQL_SHA256 = "b200936f4ec174ba794fb7f520ca226a32a221903552c6698660abe1ca653f3f"

#: The functions the version adds.
_ADDED = ("web_nodes", "metrics")


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    execute_sql("".join(f"drop function if exists pgbatch.{n};\n" for n in _ADDED))
    execute_sql("delete from pgbatch.function_access where function_name in "
                "('web_nodes', 'metrics');")
    execute_sql("select pgbatch._apply_privileges();")
