"""The canonical SQL shipped with the package, and how to apply it.

The files under ``sql/`` (packaged as ``pgbatch/_sql``) are read through
package resources, never through the source tree, so an installed wheel
carries everything ``pgbatch migrate`` needs.

``sql/`` is grouped by domain (``core/``, ``queue/``, and whatever a new part
adds), each domain with a ``schema/`` and a ``functions/`` folder; the loader
discovers domains, it does not list them. Order: every ``*/schema/*.sql``
sorted by file name across domains (the numeric prefixes say which table may
reference which: a domain's schema numbers follow those it depends on), then
every ``*/functions/*.sql`` sorted the same way, then every
``*/privileges/*.sql`` (function-to-role rows, then the step that applies
them, ``core/privileges/999_apply_privileges.sql``). Function bodies are not
checked at creation (``check_function_bodies = off``), so functions may call
each other regardless of file order. ``sql/testing/`` holds test-database
helpers and is never installed.
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


#: The folders of a domain, in apply order. ``privileges/`` comes last: it says
#: which role may execute each public function and applies SECURITY DEFINER and
#: the grants (``pgbatch._apply_privileges()``), which ``create or replace
#: function`` would otherwise reset (docs/roles.md).
_PARTS = ("schema", "functions", "privileges")
#: Folders under ``sql/`` that are not domains.
_NOT_DOMAINS = frozenset({"testing"})


def _domain_files(part: str) -> list[tuple[str, Traversable]]:
    """``(domain, file)`` of every ``sql/<domain>/<part>/*.sql``, sorted by file name."""
    found: list[tuple[str, Traversable]] = []
    for domain in _sql_root().iterdir():
        if not domain.is_dir() or domain.name in _NOT_DOMAINS or domain.name.startswith((".", "_")):
            continue
        folder = domain.joinpath(part)
        if folder.is_dir():
            found.extend((domain.name, f) for f in folder.iterdir() if f.name.endswith(".sql"))
    return sorted(found, key=lambda item: (item[1].name, item[0]))


def sql_files() -> list[tuple[str, str]]:
    """Return ``(relative name, text)`` of every install file, in apply order."""
    return [
        (f"{domain}/{part}/{f.name}", f.read_text(encoding="utf-8"))
        for part in _PARTS
        for domain, f in _domain_files(part)
    ]


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

    Replaces ``pgbatch.now()`` with a version that honours the setting in
    superuser sessions only (no application role, nor the pgbatch group
    roles, can move it). Requires a superuser or the schema owner. Never run
    it on a production database.
    """
    with conn.transaction():
        conn.execute(testing_sql("enable_test_clock.sql").encode())
