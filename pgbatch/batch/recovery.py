"""The batch recovery service: a maintenance service on every worker node that
recovers executions whose worker was lost (``pgbatch.recover_executions``,
BATCH.md §7), and registers the node's job definitions when it first runs.

Every node runs it (``EVERY_NODE``), at its start and then every
``interval`` seconds; the SQL locks each execution with SKIP LOCKED and checks
it again under the lock, so an execution is recovered exactly once however
many nodes sweep. A node that restarts under the same node id ends its
previous incarnation's claims when it registers (``register_node``), and its
first sweep recovers their executions at once, without waiting for a lease.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from psycopg.types.json import Jsonb

from pgbatch.batch.definition import Job
from pgbatch.worker.services import EVERY_NODE, MaintenanceContext, MaintenanceService

#: The service's name in the maintenance loop and its stats.
SERVICE_NAME = "batch_recovery"


class BatchRecovery:
    """The service's state: which definitions it registered, how many it recovered."""

    def __init__(self, jobs: Sequence[Job], grace: timedelta, limit: int,
                 on_registered: Callable[[dict[str, str]], None] | None = None) -> None:
        self.jobs = list(jobs)
        self.grace = grace
        self.limit = limit
        self.recovered = 0
        self.fingerprints: dict[str, str] | None = None
        self._on_registered = on_registered

    async def __call__(self, ctx: MaintenanceContext) -> None:
        """Register the definitions (first run), then recover while calls come back full."""
        async with ctx.client.pool.connection() as conn:
            if self.fingerprints is None:
                found: dict[str, str] = {}
                async with conn.transaction():
                    for job in self.jobs:
                        cur = await conn.execute("select pgbatch.register_job(%s, %s)",
                                                 [job.name, Jsonb(job.definition())])
                        row = await cur.fetchone()
                        assert row is not None
                        found[job.name] = str(row[0])
                self.fingerprints = found
                if self._on_registered is not None:
                    self._on_registered(found)
            while True:
                async with conn.transaction():
                    cur = await conn.execute("select pgbatch.recover_executions(%s, %s)",
                                             [self.grace, self.limit])
                    row = await cur.fetchone()
                n = int(row[0]) if row is not None else 0
                self.recovered += n
                if n < self.limit:
                    return


def recovery_service(jobs: Sequence[Job] = (), *, interval: float = 5.0,
                     grace: timedelta = timedelta(seconds=0), limit: int = 100,
                     on_registered: Callable[[dict[str, str]], None] | None = None,
                     ) -> MaintenanceService:
    """The batch recovery service (see the module docstring) for a worker of ``jobs``.

    ``grace``: how long after a work item's lease expired its execution is
    recovered (the queue's reaper usually gives the item back first).
    """
    return MaintenanceService(SERVICE_NAME, interval,
                              BatchRecovery(jobs, grace, limit, on_registered), EVERY_NODE)
