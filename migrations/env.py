"""alembic environment of pgbatch (run by pgbatch._migrate; no alembic.ini needed).

Every run, online or offline, is ONE transaction that starts with:

1. ``pg_advisory_xact_lock(MIGRATION_LOCK_KEY)``: concurrent migrators queue
   here; whoever comes second reads the version table only after the first
   committed, and finds nothing left to do;
2. ``create schema if not exists pgbatch``: the version table
   ``pgbatch.alembic_version`` lives in it, and alembic creates that table
   before the first version runs.

Online, ``config.attributes["connection"]`` is the connection to use (already
inside a transaction, which the caller commits); without it, the
``sqlalchemy.url`` main option (a SQLAlchemy URL or a libpq DSN) is used and
this script owns the transaction. ``config.attributes["pgbatch_applied"]``,
when present, is a list that receives each revision id as it is applied.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from pgbatch._migrate import (
    MIGRATION_LOCK_KEY,
    VERSION_TABLE,
    VERSION_TABLE_SCHEMA,
    sqlalchemy_url,
)

config = context.config


def _record(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
    applied = config.attributes.get("pgbatch_applied")
    if applied is not None:
        applied.append(step.up_revision_id)


def _options() -> dict[str, Any]:
    return {
        "version_table": VERSION_TABLE,
        "version_table_schema": VERSION_TABLE_SCHEMA,
        # One transaction for the whole upgrade: the advisory lock is held
        # until every pending version is applied and the version row written.
        "transaction_per_migration": False,
        "on_version_apply": _record,
        "target_metadata": None,
    }


def _prepare() -> None:
    # Literal SQL with no bind parameters: identical online and in --sql output.
    context.execute(f"select pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
    context.execute(f"create schema if not exists {VERSION_TABLE_SCHEMA}")


def run_offline() -> None:
    """``--sql`` mode: write the script to the config's output buffer."""
    context.configure(dialect_name="postgresql", literal_binds=True, **_options())
    with context.begin_transaction():
        _prepare()
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    context.configure(connection=connection, **_options())
    with context.begin_transaction():
        _prepare()
        context.run_migrations()


def run_online() -> None:
    """Apply the migrations on a live connection."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("pgbatch migrations need a connection or a sqlalchemy.url")
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            _run_on(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
