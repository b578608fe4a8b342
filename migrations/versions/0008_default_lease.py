"""The default lease of claim, renew_lease and fence_claim read from pgbatch.limits().

Revision ID: 0008_default_lease
Revises: 0007_cron

``pgbatch.limits()`` gains ``default_lease_seconds`` (30, the lease these
functions defaulted to already), and ``claim``, ``renew_lease`` and
``fence_claim`` take their default lease from it, so SQL and
``pgbatch/_limits.py`` share one source. Behaviour is unchanged; only function
definitions change (names and parameter names kept). Downgrade restores the
definitions of 0005_bad_input and 0006_fence_claim.
"""

from __future__ import annotations

import re
from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0008_default_lease"
down_revision: str | None = "0007_cron"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0008_default_lease.sql: released SQL never changes.
SQL_SHA256 = "5b0157d1d8db4d4d8e67e9821f614b985340db9a40df015d02a873cf5d64d5cc"

#: Where the definitions this version replaces were last frozen.
_PREVIOUS = (("0005_bad_input", "limits"), ("0005_bad_input", "claim"),
             ("0005_bad_input", "renew_lease"), ("0006_fence_claim", "fence_claim"))


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def _definition_in(version: str, function: str) -> str:
    """The ``create or replace function pgbatch.<function>`` statement of a frozen version."""
    text = Path(__file__).with_name(f"{version}.sql").read_text(encoding="utf-8")
    match = re.search(rf"^create or replace function pgbatch\.{function}\(.*?^\$\$;\n", text,
                      flags=re.MULTILINE | re.DOTALL)
    if match is None:
        raise RuntimeError(f"{version}.sql does not define pgbatch.{function}")
    return match.group(0)


def downgrade() -> None:
    execute_sql("set local check_function_bodies = off;")
    for version, function in _PREVIOUS:
        execute_sql(_definition_in(version, function))
    execute_sql("select pgbatch._apply_privileges();")
