"""The task registry and drop_queue.

Revision ID: 0012_task_registry
Revises: 0011_batch_retention

New table pgbatch.task_registry (the options of the tasks workers have,
upserted by register_tasks at every worker start) and new functions
register_tasks (worker), list_tasks and enqueue_task (producer:
enqueue by task name with the registered queue, priority and max_attempts
wherever the caller gives none) and drop_queue (admin: remove a queue
that holds no live job). Nothing existing changes. Downgrade drops them.
"""

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0012_task_registry"
down_revision: str | None = "0011_batch_retention"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0012_task_registry.sql: released SQL never changes.
SQL_SHA256 = "506736f38421f8410ce5e6bc45671bc2c4ea174ed98b4a7b60f8460c56580479"


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    execute_sql("""
        drop function if exists pgbatch.enqueue_task(text, jsonb, text, timestamptz, integer,
                                                     text, integer, uuid);
        drop function if exists pgbatch.list_tasks(text);
        drop function if exists pgbatch.register_tasks(text, jsonb);
        drop function if exists pgbatch.drop_queue(text);
        drop table if exists pgbatch.task_registry;
        delete from pgbatch.function_access
         where function_name in ('enqueue_task', 'list_tasks', 'register_tasks', 'drop_queue');
    """)
