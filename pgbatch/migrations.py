"""Schema migrations from Python: the public face of what ``pgbatch migrate`` does.

    import pgbatch

    pgbatch.migrate()                       # $PGBATCH_DSN, else the embedded server
    pgbatch.migrate("postgresql://owner@db/app")
    app.migrate()                           # the App's dsn

    from pgbatch import migrations
    migrations.current(dsn)                 # the database's revision, None if never migrated
    migrations.head()                       # the newest revision this pgbatch ships
    migrations.upgrade_sql()                # the offline script, for a DBA (psql -f)
    migrations.check_schema(dsn)            # what a worker checks at start

alembic is imported on first use, not when ``pgbatch`` is. See docs/migrations.md.
"""

from __future__ import annotations

from pgbatch._dsn import resolve_dsn


def migrate(dsn: str | None = None, revision: str = "head") -> list[str]:
    """Install or upgrade the schema to ``revision``; the revisions applied (``[]``: none).

    ``dsn`` defaults to ``$PGBATCH_DSN``, else the embedded server. Connect as
    the schema owner. Idempotent and safe from many processes at once.
    """
    from pgbatch import _migrate  # noqa: PLC0415 - alembic is slow to import

    return _migrate.upgrade(resolve_dsn(dsn), revision)


def current(dsn: str | None = None) -> str | None:
    """The database's revision; ``None`` if pgbatch was never migrated there."""
    from pgbatch import _migrate  # noqa: PLC0415

    return _migrate.current(resolve_dsn(dsn))


def head() -> str:
    """The newest revision this pgbatch ships."""
    from pgbatch import _migrate  # noqa: PLC0415

    return _migrate.head()


def upgrade_sql(revision: str = "head", *, from_revision: str | None = None) -> str:
    """The upgrade script (``pgbatch migrate --sql``), from nothing or from ``from_revision``."""
    from pgbatch import _migrate  # noqa: PLC0415

    return _migrate.upgrade_sql(revision, from_revision=from_revision)


def check_schema(dsn: str | None = None) -> str | None:
    """Raise ``SchemaNotMigrated``/``IncompatibleSchema`` unless workers may run; the revision."""
    from pgbatch import _migrate  # noqa: PLC0415

    return _migrate.check_schema(resolve_dsn(dsn))


__all__ = ["check_schema", "current", "head", "migrate", "upgrade_sql"]
