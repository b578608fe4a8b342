"""The batch engine's maintenance services, registered by every ``Maintenance``.

- ``purge_batch_history`` (leader, each ``interval * sweep_every``, like the
  queue's ``sweep_retention``): deletes terminal batch executions (COMPLETED,
  FAILED, STOPPED, ABANDONED) that ended more than
  ``MaintenanceConfig.batch_retention`` ago (default 30 days; ``None`` keeps
  them for ever), with their step executions, contexts and events, and the
  job instances left without an execution (``pgbatch.purge_batch_history``,
  ``batch_purge_size`` per call, repeated while a call comes back full).

- ``expire_gates`` (every node, each ``interval``): applies the ``on_timeout``
  decision of approval gates whose timeout passed without a decision
  (``pgbatch.expire_gates``, :data:`GATE_SWEEP_SIZE` per call, repeated while a
  call comes back full; docs/batch-gates.md). ``gates_expired`` counts them.

Safe on several nodes at once (``FOR UPDATE SKIP LOCKED``): a leader stuck
during a takeover that finishes a pass afterwards deletes nothing twice, and
each gate timeout is applied exactly once however many nodes sweep.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pgbatch import _ops
from pgbatch.batch.gates import expire_gates_op
from pgbatch.worker.services import EVERY_NODE, LEADER, MaintenanceContext, MaintenanceService

if TYPE_CHECKING:
    from pgbatch.worker.maintenance import MaintenanceConfig, MaintenanceStats


#: Gate timeouts one ``expire_gates`` call applies at most.
GATE_SWEEP_SIZE = 100


def purge_batch_history_op(older_than: timedelta, batch_size: int) -> _ops.Op[int]:
    """``pgbatch.purge_batch_history(older_than, batch_size)`` → executions deleted."""
    def decode(rows: list[Any]) -> int:
        return int(rows[0][0])

    return _ops.Op("select pgbatch.purge_batch_history(%s, %s)", (older_than, batch_size),
                   decode)


class BatchServices:
    """The batch engine's services of one maintenance loop; they count into its stats."""

    def __init__(self, config: MaintenanceConfig, stats: MaintenanceStats) -> None:
        self.config = config
        self.stats = stats
        self.gates_expired = 0

    def services(self) -> list[MaintenanceService]:
        """The services (``purge_batch_history`` only when ``batch_retention`` is set)."""
        cfg = self.config
        found = [MaintenanceService("expire_gates", cfg.interval, self.expire_gates, EVERY_NODE)]
        if cfg.batch_retention is None:
            return found
        return [MaintenanceService("purge_batch_history", cfg.interval * cfg.sweep_every,
                                   self.purge_batch_history, LEADER), *found]

    async def expire_gates(self, ctx: MaintenanceContext) -> None:
        """Apply due gate timeouts, :data:`GATE_SWEEP_SIZE` per call, while calls are full."""
        while True:
            n = await ctx.client.run(expire_gates_op(GATE_SWEEP_SIZE))
            self.gates_expired += n
            if n < GATE_SWEEP_SIZE:
                return

    async def purge_batch_history(self, ctx: MaintenanceContext) -> None:
        """Delete old terminal executions, ``batch_purge_size`` per call, while calls are full."""
        older_than = self.config.batch_retention
        size = self.config.batch_purge_size
        if older_than is None:
            return
        while True:
            n = await ctx.client.run(purge_batch_history_op(older_than, size))
            self.stats.batch_purged += n
            if n < size or not ctx.is_leader():
                return
