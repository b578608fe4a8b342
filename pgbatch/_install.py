"""The canonical SQL shipped with the package, and how to apply it.

The files under ``sql/`` (packaged as ``pgbatch/_sql``) are read through
package resources, never through the source tree, so an installed wheel
carries everything ``pgbatch migrate`` needs. Order: ``schema/*.sql`` sorted
by name, then ``functions/*.sql`` sorted by name. Function bodies are not
checked at creation (``check_function_bodies = off``), so functions may call
each other regardless of file order.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

import psycopg

#: The breaking-change level of the schema this code was written for. A
#: database whose ``pgbatch.meta.schema_compat`` is higher was migrated by a
#: newer pgbatch with a breaking change; this code refuses to run against it.
SCHEMA_COMPAT = 1


def _sql_root() -> Traversable:
    return resources.files("pgbatch").joinpath("_sql")


def _sorted_sql(folder: Traversable) -> list[Traversable]:
    return sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)


def sql_files() -> list[tuple[str, str]]:
    """Return ``(relative name, text)`` of every install file, in apply order."""
    root = _sql_root()
    out: list[tuple[str, str]] = []
    for part in ("schema", "functions"):
        for f in _sorted_sql(root.joinpath(part)):
            out.append((f"{part}/{f.name}", f.read_text(encoding="utf-8")))
    return out


def schema_sql() -> str:
    """The whole schema as one SQL script (what ``pgbatch migrate --sql`` prints)."""
    chunks = ["set check_function_bodies = off;\n"]
    for name, text in sql_files():
        chunks.append(f"-- ==== {name} ====\n{text.rstrip()}\n")
    chunks.append("reset check_function_bodies;\n")
    return "\n".join(chunks)


def install_schema(conn: psycopg.Connection[object]) -> None:
    """Create schema ``pgbatch`` and every function on ``conn`` (one transaction).

    For an empty database. Production installs go through ``pgbatch migrate``
    (alembic), which applies frozen copies of the same SQL.
    """
    with conn.transaction():
        conn.execute(schema_sql().encode())


def testing_sql(name: str) -> str:
    """Text of a file under ``sql/testing/`` (test-database helpers)."""
    return _sql_root().joinpath("testing", name).read_text(encoding="utf-8")


def enable_test_clock(conn: psycopg.Connection[object]) -> None:
    """Let ``pgbatch.now()`` honour ``SET pgbatch.fake_now`` in this database.

    Requires a superuser or the schema owner. Never run it on a production
    database: any session could then move the clock that leases depend on.
    """
    with conn.transaction():
        conn.execute(testing_sql("enable_test_clock.sql").encode())
