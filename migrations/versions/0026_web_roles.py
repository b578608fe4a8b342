"""The viewer group role, and request_id for requeue_dead_job.

Revision ID: 0026_web_roles
Revises: 0025_schedule_occurrences

- A fourth NOLOGIN group role, the viewer (``pgbatch.meta`` ``role.viewer``,
  default ``pgbatch_viewer``, or the prefix the other roles have): the new
  ``pgbatch.function_access.viewer`` column marks the functions that change
  nothing (reports and pure helpers); ``_apply_privileges`` grants them to
  the viewer as well as to their own role, and gives the viewer the same
  column ``SELECT`` as admin. Nothing existing loses a right.
- ``requeue_dead_job(job_id, run_at, request_id uuid default null)``: a
  repeated call with the same request_id for the same job returns the first
  one's answer and changes nothing (records in the new table
  ``pgbatch.job_request``, swept by ``sweep_retention`` after ``dead_after``).
  The two-argument signature is dropped; calls by position or by name with
  ``job_id`` and ``run_at`` resolve to the new one.

Downgrade revokes the viewer's rights (the role itself stays, as renamed
roles do), forgets its name, drops the table and the column, and restores
the previous definitions of the three functions.
"""

from __future__ import annotations

import re
from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0026_web_roles"
down_revision: str | None = "0025_schedule_occurrences"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0026_web_roles.sql: released SQL never changes.
SQL_SHA256 = "05b26feb08247bfafeb42a30ec0f32c6309719f8a76d14d165e667ff796b6a41"

#: (function, the frozen file holding its previous definition).
_PREVIOUS = (("_apply_privileges", "0003_roles.sql"), ("requeue_dead_job", "0005_bad_input.sql"),
             ("sweep_retention", "0010_archive_indexes.sql"))

_REVOKE_VIEWER = """\
do $pgbatch_viewer$
declare
    v_viewer text := (select m.value from pgbatch.meta m where m.key = 'role.viewer');
begin
    if v_viewer is not null
       and exists (select from pg_catalog.pg_roles r where r.rolname = v_viewer) then
        execute format('revoke all on all routines in schema pgbatch from %I', v_viewer);
        execute format('revoke all on all tables in schema pgbatch from %I', v_viewer);
        execute format('revoke all on all sequences in schema pgbatch from %I', v_viewer);
        execute format('revoke all on schema pgbatch from %I', v_viewer);
    end if;
    delete from pgbatch.meta m where m.key = 'role.viewer';
end $pgbatch_viewer$;
"""


def _definition(function: str, file: str) -> str:
    text = Path(__file__).with_name(file).read_text(encoding="utf-8")
    match = re.search(rf"^create or replace function pgbatch\.{re.escape(function)}\(.*?^\$\$;\n",
                      text, flags=re.MULTILINE | re.DOTALL)
    if match is None:
        raise RuntimeError(f"{file} does not define pgbatch.{function}")
    return match.group(0)


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    execute_sql(_REVOKE_VIEWER)
    execute_sql("drop function if exists pgbatch.requeue_dead_job(uuid, timestamptz, uuid);")
    execute_sql("drop table if exists pgbatch.job_request;")
    execute_sql("alter table pgbatch.function_access"
                " drop constraint if exists function_access_viewer_only_reads,"
                " drop column if exists viewer;")
    execute_sql("set local check_function_bodies = off;")
    for function, file in _PREVIOUS:
        execute_sql(_definition(function, file))
    execute_sql("select pgbatch._apply_privileges();")
