"""Bad input: every public function checks its arguments, raises its own PB code, changes nothing.

Revision ID: 0002_bad_input
Revises: 0001_initial

Adds ``pgbatch.limits()`` (every default and limit in one place), one enqueue
path for enqueue, enqueue_many and ack effects (``_insert_jobs``), job ids
unique across live and archived jobs at every entry point, settlements that
never fail on an archived record sharing a live job's id, bounded leases,
times, retention ages and sizes, and the codes PB012 (ValueTooLarge) and
PB013 (InvalidTime). Only function definitions change; no table is touched.
"""

from __future__ import annotations

import re
from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0002_bad_input"
down_revision: str | None = "0001_initial"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0002_bad_input.sql: released SQL never changes.
SQL_SHA256 = "fe8e5590096d5d5c34b2a3919689cc669363dc091b4e0277317cd7518a0888ba"


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


#: Functions this version added (their identity arguments), dropped by downgrade().
_ADDED = (
    "_check(text[])",
    "_limit_interval(text)",
    "_queue_problem(text)",
    "_time_problem(text, timestamptz, timestamptz)",
    "_lease_problem(interval)",
    "_backoff_problem(interval, interval)",
    "_job_problem(text, jsonb, timestamptz, text, integer, timestamptz)",
    "_archive_row(pgbatch.job, text, uuid, jsonb, jsonb, timestamptz)",
    "_insert_jobs(uuid[], text[], jsonb[], timestamptz[], integer[], text[], integer[], uuid,"
    " boolean)",
    "_insert_leaders(uuid[], uuid[], text[], jsonb[], integer[], timestamptz[], integer[], text[],"
    " timestamptz)",
    "_enqueue_requests(jsonb, uuid)",
    "_apply_effects(jsonb, uuid)",
)
#: Function files of 0001 that this version replaced or removed.
_RESTORED = (
    "check_compat", "max_payload_bytes", "check_queue", "check_job_args", "backoff", "archive",
    "enqueue", "enqueue_requests", "claim", "apply_effects", "ack", "nack", "dead_letter",
    "renew_lease", "ack_plain", "ack_ids", "requeue_dead_job", "sweep_retention", "register_node",
)


def _sections_of_0001() -> dict[str, str]:
    """The function definitions of the frozen 0001 SQL, by file stem without its number."""
    text = Path(__file__).with_name("0001_initial.sql").read_text(encoding="utf-8")
    parts = re.split(r"^-- ==== (?:\w+/)*functions/\d+_(\w+)\.sql ====$", text, flags=re.MULTILINE)
    return {name: re.split(r"^-- ==== ", body, flags=re.MULTILINE)[0]
            for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def downgrade() -> None:
    """Back to 0001: drop the added functions, restore 0001's definitions, drop limits()."""
    sections = _sections_of_0001()
    drops = "".join(f"drop function pgbatch.{sig};\n" for sig in _ADDED)
    restored = "".join(sections[name] for name in _RESTORED)
    execute_sql("set local check_function_bodies = off;\n" + drops + restored
                + "drop function pgbatch._limit(text);\ndrop function pgbatch.limits();\n")
