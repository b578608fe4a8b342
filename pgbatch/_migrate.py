"""Schema migrations: alembic, run from code, with no ``alembic.ini`` on disk.

How it fits together
--------------------

* The alembic environment lives in ``migrations/`` (packaged as
  ``pgbatch/_migrations``): ``env.py`` plus ``versions/``. Each version applies
  a *frozen* SQL file that sits next to it (``0001_initial.sql`` …) and never
  changes after release; ``sql/`` is the canonical, current schema, and a test
  proves that a fresh install from ``sql/`` equals the upgrade path.
* The version table is ``pgbatch.alembic_version``, so an application's own
  alembic history (``public.alembic_version``) is never touched.
* One transaction for the whole upgrade, which starts by taking the
  transaction-level advisory lock :data:`MIGRATION_LOCK_KEY`. Twenty replicas
  that run ``pgbatch migrate`` at once queue on that lock: the first applies
  every pending version, the others then read the version table, find nothing
  to do and commit an empty transaction. PostgreSQL has transactional DDL, so
  a failed upgrade leaves the database exactly as it was.
* alembic keeps its ``context`` and ``op`` objects in module globals, so two
  threads of one process cannot run alembic at the same time. Every alembic
  command here runs under a process-wide lock; :func:`upgrade` takes the
  database advisory lock *before* the process lock, so threads still queue on
  the database lock exactly as separate processes do (and the test of
  concurrent upgrades exercises the database lock, not the Python one).

Public functions (used by the ``pgbatch migrate`` CLI and by workers):
:func:`upgrade`, :func:`upgrade_sql`, :func:`current`, :func:`head`,
:func:`check_schema`; :func:`downgrade` exists for development and tests.
See ``docs/migrations.md`` for how to add a version.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from pgbatch._errors import MigrationError, SchemaNotMigrated, translate
from pgbatch._install import SCHEMA_COMPAT
from pgbatch._migration_sql import apply_sql_file, execute_sql, sha256_of

__all__ = [
    "MIGRATION_LOCK_KEY",
    "VERSION_TABLE",
    "VERSION_TABLE_SCHEMA",
    "MigrationError",
    "SchemaNotMigrated",
    "apply_sql_file",
    "check_schema",
    "connect",
    "current",
    "downgrade",
    "execute_sql",
    "head",
    "sha256_of",
    "sqlalchemy_url",
    "upgrade",
    "upgrade_sql",
]

#: Schema of alembic's version table (``pgbatch.alembic_version``).
VERSION_TABLE_SCHEMA = "pgbatch"
#: Name of alembic's version table inside :data:`VERSION_TABLE_SCHEMA`.
VERSION_TABLE = "alembic_version"
#: Key of the transaction-level advisory lock that serialises migrations
#: (``pg_advisory_xact_lock(bigint)``): the bytes of ``"pgbatch"`` followed by
#: ``0x01`` ("migrations"). Other pgbatch advisory locks use other low bytes.
MIGRATION_LOCK_KEY = int.from_bytes(b"pgbatch\x01", "big")

# alembic's `context`/`op` proxies are module globals: one alembic command per
# process at a time (see the module docstring).
_ALEMBIC_LOCK = threading.RLock()

_DRIVER = "postgresql+psycopg"


# --------------------------------------------------------------------------
# DSNs and connections
# --------------------------------------------------------------------------


def sqlalchemy_url(dsn: str) -> URL:
    """Convert a libpq DSN to a SQLAlchemy URL for the psycopg 3 driver.

    Accepts a keyword string (``host=127.0.0.1 port=5432 dbname=x``), a libpq
    URI (``postgresql://…`` / ``postgres://…``) or a SQLAlchemy URL
    (``postgresql+psycopg://…``, returned as is). User, password and database
    go into the URL; every other libpq parameter (``host``, ``port``,
    ``sslmode``, …) goes into the query string, which the psycopg dialect hands
    to libpq unchanged, so Unix-socket directories and multi-host lists keep
    working. An empty DSN means libpq's defaults (``PGHOST``, ``PGUSER``, …).
    """
    stripped = dsn.strip()
    if stripped.startswith("postgresql+"):
        return make_url(stripped)
    params = {k: str(v) for k, v in conninfo_to_dict(stripped).items() if v is not None}
    user = params.pop("user", None)
    password = params.pop("password", None)
    dbname = params.pop("dbname", None)
    return URL.create(
        _DRIVER,
        username=user,
        password=password,
        database=dbname,
        query=dict(sorted(params.items())),
    )


@contextmanager
def connect(dsn: str) -> Iterator[Connection]:
    """One SQLAlchemy connection (no pool) to ``dsn``; the engine is disposed after."""
    engine = create_engine(sqlalchemy_url(dsn), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


# --------------------------------------------------------------------------
# alembic configuration
# --------------------------------------------------------------------------


@contextmanager
def _script_location() -> Iterator[Path]:
    """The packaged alembic directory (``pgbatch/_migrations``) as a real path."""
    ref = resources.files("pgbatch").joinpath("_migrations")
    with resources.as_file(ref) as path:
        if not path.joinpath("env.py").is_file():
            raise RuntimeError(
                f"pgbatch migrations not found at {path}: the installation is incomplete"
            )
        yield path


def _config(location: Path, **attributes: Any) -> Config:
    """An alembic Config built in memory (no ini file)."""
    cfg = Config(output_buffer=attributes.pop("output_buffer", None))
    cfg.set_main_option("script_location", str(location))
    # One version per file; file names start with the revision id.
    cfg.set_main_option("file_template", "%%(rev)s")
    cfg.attributes.update(attributes)
    return cfg


def head() -> str:
    """Return the head revision of the migrations shipped with this pgbatch."""
    with _script_location() as location:
        script = ScriptDirectory.from_config(_config(location))
        rev = script.get_current_head()
    if rev is None:  # pragma: no cover - the package always ships 0001
        raise RuntimeError("pgbatch ships no migrations")
    return rev


def _current_heads(conn: Connection) -> tuple[str, ...]:
    ctx = MigrationContext.configure(
        conn,
        opts={"version_table_schema": VERSION_TABLE_SCHEMA, "version_table": VERSION_TABLE},
    )
    return tuple(ctx.get_current_heads())


# --------------------------------------------------------------------------
# Public commands
# --------------------------------------------------------------------------


def current(dsn: str) -> str | None:
    """Return the revision the database at ``dsn`` is migrated to, or None.

    None means pgbatch was never migrated there (no ``pgbatch.alembic_version``
    or an empty one). Reads only; takes no lock.
    """
    with connect(dsn) as conn:
        heads = _current_heads(conn)
        conn.rollback()
    if len(heads) > 1:  # pragma: no cover - pgbatch's history is linear
        raise RuntimeError(f"database has several pgbatch heads: {', '.join(heads)}")
    return heads[0] if heads else None


def upgrade(dsn: str, revision: str = "head") -> list[str]:
    """Migrate the database at ``dsn`` to ``revision`` (default: the newest).

    Returns the revisions applied, oldest first; an empty list when the
    database was already there. Safe to run from many processes (or threads)
    at once: they queue on the advisory lock :data:`MIGRATION_LOCK_KEY`, each
    version is applied exactly once, and the others find nothing to do. The
    whole upgrade is one transaction: on error nothing is applied.

    Raises:
        MigrationError: schema ``pgbatch`` exists but was not created by
            ``pgbatch migrate`` (no version table), so its revision is unknown.
        alembic.util.CommandError: ``revision`` is unknown or not ahead.
        sqlalchemy.exc.DBAPIError: a version failed; the transaction was
            rolled back.
    """
    return _run_online(dsn, "upgrade", revision)


def downgrade(dsn: str, revision: str) -> list[str]:
    """Revert the database at ``dsn`` to ``revision`` (``"base"``: remove pgbatch).

    For development and tests. Returns the revisions reverted, newest first.
    Reverting ``0001`` drops every pgbatch object but keeps the (then empty)
    ``pgbatch.alembic_version`` table and schema ``pgbatch``; ``DROP SCHEMA
    pgbatch CASCADE`` removes those too.
    """
    return _run_online(dsn, "downgrade", revision)


def _run_online(dsn: str, verb: str, revision: str) -> list[str]:
    applied: list[str] = []
    with connect(dsn) as conn, conn.begin():
        # The database lock first, then the process lock: threads of one
        # process queue on PostgreSQL like separate processes do.
        conn.execute(text("select pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        if verb == "upgrade":
            _refuse_unmanaged_schema(conn)
        with _ALEMBIC_LOCK, _script_location() as location:
            cfg = _config(location, connection=conn, pgbatch_applied=applied)
            if verb == "upgrade":
                command.upgrade(cfg, revision)
            else:
                command.downgrade(cfg, revision)
    return applied


def _refuse_unmanaged_schema(conn: Connection) -> None:
    """Fail clearly on a pgbatch schema that alembic does not know about.

    A schema installed straight from ``sql/`` (``pgbatch._install``, as test
    databases are) has no version table; upgrading it would try to create
    everything again and fail on the first existing table.
    """
    unmanaged = conn.execute(
        text(
            "select to_regclass('pgbatch.meta') is not null"
            " and to_regclass('pgbatch.alembic_version') is null"
        )
    ).scalar_one()
    if unmanaged:
        raise MigrationError(
            "schema pgbatch exists but was not installed by `pgbatch migrate` (it has no "
            "pgbatch.alembic_version table), so its revision is unknown; migrate a new "
            "database, or drop schema pgbatch first if its data can go"
        )


def upgrade_sql(revision: str = "head", *, from_revision: str | None = None) -> str:
    """Return the SQL script that migrates a database to ``revision`` (offline mode).

    What ``pgbatch migrate --sql`` prints for a DBA to review and apply with
    ``psql -v ON_ERROR_STOP=1 -d <database> -f upgrade.sql`` (the script
    carries its own BEGIN/COMMIT, so do not add ``-1``). From an empty
    database (``from_revision=None``) it creates schema ``pgbatch``, the
    ``pgbatch.alembic_version`` table and its row, and yields the same
    schema as :func:`upgrade`. With ``from_revision`` (the database's
    :func:`current` revision) it holds only the later versions. The script
    takes the same advisory lock as :func:`upgrade`.
    """
    target = revision if from_revision is None else f"{from_revision}:{revision}"
    buffer = io.StringIO()
    buffer.write(
        f"-- pgbatch schema migration: {from_revision or 'empty database'} -> {revision}\n"
        "-- Generated by `pgbatch migrate --sql`. One transaction; apply with\n"
        "--   psql -v ON_ERROR_STOP=1 -d <database> -f <this file>\n\n"
    )
    with _ALEMBIC_LOCK, _script_location() as location:
        cfg = _config(location, output_buffer=buffer)
        command.upgrade(cfg, target, sql=True)
    return buffer.getvalue()


def check_schema(dsn: str, *, supported: int = SCHEMA_COMPAT) -> str | None:
    """Check, before a worker starts, that this code can run against ``dsn``.

    Returns the database's revision (None for a database installed straight
    from ``sql/``, as test databases are, which has no version table).

    Raises:
        SchemaNotMigrated: there is no pgbatch schema at all, or the database
            is at an older revision than this pgbatch ships (run ``pgbatch
            migrate`` first; deploy order is migrate, then roll out workers).
        IncompatibleSchema: a newer pgbatch migrated the database with a
            breaking change (``pgbatch.meta`` ``schema_compat`` above
            ``supported``): upgrade pgbatch on this host.

    A database at a *newer* revision that is still compatible passes: that is
    an older worker during a rolling deploy.
    """
    with connect(dsn) as conn:
        installed = conn.execute(
            text("select to_regprocedure('pgbatch.check_compat(integer)') is not null")
        ).scalar_one()
        heads = _current_heads(conn)
        if not installed:
            where = conn.engine.url.database or "the database"
            raise SchemaNotMigrated(
                f"{where} has no pgbatch schema: run `pgbatch migrate` against it first"
            )
        try:
            conn.execute(text("select pgbatch.check_compat(:supported)"), {"supported": supported})
        except DBAPIError as exc:
            if isinstance(exc.orig, psycopg.Error):
                mapped = translate(exc.orig)
                if mapped is not None:
                    raise mapped from exc
            raise
        finally:
            conn.rollback()
    problem = _revision_problem(heads, _history())
    if problem is not None:
        raise SchemaNotMigrated(problem)
    return heads[0] if heads else None


def _history() -> list[str]:
    """Every shipped revision, oldest first."""
    with _script_location() as location:
        script = ScriptDirectory.from_config(_config(location))
        return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _revision_problem(heads: tuple[str, ...], history: list[str]) -> str | None:
    """Why code shipping ``history`` must not run against a database at ``heads``.

    None when the database is at this code's head, at a revision this code
    does not know (a newer pgbatch migrated it: the compat level decides), or
    has no version table (installed straight from ``sql/``).
    """
    if not heads or not history or not all(h in history for h in heads):
        return None
    if heads == (history[-1],):
        return None
    return (
        f"the database's pgbatch schema is at revision {', '.join(heads)}; this pgbatch "
        f"needs {history[-1]}: run `pgbatch migrate` first"
    )
