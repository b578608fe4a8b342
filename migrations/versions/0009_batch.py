"""Add the batch engine's SQL core: its tables and functions (docs/batch.md).

Revision ID: 0009_batch
Revises: 0008_default_lease

Job definitions, instances, executions, step executions, their contexts,
approvals and events; the identity of job parameters (canonical_params,
job_key); launch and restart rules (launch_job, restart_execution,
next_instance); the transitions a step executor calls (start_execution,
start_step, commit_chunk, end_step); stop_execution and abandon_execution.
Additive: nothing older uses these tables. Downgrade drops them.
"""

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0009_batch"
down_revision: str | None = "0008_default_lease"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0009_batch.sql: released SQL never changes.
SQL_SHA256 = "4d5a5f51cd873349fda9dfc36ecef9b8714a57ca0ea003f24209048254a29d5b"

#: The functions the version adds.
FUNCTIONS = (
    '_canonical_float',
    '_canonical_json',
    '_canonical_number',
    '_batch_param',
    '_batch_params',
    'canonical_params',
    'job_key',
    'register_job',
    '_batch_event',
    '_batch_enqueue',
    'launch_job',
    'restart_execution',
    'next_instance',
    '_batch_fence',
    'start_execution',
    '_batch_finish',
    'start_step',
    'commit_chunk',
    'end_step',
    '_batch_lock_operator',
    '_batch_prior_result',
    'stop_execution',
    'abandon_execution',
    'job_executions',
    'step_executions',
    'execution_events',
    '_batch_invariant_violations',
)
#: Its tables, dependents first.
TABLES = (
    'execution_event',
    'approval',
    'step_execution_context',
    'step_execution',
    'job_execution_context',
    'job_execution',
    'job_instance',
    'job_definition',
)


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    names = ", ".join(f"'{n}'" for n in FUNCTIONS)
    execute_sql(f"delete from pgbatch.function_access where function_name in ({names});\n"
                + "".join(f"drop function if exists pgbatch.{n} cascade;\n" for n in FUNCTIONS)
                + "".join(f"drop table if exists pgbatch.{t};\n" for t in TABLES))
