"""An archived job costs two index entries, not three: the retention index goes.

Revision ID: 0010_archive_indexes
Revises: 0009_batch

``job_archive_retention_idx`` (state, finished_at) is dropped; ``sweep_retention``
finds done and cancelled records along ``job_archive_listing_idx`` (by creation
time) and dead ones along the new partial ``job_archive_dead_idx`` (finished_at)
where state = 'dead'. Every ack of a done job writes one index entry fewer.
Downgrade restores the index and the definition of 0005_bad_input.
"""

from __future__ import annotations

import re
from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0010_archive_indexes"
down_revision: str | None = "0009_batch"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0010_archive_indexes.sql: released SQL never changes.
SQL_SHA256 = "86b7313f492cb6df68e28d83c0cdbecbeb82fb555241adf881df250cb4172612"


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    text = Path(__file__).with_name("0005_bad_input.sql").read_text(encoding="utf-8")
    match = re.search(r"^create or replace function pgbatch\.sweep_retention\(.*?^\$\$;\n", text,
                      flags=re.MULTILINE | re.DOTALL)
    if match is None:
        raise RuntimeError("0005_bad_input.sql does not define pgbatch.sweep_retention")
    execute_sql("create index if not exists job_archive_retention_idx"
                " on pgbatch.job_archive (state, finished_at);")
    execute_sql("drop index if exists pgbatch.job_archive_dead_idx;")
    execute_sql(match.group(0))
    execute_sql("select pgbatch._apply_privileges();")
