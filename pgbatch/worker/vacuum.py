"""The leader's VACUUM of the hot tables, a leader-only maintenance service.

Autovacuum looks at a database once a minute by default
(``autovacuum_naptime``); at thousands of jobs a second that lets the live
table and its claim index bloat to hundreds of megabytes, and claims slow
down. So the leader asks ``pgbatch.vacuum_stats()`` for the dead row versions
of the tables it watches, and VACUUMs one once it holds at least
``MaintenanceConfig.vacuum_dead_tuples`` of them.

VACUUM is a utility command that cannot run inside a function: it is
composed here (``psycopg.sql``) and runs on a connection of its own, so a
long one (a table that bloated during an outage) holds no pooled connection.
It uses ``SKIP_LOCKED``, so a duplicate VACUUM (autovacuum, or a leader that
was stuck and still had one in flight) makes this one skip, not wait.

Permission: VACUUM needs ownership of the table or, from PostgreSQL 17, the
``MAINTAIN`` privilege (granted to ``pgbatch_worker``). A role without it
does not get an error: the server emits a WARNING and skips the table. The
service detects both the refusal ``vacuum_stats`` predicts and that WARNING,
logs it once and stops trying for that table; dead rows are then left to
autovacuum (see the per-table thresholds set by the migration).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.errors import Diagnostic

from pgbatch._types import VacuumStat
from pgbatch.worker.services import MaintenanceContext

log = logging.getLogger("pgbatch.maintenance")

#: SQLSTATE of "skipping vacuum of ... --- lock not available" (SKIP_LOCKED).
_LOCK_NOT_AVAILABLE = "55P03"


@dataclass
class VacuumOutcome:
    """What one VACUUM statement did."""

    refused: str | None = None  # the server's WARNING when it skipped the table for permission
    skipped_locked: bool = False


@dataclass
class Vacuumer:
    """The ``vacuum`` service: VACUUM each watched table past ``dead_tuples`` dead rows."""

    dead_tuples: int
    vacuums: int = 0
    skipped_locked: int = 0
    #: ``schema.table`` names this role may not VACUUM (logged once, never tried again).
    refused: set[str] = field(default_factory=set)

    async def __call__(self, ctx: MaintenanceContext) -> None:
        """One run: check the statistics, VACUUM what needs it."""
        for table in await ctx.client.vacuum_stats():
            name = f"{table.schema_name}.{table.table_name}"
            if name in self.refused or table.dead_tuples < self.dead_tuples:
                continue
            if not table.may_vacuum:
                self._refuse(name, "its role does not own the table and lacks MAINTAIN on it")
                continue
            if not ctx.is_leader():
                return
            outcome = await vacuum_table(ctx.conninfo, table)
            if outcome.refused is not None:
                self._refuse(name, f"the server said: {outcome.refused}")
            elif outcome.skipped_locked:
                self.skipped_locked += 1
            else:
                self.vacuums += 1

    def _refuse(self, name: str, why: str) -> None:
        self.refused.add(name)
        log.warning("the maintenance leader may not VACUUM %s (%s); its dead rows are left to "
                    "autovacuum and the leader stops trying", name, why)


async def vacuum_table(conninfo: str, table: VacuumStat) -> VacuumOutcome:
    """``VACUUM (SKIP_LOCKED)`` one table on a connection of its own; reports refusals.

    A WARNING naming the table other than "lock not available" is the
    server's refusal (PostgreSQL skips a table it may not vacuum with a
    WARNING, not an error).
    """
    outcome = VacuumOutcome()

    def on_notice(diag: Diagnostic) -> None:
        if diag.severity_nonlocalized != "WARNING":
            return
        message = diag.message_primary or ""
        if diag.sqlstate == _LOCK_NOT_AVAILABLE:
            outcome.skipped_locked = True
        elif table.table_name in message:
            outcome.refused = message
        else:
            log.warning("VACUUM of %s.%s: %s", table.schema_name, table.table_name, message)

    statement = sql.SQL("vacuum (skip_locked) {}.{}").format(
        sql.Identifier(table.schema_name), sql.Identifier(table.table_name))
    async with await psycopg.AsyncConnection.connect(
            conninfo, autocommit=True, prepare_threshold=None,  # one statement; pooler-safe
            application_name="pgbatch-vacuum") as conn:
        conn.add_notice_handler(on_notice)
        try:
            await conn.execute(statement)
        except asyncio.CancelledError:
            # the worker is stopping: end the VACUUM on the server too, not only here
            with contextlib.suppress(psycopg.Error, TimeoutError):
                await conn.cancel_safe(timeout=2.0)
            raise
    return outcome
