"""pgbatch.schema (SQLAlchemy Core tables) matches a migrated database.

Two independent checks, because each sees what the other misses:

1. alembic's autogenerate comparison (``compare_metadata``) against a database
   migrated with ``pgbatch migrate``: tables, columns, types, nullability,
   server defaults, identity columns, primary keys and indexes (columns,
   order, uniqueness). Every comparison is on (``compare_type`` and
   ``compare_server_default`` included); nothing had to be turned off.
   alembic does not compare check constraints, partial-index predicates or
   table storage options.
2. ``metadata.create_all`` into an empty database, and a catalog diff
   (tests/catalog.py) of its tables, columns, constraints, indexes and
   sequences against the migrated database: this covers check constraints,
   ``postgresql_where`` predicates, ``DESC`` index columns and
   ``fillfactor``, in PostgreSQL's own normalised text.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from psycopg import sql
from sqlalchemy import BigInteger, Column, MetaData, Text, create_engine, text
from sqlalchemy.engine import Connection

from pgbatch import _migrate, schema
from tests.catalog import assert_same_catalog, snapshot

if TYPE_CHECKING:
    from tests.conftest import PgTestServer

TABLE_SECTIONS = ("tables", "constraints", "indexes", "sequences", "triggers")


@pytest.fixture(scope="module")
def databases(pg_server: PgTestServer) -> Iterator[dict[str, str]]:
    """Two databases: one migrated to head, one empty (DSNs by role)."""
    admin = pg_server.admin_dsn()
    names = {
        "migrated": f"pgbatch_meta_m_{secrets.token_hex(4)}",
        "empty": f"pgbatch_meta_e_{secrets.token_hex(4)}",
    }
    with psycopg.connect(admin, autocommit=True) as c:
        for name in names.values():
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        dsns = {role: pg_server.admin_dsn(name) for role, name in names.items()}
        _migrate.upgrade(dsns["migrated"])
        yield dsns
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            for name in names.values():
                c.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Only schema pgbatch, and not alembic's version table."""
    if type_ == "schema":
        return name == schema.SCHEMA
    if type_ == "table":
        return name != _migrate.VERSION_TABLE
    return True


def _diffs(conn: Connection, metadata: MetaData) -> list[Any]:
    ctx = MigrationContext.configure(
        conn,
        opts={
            "include_schemas": True,
            "include_name": _include_name,
            "compare_type": True,
            "compare_server_default": True,
        },
    )
    return list(compare_metadata(ctx, metadata))


def test_alembic_compare_reports_no_difference(databases: dict[str, str]) -> None:
    engine = create_engine(_migrate.sqlalchemy_url(databases["migrated"]))
    try:
        with engine.connect() as conn:
            assert _diffs(conn, schema.metadata) == []
    finally:
        engine.dispose()


def test_alembic_compare_sees_drift(databases: dict[str, str]) -> None:
    """Negative control: the comparison above is live (filters let pgbatch's tables through)."""
    drifted = MetaData(schema=schema.SCHEMA)
    for table in schema.metadata.tables.values():
        table.to_metadata(drifted)
    job = drifted.tables["pgbatch.job"]
    job.c.priority.type = BigInteger()  # type drift
    job.c.dedup_key.nullable = False  # nullability drift
    job.indexes.remove(next(i for i in job.indexes if i.name == "job_lease_idx"))
    job.append_column(Column("extra", Text))
    drifted.remove(drifted.tables["pgbatch.kv"])

    engine = create_engine(_migrate.sqlalchemy_url(databases["migrated"]))
    try:
        with engine.connect() as conn:
            found = repr(_diffs(conn, drifted))
    finally:
        engine.dispose()
    assert "modify_type" in found
    assert "modify_nullable" in found
    assert "job_lease_idx" in found
    assert "add_column" in found
    assert "remove_table" in found
    assert "'kv'" in found


def test_every_table_of_the_schema_is_mirrored(databases: dict[str, str]) -> None:
    with psycopg.connect(databases["migrated"]) as c:
        in_db = {
            r[0]
            for r in c.execute(
                "select relname from pg_class where relnamespace = 'pgbatch'::regnamespace"
                " and relkind in ('r', 'p', 'v', 'm', 'f') and relname <> 'alembic_version'"
            )
        }
    assert {t.name for t in schema.metadata.tables.values()} == in_db
    assert set(schema.__all__) >= in_db


def _without_privileges(snap: Any) -> Any:
    """``snap`` without ACLs and autovacuum settings: ``pgbatch._apply_privileges()``
    sets those after the tables exist, and ``create_all`` knows nothing of them."""
    if isinstance(snap, dict):
        out = {k: _without_privileges(v) for k, v in snap.items() if k != "acl"}
        if isinstance(out.get("options"), str):
            out["options"] = ",".join(o for o in out["options"].strip("{}").split(",")
                                      if o and not o.startswith("autovacuum_"))
        return out
    if isinstance(snap, list):
        return [_without_privileges(v) for v in snap]
    return snap


def test_create_all_equals_migrated_catalog(databases: dict[str, str]) -> None:
    engine = create_engine(_migrate.sqlalchemy_url(databases["empty"]))
    try:
        with engine.begin() as conn:
            conn.execute(text("create schema pgbatch"))
            schema.metadata.create_all(conn)
    finally:
        engine.dispose()
    with (
        psycopg.connect(databases["migrated"]) as migrated,
        psycopg.connect(databases["empty"]) as created,
    ):
        expected = _without_privileges(
            snapshot(migrated, exclude_tables=("alembic_version",), sections=TABLE_SECTIONS))
        assert len(expected["tables"]) == len(schema.metadata.tables)
        assert_same_catalog(
            expected,
            _without_privileges(snapshot(created, sections=TABLE_SECTIONS)),
            "pgbatch migrate",
            "pgbatch.schema metadata.create_all",
        )
