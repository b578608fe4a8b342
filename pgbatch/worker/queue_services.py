"""The queue's own maintenance services, registered by every ``Maintenance``.

- ``heartbeat`` (every node, each ``interval``): ``heartbeat_node``; a node
  that another process registered again under its node_id stops.
- ``reap_expired`` (leader, each ``interval``): ends claims whose lease
  expired (calls again while a call comes back full).
- ``announce_due`` (leader, each ``interval``): announces jobs that became
  due (the safety net of wakeups).
- ``compact_counters`` (leader, each ``interval * compact_every``): folds
  the archived-job counter deltas.
- ``sweep_retention`` (leader, each ``interval * sweep_every``): deletes
  old done and dead records.
- ``vacuum`` (leader, each ``max(interval, vacuum_min_seconds)``): VACUUMs
  the live table past ``vacuum_dead_tuples`` dead rows (``vacuum.py``).

Every one is safe to run on several nodes at once (``FOR UPDATE SKIP
LOCKED``, watermarks updated under row locks, ``VACUUM (SKIP_LOCKED)``), so
a leader that was stuck during a takeover and finishes a run afterwards does
no harm; leadership only keeps the work from being done N times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from pgbatch.worker.services import EVERY_NODE, LEADER, MaintenanceContext, MaintenanceService
from pgbatch.worker.vacuum import Vacuumer

if TYPE_CHECKING:
    from pgbatch.worker.maintenance import MaintenanceConfig, MaintenanceStats

log = logging.getLogger("pgbatch.maintenance")


class QueueServices:
    """The queue's services of one maintenance loop; they count into its stats."""

    def __init__(self, config: MaintenanceConfig, stats: MaintenanceStats,
                 on_replaced: Callable[[], None] | None) -> None:
        self.config = config
        self.stats = stats
        self.on_replaced = on_replaced
        self.vacuumer = Vacuumer(config.vacuum_dead_tuples)

    def services(self) -> list[MaintenanceService]:
        """The services, in the order a tick starts them."""
        cfg = self.config
        found = [
            MaintenanceService("heartbeat", cfg.interval, self.heartbeat, EVERY_NODE),
            MaintenanceService("reap_expired", cfg.interval, self.reap_expired, LEADER),
            MaintenanceService("announce_due", cfg.interval, self.announce_due, LEADER),
            MaintenanceService("compact_counters", cfg.interval * cfg.compact_every,
                               self.compact_counters, LEADER),
            MaintenanceService("sweep_retention", cfg.interval * cfg.sweep_every,
                               self.sweep_retention, LEADER),
        ]
        if cfg.vacuum_dead_tuples > 0:
            found.append(MaintenanceService(
                "vacuum", max(cfg.interval, cfg.vacuum_min_seconds), self.vacuum, LEADER))
        return found

    async def heartbeat(self, ctx: MaintenanceContext) -> None:
        """Record that this node incarnation is alive; stop it if another replaced it."""
        alive = await ctx.client.heartbeat_node(ctx.node_id, ctx.boot_id)
        if not alive and not self.stats.replaced:
            self.stats.replaced = True
            log.error("node %s was registered again by another process; this one is stale "
                      "and stops claiming", ctx.node_id)
            if self.on_replaced is not None:
                self.on_replaced()

    async def reap_expired(self, ctx: MaintenanceContext) -> None:
        """End expired claims, ``reap_limit`` per call, while calls come back full."""
        limit = self.config.reap_limit
        while True:
            n = await ctx.client.reap_expired(limit)
            self.stats.reaped += n
            if n < limit or not ctx.is_leader():
                return

    async def announce_due(self, ctx: MaintenanceContext) -> None:
        """Announce jobs that became due since the last call."""
        self.stats.announced += await ctx.client.announce_due()

    async def compact_counters(self, ctx: MaintenanceContext) -> None:
        """Fold the archived-job counter deltas."""
        await ctx.client.compact_counters()

    async def sweep_retention(self, ctx: MaintenanceContext) -> None:
        """Delete archived records past their retention."""
        self.stats.swept += await ctx.client.sweep_retention(
            self.config.retention_done, self.config.retention_dead)

    async def vacuum(self, ctx: MaintenanceContext) -> None:
        """VACUUM the live table when it holds many dead row versions."""
        await self.vacuumer(ctx)
        self.stats.vacuums = self.vacuumer.vacuums
