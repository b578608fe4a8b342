"""What a migration version script calls: its frozen SQL, applied verbatim.

``migrations/versions/NNNN_*.py`` import these from ``pgbatch._migrate``
(which re-exports them); they live here so the migration runner keeps to
running alembic.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from alembic import op


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (the checksum a version pins its SQL with)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def apply_sql_file(path: Path, sha256: str) -> None:
    """Apply a version's frozen SQL file (called from a version's ``upgrade()``).

    The file must hash to ``sha256``, the checksum pinned in the version
    script: a released migration's SQL never changes, and this turns an
    accidental edit into a loud failure instead of silent drift between
    databases migrated before and after the edit. Function bodies are not
    checked at creation (``check_function_bodies = off``, transaction-local).
    Online, the file runs as one simple-protocol statement batch on alembic's
    connection; offline (``--sql``) it is copied verbatim into the script.
    """
    actual = sha256_of(path)
    if actual != sha256:
        raise RuntimeError(
            f"{path.name} was changed after release (sha256 {actual}, pinned {sha256}): "
            "frozen migrations never change; add a new version instead"
        )
    body = path.read_text(encoding="utf-8").rstrip()
    execute_sql("set local check_function_bodies = off;")
    execute_sql(body)


def execute_sql(sql: str) -> None:
    """Run literal SQL in a version script, online or offline, verbatim.

    Unlike ``op.execute(str)``, the text is not parsed for ``:name`` bind
    parameters and ``%`` is not escaped, so it can hold any PL/pgSQL.
    """
    ctx = op.get_context()
    if ctx.as_sql:
        ctx.impl.static_output(sql.strip())
        return
    # The DBAPI cursor of alembic's connection (same transaction), called
    # without parameters: psycopg then sends the text as is, with the simple
    # query protocol, so it may hold several statements.
    dbapi_conn = op.get_bind().connection.dbapi_connection
    if dbapi_conn is None:  # pragma: no cover - alembic's connection is open
        raise RuntimeError("alembic's connection is closed")
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()
