"""The chunk loop of a step run in the server, in the database.

Revision ID: 0028_server_chunks
Revises: 0027_rare_listing

``pgbatch.run_server_chunks`` (a procedure, SECURITY INVOKER, granted to the
worker role): it runs the chunks of a SqlReader -> TableWriter step run in
the server one after the other, each chunk one statement and its own durable
COMMIT, for up to ``max_seconds``, and returns the last checkpoint. Nothing
else changes; workers of the previous version keep their own chunk loop.
Downgrade drops the procedure and its function_access row.
"""

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0028_server_chunks"
down_revision: str | None = "0027_rare_listing"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0028_server_chunks.sql: released SQL never changes.
SQL_SHA256 = "f2750928459b4c537e238300e52dc693091319e2c68d2fe536c1059dadfc92be"


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    execute_sql("drop procedure if exists pgbatch.run_server_chunks(text, text, jsonb, bigint,"
                " double precision, text, integer, boolean, boolean);")
    execute_sql("delete from pgbatch.function_access where function_name = 'run_server_chunks';")
    execute_sql("select pgbatch._apply_privileges();")
