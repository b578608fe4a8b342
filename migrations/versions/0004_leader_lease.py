"""Maintenance leadership by database time: the pgbatch.leader lease table,
try_lead / resign_lead / holds_lead, and vacuum_stats.

Revision ID: 0004_leader_lease
Revises: 0003_roles

Additive only (a new table and new functions), so workers of the previous
version keep working during a rolling deploy: they still elect their leader
with a session advisory lock and never look at the table, so for a while
there may be one leader of each kind, which is harmless (every maintenance
function is safe to run on several nodes at once).

Downgrade drops the table and the functions.
"""

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0004_leader_lease"
down_revision: str | None = "0003_roles"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0004_leader_lease.sql: released SQL never changes.
SQL_SHA256 = "38a79931eb336e5da60f1306d1542eff444b800fb23e942c17e160dfcaea1059"

_DOWNGRADE = """
delete from pgbatch.function_access
 where function_name in ('try_lead', 'resign_lead', 'holds_lead', 'vacuum_stats');
drop function if exists pgbatch.vacuum_stats(name);
drop function if exists pgbatch.holds_lead(text, uuid, bigint, text);
drop function if exists pgbatch.resign_lead(text, uuid, text);
drop function if exists pgbatch.try_lead(text, uuid, interval, text);
drop function if exists pgbatch._check_lead_args(text, uuid, text);
drop table if exists pgbatch.leader;
"""


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    execute_sql(_DOWNGRADE)
