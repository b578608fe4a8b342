"""A deterministic, diffable snapshot of one schema's catalog (test helper).

``snapshot(conn)`` reads what a schema *is* from ``pg_catalog`` and returns
plain, sorted data (dicts of lists of strings, numbers and booleans, JSON
serialisable). Two databases hold the same schema when their snapshots are
equal; ``assert_same_catalog`` fails with a unified diff of the two as JSON,
so a failure names the object and field that differ.

What is captured, per section:

* ``schema``: the schema's ACL.
* ``tables`` (tables, partitioned tables, views, materialized views, foreign
  tables): kind, persistence, storage options (``reloptions``), ACL, view
  definition, and every column in order with its type (``format_type``),
  NOT NULL, default expression, identity and generated kind, collation and
  column ACL.
* ``constraints``: per table, ``pg_get_constraintdef`` by constraint name
  (primary keys, uniques, checks, foreign keys, exclusions).
* ``indexes``: ``pg_get_indexdef`` by index name (partial indexes, sort
  order and opclasses included).
* ``sequences``: type and parameters, and the column that owns it.
* ``triggers``: ``pg_get_triggerdef`` by table and trigger name.
* ``functions``: per identity signature: arguments with defaults, result,
  kind, language, volatility, strictness, parallel safety, SECURITY DEFINER,
  leakproof, ``proconfig`` (``SET`` clauses), cost and rows, ACL, and the md5
  of the body (``prosrc``).
* ``types``: composite types with their attributes, enums with their labels,
  domains with their base type, default and constraints; ACLs.
* ``comments``: ``obj_description`` of the schema, relations, functions and
  types (``col_description`` for columns).
* ``data``: the rows of those tables named in ``data_tables`` that exist
  (small configuration tables such as ``meta``), as JSON objects, sorted.

Owners are left out: the two databases of a comparison are usually built by
the same role, and ownership is not what the schema defines. ACL entries
that name an owner are kept as PostgreSQL prints them.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

Snapshot = dict[str, Any]

_RELATIONS = """
select c.relname,
       c.relkind::text,
       c.relpersistence::text,
       coalesce(array_to_string(array(select o from unnest(c.reloptions) o order by o), ','), ''),
       coalesce(c.relacl::text, ''),
       case when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid) else '' end,
       coalesce(obj_description(c.oid, 'pg_class'), '')
  from pg_class c
 where c.relnamespace = %(nsp)s::regnamespace
   and c.relkind in ('r', 'p', 'v', 'm', 'f')
   and not (c.relname = any(%(exclude)s))
 order by c.relname
"""

_COLUMNS = """
select c.relname,
       a.attnum,
       a.attname,
       format_type(a.atttypid, a.atttypmod),
       a.attnotnull,
       coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
       a.attidentity::text,
       a.attgenerated::text,
       coalesce(co.collname, ''),
       coalesce(a.attacl::text, ''),
       coalesce(col_description(c.oid, a.attnum), '')
  from pg_attribute a
  join pg_class c on c.oid = a.attrelid
  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
  left join pg_collation co on co.oid = a.attcollation and a.attcollation <> 0
 where c.relnamespace = %(nsp)s::regnamespace
   and c.relkind in ('r', 'p', 'v', 'm', 'f')
   and not (c.relname = any(%(exclude)s))
   and a.attnum > 0 and not a.attisdropped
 order by c.relname, a.attnum
"""

_CONSTRAINTS = """
select coalesce(c.relname, t.typname), con.conname, con.contype::text,
       pg_get_constraintdef(con.oid, true)
  from pg_constraint con
  left join pg_class c on c.oid = con.conrelid
  left join pg_type t on t.oid = con.contypid
 where con.connamespace = %(nsp)s::regnamespace
   and not (coalesce(c.relname, '') = any(%(exclude)s))
 order by 1, 2
"""

_INDEXES = """
select t.relname, i.relname, pg_get_indexdef(i.oid)
  from pg_index x
  join pg_class i on i.oid = x.indexrelid
  join pg_class t on t.oid = x.indrelid
 where t.relnamespace = %(nsp)s::regnamespace
   and not (t.relname = any(%(exclude)s))
 order by 1, 2
"""

_SEQUENCES = """
select c.relname, format_type(s.seqtypid, null), s.seqstart, s.seqincrement, s.seqmin,
       s.seqmax, s.seqcache, s.seqcycle,
       coalesce((select t.relname || '.' || a.attname
                   from pg_depend dep
                   join pg_class t on t.oid = dep.refobjid
                   join pg_attribute a on a.attrelid = dep.refobjid and a.attnum = dep.refobjsubid
                  where dep.classid = 'pg_class'::regclass and dep.objid = c.oid
                    and dep.deptype in ('a', 'i')), ''),
       coalesce(c.relacl::text, '')
  from pg_sequence s
  join pg_class c on c.oid = s.seqrelid
 where c.relnamespace = %(nsp)s::regnamespace
 order by c.relname
"""

_TRIGGERS = """
select c.relname, tg.tgname, pg_get_triggerdef(tg.oid), tg.tgenabled::text
  from pg_trigger tg
  join pg_class c on c.oid = tg.tgrelid
 where c.relnamespace = %(nsp)s::regnamespace
   and not tg.tgisinternal
   and not (c.relname = any(%(exclude)s))
 order by 1, 2
"""

_FUNCTIONS = """
select p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       pg_get_function_arguments(p.oid),
       coalesce(pg_get_function_result(p.oid), ''),
       p.prokind::text,
       l.lanname,
       p.provolatile::text,
       p.proisstrict,
       p.proparallel::text,
       p.prosecdef,
       p.proleakproof,
       p.proretset,
       coalesce(array_to_string(array(select s from unnest(p.proconfig) s order by s), ','), ''),
       p.procost::float8,
       p.prorows::float8,
       coalesce(p.proacl::text, ''),
       md5(coalesce(p.prosrc, '')),
       coalesce(obj_description(p.oid, 'pg_proc'), '')
  from pg_proc p
  join pg_language l on l.oid = p.prolang
 where p.pronamespace = %(nsp)s::regnamespace
 order by 1
"""

_TYPES = """
select t.typname,
       t.typtype::text,
       coalesce(t.typacl::text, ''),
       coalesce(obj_description(t.oid, 'pg_type'), ''),
       case when t.typtype = 'c' then
           coalesce((select json_agg(json_build_array(a.attname,
                                                      format_type(a.atttypid, a.atttypmod))
                                     order by a.attnum)::text
                       from pg_attribute a
                      where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped),
                    '[]')
       when t.typtype = 'e' then
           coalesce((select json_agg(e.enumlabel order by e.enumsortorder)::text
                       from pg_enum e where e.enumtypid = t.oid), '[]')
       when t.typtype = 'd' then
           json_build_array(format_type(t.typbasetype, t.typtypmod), t.typnotnull,
                            coalesce(t.typdefault, ''))::text
       else '' end
  from pg_type t
  left join pg_class c on c.oid = t.typrelid
 where t.typnamespace = %(nsp)s::regnamespace
   and t.typcategory <> 'A'                        -- array types follow their element
   and (t.typtype <> 'c' or c.relkind = 'c')       -- not the row types of tables
 order by t.typname
"""

_SCHEMA = """
select coalesce(n.nspacl::text, ''), coalesce(obj_description(n.oid, 'pg_namespace'), '')
  from pg_namespace n where n.nspname = %(nsp)s
"""


def snapshot(
    conn: psycopg.Connection[Any],
    schema: str = "pgbatch",
    *,
    exclude_tables: Iterable[str] = (),
    data_tables: Iterable[str] = (),
    sections: Sequence[str] | None = None,
) -> Snapshot:
    """Return the catalog of ``schema`` as sorted, JSON-serialisable data.

    Args:
        conn: Any connection to the database (read-only use).
        schema: The schema to describe.
        exclude_tables: Tables left out, with their columns, constraints,
            indexes and triggers (e.g. ``alembic_version``, which only a
            migrated database has).
        data_tables: Tables whose rows are part of the snapshot (``data``).
        sections: Restrict the snapshot to these sections (see the module
            docstring); all of them by default.
    """
    params = {"nsp": schema, "exclude": list(exclude_tables)}
    out: Snapshot = {}

    def want(name: str) -> bool:
        return sections is None or name in sections

    def rows(query: str) -> list[tuple[Any, ...]]:
        return conn.execute(query, params).fetchall()

    if want("schema"):
        found = rows(_SCHEMA)
        out["schema"] = {"acl": found[0][0], "comment": found[0][1]} if found else None
    if want("tables"):
        tables: dict[str, Any] = {}
        for name, kind, persistence, options, acl, viewdef, comment in rows(_RELATIONS):
            tables[name] = {
                "kind": kind,
                "persistence": persistence,
                "options": options,
                "acl": acl,
                "viewdef": viewdef,
                "comment": comment,
                "columns": [],
            }
        for table, num, col, typ, notnull, default, ident, gen, coll, acl, comment in rows(
            _COLUMNS
        ):
            tables[table]["columns"].append(
                {
                    "position": num,
                    "name": col,
                    "type": typ,
                    "not_null": notnull,
                    "default": default,
                    "identity": ident,
                    "generated": gen,
                    "collation": coll,
                    "acl": acl,
                    "comment": comment,
                }
            )
        out["tables"] = tables
    if want("constraints"):
        constraints: dict[str, dict[str, str]] = {}
        for owner, name, kind, definition in rows(_CONSTRAINTS):
            constraints.setdefault(owner, {})[name] = f"[{kind}] {definition}"
        out["constraints"] = constraints
    if want("indexes"):
        indexes: dict[str, dict[str, str]] = {}
        for table, name, definition in rows(_INDEXES):
            indexes.setdefault(table, {})[name] = definition
        out["indexes"] = indexes
    if want("sequences"):
        out["sequences"] = {
            r[0]: {
                "type": r[1],
                "start": r[2],
                "increment": r[3],
                "min": r[4],
                "max": r[5],
                "cache": r[6],
                "cycle": r[7],
                "owned_by": r[8],
                "acl": r[9],
            }
            for r in rows(_SEQUENCES)
        }
    if want("triggers"):
        triggers: dict[str, dict[str, str]] = {}
        for table, name, definition, enabled in rows(_TRIGGERS):
            triggers.setdefault(table, {})[name] = f"{definition} [enabled={enabled}]"
        out["triggers"] = triggers
    if want("functions"):
        out["functions"] = {
            r[0]: {
                "arguments": r[1],
                "result": r[2],
                "kind": r[3],
                "language": r[4],
                "volatility": r[5],
                "strict": r[6],
                "parallel": r[7],
                "security_definer": r[8],
                "leakproof": r[9],
                "returns_set": r[10],
                "config": r[11],
                "cost": r[12],
                "rows": r[13],
                "acl": r[14],
                "body_md5": r[15],
                "comment": r[16],
            }
            for r in rows(_FUNCTIONS)
        }
    if want("types"):
        out["types"] = {
            r[0]: {"kind": r[1], "acl": r[2], "comment": r[3], "definition": r[4]}
            for r in rows(_TYPES)
        }
    if want("data"):
        data: dict[str, list[Any]] = {}
        for table in sorted(set(data_tables)):
            exists = conn.execute(
                "select to_regclass(%s) is not null",
                [sql.Identifier(schema, table).as_string(conn)],
            ).fetchone()
            if not (exists and exists[0]):
                continue
            query = sql.SQL("select to_jsonb(t)::text from {} t").format(
                sql.Identifier(schema, table)
            )
            texts = sorted(r[0] for r in conn.execute(query).fetchall())
            data[table] = [json.loads(t) for t in texts]
        out["data"] = data
    return out


def dumps(snap: Snapshot) -> str:
    """The snapshot as indented JSON with sorted keys (one fact per line)."""
    return json.dumps(snap, indent=2, sort_keys=True, default=str)


def diff(
    left: Snapshot, right: Snapshot, left_name: str = "left", right_name: str = "right"
) -> str:
    """A unified diff of two snapshots; empty when they are equal."""
    return "".join(
        difflib.unified_diff(
            dumps(left).splitlines(keepends=True),
            dumps(right).splitlines(keepends=True),
            fromfile=left_name,
            tofile=right_name,
            n=6,
        )
    )


def assert_same_catalog(
    left: Snapshot, right: Snapshot, left_name: str = "left", right_name: str = "right"
) -> None:
    """Fail with the unified diff when the two snapshots differ."""
    if left != right:
        raise AssertionError(
            f"catalogs differ ({left_name} vs {right_name}):\n"
            + diff(left, right, left_name, right_name)
        )
