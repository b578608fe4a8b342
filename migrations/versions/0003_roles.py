"""Least-privilege roles: group roles, SECURITY DEFINER functions, no PUBLIC execute.

Revision ID: 0003_roles
Revises: 0002_job_reading

Adds ``pgbatch.function_access`` (which group role may execute each public
function) and ``pgbatch._apply_privileges()``, and runs it: the NOLOGIN group
roles ``pgbatch_producer``, ``pgbatch_worker`` and ``pgbatch_admin`` are
created when the migrating role may (else a WARNING names the SQL a DBA runs),
every public function becomes SECURITY DEFINER with a pinned search_path, and
PUBLIC loses EXECUTE. ``pgbatch.now()`` no longer reads
``pgbatch._test_clock_enabled()`` (dropped). See docs/roles.md.

Downgrade (development and tests) returns to 0001's privileges: every
function SECURITY INVOKER without a SET clause and executable by PUBLIC, the
group roles' grants revoked (the roles themselves stay: they are cluster-wide
and other databases may use them), the old clock functions back.
"""

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0003_roles"
down_revision: str | None = "0002_job_reading"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0003_roles.sql: released SQL never changes.
SQL_SHA256 = "6c0fc156f61b36715a9a7d99344a856c8457cc20ce091145a1bb6de6235c9fe9"


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


_DOWNGRADE = """
do $pgbatch_0003_downgrade$
declare
    v_roles text[] := array(select m.value from pgbatch.meta m
                             where m.key like 'role.%' and exists (
                                   select from pg_roles r where r.rolname = m.value));
    v_name text;
    r record;
begin
    for r in select p.oid::regprocedure as sig from pg_proc p
              where p.pronamespace = 'pgbatch'::regnamespace loop
        execute format('alter routine %s security invoker reset search_path', r.sig);
        execute format('grant execute on routine %s to public', r.sig);
        foreach v_name in array v_roles loop
            execute format('revoke all on routine %s from %I', r.sig, v_name);
        end loop;
    end loop;
    for r in select c.oid::regclass as rel from pg_class c
              where c.relnamespace = 'pgbatch'::regnamespace
                and c.relkind in ('r', 'p', 'v', 'm', 'S') loop
        foreach v_name in array v_roles loop
            execute format('revoke all on %s from %I', r.rel, v_name);
        end loop;
    end loop;
    foreach v_name in array v_roles loop
        execute format('revoke all on schema pgbatch from %I', v_name);
    end loop;
    execute 'alter table pgbatch.job reset (autovacuum_vacuum_scale_factor,'
            ' autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor,'
            ' autovacuum_analyze_scale_factor, autovacuum_vacuum_cost_delay)';
    execute 'alter default privileges in schema pgbatch grant execute on routines to public';
end
$pgbatch_0003_downgrade$;
delete from pgbatch.meta where key like 'role.%';
drop table pgbatch.function_access;
drop function pgbatch._apply_privileges();
create or replace function pgbatch._test_clock_enabled()
returns boolean
language sql
immutable
parallel safe
as $$ select false $$;
create or replace function pgbatch.now()
returns timestamptz
language sql
stable
parallel safe
as $$
    select case
        when pgbatch._test_clock_enabled()
            then coalesce(nullif(current_setting('pgbatch.fake_now', true), '')::timestamptz,
                          pg_catalog.now())
        else pg_catalog.now()
    end
$$;
"""


def downgrade() -> None:
    execute_sql(_DOWNGRADE)
