"""Bad input: every public function checks its arguments, raises its own PB code, changes nothing.

Revision ID: 0005_bad_input
Revises: 0004_leader_lease

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

revision = "0005_bad_input"
down_revision: str | None = "0004_leader_lease"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0005_bad_input.sql: released SQL never changes.
SQL_SHA256 = "82b57ca923f11e6be59ed08a2a7a0b6af2d1b97d0426126e04e358921169e201"


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


def _sections_of(version: str) -> dict[str, str]:
    """The function definitions of a frozen version's SQL, by file stem without its number."""
    text = Path(__file__).with_name(f"{version}.sql").read_text(encoding="utf-8")
    parts = re.split(r"^-- ==== (?:\w+/)*functions/\d+_(\w+)\.sql ====$", text, flags=re.MULTILINE)
    return {name: re.split(r"^-- ==== ", body, flags=re.MULTILINE)[0]
            for name, body in zip(parts[1::2], parts[2::2], strict=True)}


#: Functions of _RESTORED that 0002_job_reading redefined (archiving copies ``seq``).
_REDEFINED_BY_0002 = ("archive", "ack_plain")


def _definition_in(version: str, function: str) -> str:
    """The ``create or replace function pgbatch.<function>`` statement of a frozen version."""
    text = Path(__file__).with_name(f"{version}.sql").read_text(encoding="utf-8")
    match = re.search(rf"^create or replace function pgbatch\.{function}\(.*?^\$\$;\n", text,
                      flags=re.MULTILINE | re.DOTALL)
    if match is None:
        raise RuntimeError(f"{version}.sql does not define pgbatch.{function}")
    return match.group(0)


def downgrade() -> None:
    """Back to 0004: drop the added functions, restore the earlier definitions, drop limits().

    A function is restored as 0002_job_reading last defined it (``_archive``,
    ``_ack_plain``), else as 0001 did; then the privileges step runs again.
    """
    sections = _sections_of("0001_initial")
    for name in _REDEFINED_BY_0002:
        sections[name] = _definition_in("0002_job_reading", f"_{name}")
    drops = "".join(f"drop function pgbatch.{sig};\n" for sig in _ADDED)
    restored = "".join(sections[name] for name in _RESTORED)
    execute_sql("set local check_function_bodies = off;\n" + drops + restored
                + "drop function pgbatch._limit(text);\ndrop function pgbatch.limits();\n"
                + "delete from pgbatch.function_access where function_name = 'limits';\n"
                + "select pgbatch._apply_privileges();\n")
