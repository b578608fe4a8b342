"""The batch engine's maintenance services, registered by every ``Maintenance``.

- ``purge_batch_history`` (leader, each ``interval * sweep_every``, like the
  queue's ``sweep_retention``): deletes terminal batch executions (COMPLETED,
  FAILED, STOPPED, ABANDONED) that ended more than
  ``MaintenanceConfig.batch_retention`` ago (default 30 days; ``None`` keeps
  them for ever), with their step executions, contexts and events, and the
  job instances left without an execution (``pgbatch.purge_batch_history``,
  ``batch_purge_size`` per call, repeated while a call comes back full).

- ``resume_due_executions`` (every node, each ``batch_resume_interval``
  seconds): resumes the PAUSED executions whose ``resume_at`` has come
  (timed pauses, docs/batch-pause.md; ``pgbatch.resume_due_executions``,
  ``batch_resume_size`` per call, repeated while a call comes back full).
  Every node runs it so that timed resumes do not wait for a leader.
- ``expire_gates`` (every node, each ``interval``): applies the ``on_timeout``
  decision of approval gates whose timeout passed without a decision
  (``pgbatch.expire_gates``, :data:`GATE_SWEEP_SIZE` per call, repeated while a
  call comes back full; docs/batch-gates.md). ``gates_expired`` counts them.

Safe on several nodes at once (``FOR UPDATE SKIP LOCKED``): a leader stuck
during a takeover that finishes a pass afterwards deletes nothing twice, and
each due execution is resumed, each gate timeout applied, exactly once however
many nodes sweep.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pgbatch import _ops
from pgbatch.batch.gates import expire_gates_op
from pgbatch.batch.pause_calls import resume_due_op
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
        """The services (no purge when ``batch_retention`` is None)."""
        cfg = self.config
        found: list[MaintenanceService] = []
        if cfg.batch_retention is not None:
            found.append(MaintenanceService("purge_batch_history", cfg.interval * cfg.sweep_every,
                                            self.purge_batch_history, LEADER))
        found.append(MaintenanceService("resume_due_executions", cfg.batch_resume_interval,
                                        self.resume_due_executions, EVERY_NODE))
        found.append(MaintenanceService("expire_gates", cfg.interval, self.expire_gates,
                                        EVERY_NODE))
        return found

    async def expire_gates(self, ctx: MaintenanceContext) -> None:
        """Apply due gate timeouts, :data:`GATE_SWEEP_SIZE` per call, while calls are full."""
        while True:
            n = await ctx.client.run(expire_gates_op(GATE_SWEEP_SIZE))
            self.gates_expired += n
            if n < GATE_SWEEP_SIZE:
                return

    async def resume_due_executions(self, ctx: MaintenanceContext) -> None:
        """Resume due timed pauses, ``batch_resume_size`` per call, while calls are full."""
        size = self.config.batch_resume_size
        while True:
            n = await ctx.client.run(resume_due_op(size))
            self.stats.batch_resumed += n
            if n < size:
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
