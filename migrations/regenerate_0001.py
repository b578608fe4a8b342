"""PRE-RELEASE ONLY: rewrite versions/0001_initial.sql from sql/ and re-pin it.

Usage: python migrations/regenerate_0001.py

Until pgbatch's first release no database exists whose history we must keep,
so 0001 may still follow sql/ (run this after changing sql/; the test
``test_fresh_install_equals_upgrade_path`` tells you when). DELETE THIS
SCRIPT AT THE FIRST RELEASE: from then on 0001 is frozen and a change to
sql/ needs a new version (see docs/migrations.md).

alembic never loads this file (it reads only env.py and versions/).
"""

from __future__ import annotations

import re
from pathlib import Path

from pgbatch._install import schema_sql
from pgbatch._migrate import sha256_of

HERE = Path(__file__).resolve().parent
SQL = HERE / "versions" / "0001_initial.sql"
SCRIPT = HERE / "versions" / "0001_initial.py"

HEADER = """\
-- pgbatch migration 0001_initial: the initial schema (schema pgbatch, its tables,
-- types and every function), generated once from sql/schema/*.sql + sql/functions/*.sql
-- (pgbatch._install.schema_sql()).
-- FROZEN: never edit this file after release. Schema changes go into a new
-- version (0002_....sql) that holds only the change; 0001_initial.py pins this
-- file's sha256 and refuses to apply an edited copy.

"""


def main() -> None:
    """Write 0001_initial.sql and update SQL_SHA256 in 0001_initial.py."""
    SQL.write_text(HEADER + schema_sql(), encoding="utf-8")
    digest = sha256_of(SQL)
    script = SCRIPT.read_text(encoding="utf-8")
    updated, n = re.subn(
        r'^SQL_SHA256 = "[0-9a-f]{64}"$', f'SQL_SHA256 = "{digest}"', script, flags=re.MULTILINE
    )
    if n != 1:
        raise SystemExit(f"SQL_SHA256 line not found in {SCRIPT}")
    SCRIPT.write_text(updated, encoding="utf-8")
    print(f"{SQL.name}: sha256 {digest}")


if __name__ == "__main__":
    main()
