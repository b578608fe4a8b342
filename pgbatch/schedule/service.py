"""The scheduler's maintenance service: every worker node ticks.

``tick_schedules`` runs on EVERY node (not the leader only: the tick locks
due schedules with ``FOR UPDATE SKIP LOCKED`` and guards each fire with the
watermark and the ledger, so many nodes at once are safe and no leader is
needed for correctness). It runs at once when the worker starts, then about
every ``TICK_INTERVAL`` seconds, each run after a random delay of up to
``TICK_JITTER`` seconds so that nodes started together spread out. A run
calls the tick again while a call comes back full (``TICK_BATCH`` decisions).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from pgbatch.schedule import ops
from pgbatch.worker.services import EVERY_NODE, MaintenanceContext, MaintenanceService

#: Seconds between ticks of one node.
TICK_INTERVAL = 1.0
#: Up to this many seconds of random delay before each tick but the first.
TICK_JITTER = 0.25
#: Schedules one tick call decides at most.
TICK_BATCH = 100
#: The service's name.
SERVICE_NAME = "tick_schedules"


class ScheduleTicker:
    """The service function: ticks, repeating while a call comes back full."""

    def __init__(self, batch: int = TICK_BATCH, jitter: float = TICK_JITTER,
                 rand: Callable[[], float] = random.random) -> None:
        self.batch = batch
        self.jitter = jitter
        self.rand = rand
        self.started = False
        self.decided = 0
        self.fired = 0

    async def __call__(self, ctx: MaintenanceContext) -> None:
        """One run: wait the jitter (not at start), then tick until a call is not full."""
        if self.started and self.jitter > 0:
            await asyncio.sleep(self.rand() * self.jitter)
        self.started = True
        while True:
            fires = await ctx.client.run(ops.tick(ctx.node_id, self.batch))
            self.decided += len(fires)
            self.fired += sum(1 for f in fires if f.outcome == "fired")
            if len(fires) < self.batch:
                return


def schedule_services() -> list[MaintenanceService]:
    """The scheduler's services of one maintenance loop."""
    return [MaintenanceService(SERVICE_NAME, TICK_INTERVAL, ScheduleTicker(), EVERY_NODE)]
