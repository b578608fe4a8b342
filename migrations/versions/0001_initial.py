"""Initial schema: schema pgbatch, its tables and types, every SQL function.

Revision ID: 0001_initial
Revises: (none)

Upgrade applies the frozen ``0001_initial.sql`` next to this file.

Downgrade removes pgbatch from the database: it drops every function, table,
view, sequence and type in schema ``pgbatch`` except ``pgbatch.alembic_version``
(alembic's own version table lives in this schema, and alembic deletes this
revision's row from it right after ``downgrade()`` returns). Schema
``pgbatch`` and the then-empty version table stay; ``DROP SCHEMA pgbatch
CASCADE`` removes them. Every job, archived record and key/value entry is lost.
"""

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0001_initial"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0001_initial.sql: released SQL never changes.
SQL_SHA256 = "88dea2f03fea64d59b32ff7762ea0ae98149000a5699659ab743d90f5150ea88"

_DROP_ALL_BUT_VERSION_TABLE = """
do $pgbatch_0001_downgrade$
declare
    r record;
begin
    for r in
        select p.proname, p.prokind, pg_get_function_identity_arguments(p.oid) as args
        from pg_proc p
        where p.pronamespace = 'pgbatch'::regnamespace
    loop
        execute format('drop %s if exists pgbatch.%I(%s) cascade',
                       case r.prokind when 'p' then 'procedure'
                                      when 'a' then 'aggregate'
                                      else 'function' end,
                       r.proname, r.args);
    end loop;
    for r in
        select c.relname, c.relkind
        from pg_class c
        where c.relnamespace = 'pgbatch'::regnamespace
          and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
          and c.relname <> 'alembic_version'
        order by c.relkind desc  -- views before tables, sequences after
    loop
        execute format('drop %s if exists pgbatch.%I cascade',
                       case r.relkind when 'v' then 'view'
                                      when 'm' then 'materialized view'
                                      when 'f' then 'foreign table'
                                      when 'S' then 'sequence'
                                      else 'table' end,
                       r.relname);
    end loop;
    for r in
        select t.typname
        from pg_type t
        left join pg_class c on c.oid = t.typrelid
        where t.typnamespace = 'pgbatch'::regnamespace
          and t.typcategory <> 'A'
          and (t.typtype in ('e', 'd', 'r', 'm') or (t.typtype = 'c' and c.relkind = 'c'))
    loop
        execute format('drop type if exists pgbatch.%I cascade', r.typname);
    end loop;
end
$pgbatch_0001_downgrade$;
"""


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    execute_sql(_DROP_ALL_BUT_VERSION_TABLE)
