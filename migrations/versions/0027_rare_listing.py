"""Dead and cancelled records get partial listing indexes; list_jobs and the dead sweep read them.

Revision ID: 0027_rare_listing
Revises: 0026_web_roles

Two partial indexes on pgbatch.job_archive hold only the dead and cancelled
records in the listing order (one by state, one by queue and state).
list_jobs filtered by state dead or cancelled reads them (a statement planned
per call with the state as a literal): a page costs about `limit` index
entries however many done jobs surround them. sweep_retention finds due dead
records along the first by creation time, as it finds done ones along the
listing index, so job_archive_dead_idx (finished_at) is dropped: a done job's
ack still writes two index entries, a dead or cancelled one four. Same
signatures and answers; servers and workers of the previous version are
unaffected. Downgrade restores job_archive_dead_idx, 0026's sweep_retention
and 0002's list_jobs, and drops the new indexes.
"""

from __future__ import annotations

import re
from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0027_rare_listing"
down_revision: str | None = "0026_web_roles"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0027_rare_listing.sql: released SQL never changes.
SQL_SHA256 = "e63b71cd0e239c2dac627bbfc4700f28153245d679c715ec24c7f28c861209f2"


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def _function(migration: str, name: str) -> str:
    """The last definition of function ``name`` in ``migration``'s SQL."""
    text = Path(__file__).with_name(f"{migration}.sql").read_text(encoding="utf-8")
    found = re.findall(rf"^create or replace function pgbatch\.{name}\(.*?^\$\$;\n", text,
                       flags=re.MULTILINE | re.DOTALL)
    if not found:
        raise RuntimeError(f"{migration}.sql does not define pgbatch.{name}")
    return str(found[-1])


def downgrade() -> None:
    execute_sql("create index if not exists job_archive_dead_idx on pgbatch.job_archive"
                " (finished_at) where state = 'dead';")
    execute_sql("set local check_function_bodies = off;")
    execute_sql(_function("0026_web_roles", "sweep_retention"))
    execute_sql(_function("0002_job_reading", "list_jobs"))
    execute_sql("drop index if exists pgbatch.job_archive_rare_queue_listing_idx;")
    execute_sql("drop index if exists pgbatch.job_archive_rare_listing_idx;")
    execute_sql("select pgbatch._apply_privileges();")
