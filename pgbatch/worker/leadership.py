"""Leadership of the maintenance work, judged by database time (a heartbeat lease).

The lease is a row of ``pgbatch.leader``, taken and renewed by
``pgbatch.try_lead`` and given up by ``pgbatch.resign_lead``: one SQL
function call, one transaction each, no session state. So leadership works
through a transaction pooler (PgBouncer), nothing stays behind on an idle
pooled connection, and a leader that is alive but stuck (SIGSTOP, a hung
event loop, a partition that keeps its session open) loses the lease when it
stops renewing: another node takes it over once it has run out, at most one
renewal period later.

Fencing: this node treats itself as leader only until its own monotonic
clock says ``lease`` has passed since it *sent* its last successful
``try_lead`` (minus a small margin for clock-rate drift). The database starts
that lease no earlier than the call arrived, so this node's belief always
ends before the database's lease does, and a new leader's lease starts no
earlier than the old one ended: two nodes never believe they lead at the same
instant. A node that was stuck learns it at its next call (another node
leads, or its own lease lapsed and came back under a new term) and steps
down; its leader-only services check ``is_leader()`` before each run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

from pgbatch._aio_client import AsyncClient

log = logging.getLogger("pgbatch.maintenance")

#: The leadership scope of the maintenance loop.
MAINTENANCE_SCOPE = "maintenance"
#: Part of the lease this node gives up at its end, for clock-rate drift between hosts.
CLOCK_MARGIN = 0.02


class Leadership:
    """This node's view of one leadership lease."""

    def __init__(self, client: AsyncClient, node_id: str, boot_id: UUID, lease: float, *,
                 scope: str = MAINTENANCE_SCOPE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.node_id = node_id
        self.boot_id = boot_id
        self.lease = lease
        self.scope = scope
        self.clock = clock
        #: The term of the lease this node holds; None when it does not lead.
        self.term: int | None = None
        #: The holder named by the last answer (this node or another).
        self.leader_node_id: str | None = None
        self.became_leader = 0
        self.lost_leadership = 0
        self._valid_until = 0.0

    def is_leader(self, now: float | None = None) -> bool:
        """Whether this node leads: it holds a term and its lease is valid by its own clock."""
        return self.term is not None and (self.clock() if now is None else now) < self._valid_until

    def valid_for(self) -> float:
        """Seconds the lease remains valid by this node's clock (0 when not leading)."""
        if self.term is None:
            return 0.0
        return max(0.0, self._valid_until - self.clock())

    async def renew(self) -> bool:
        """Take or renew the lease (``pgbatch.try_lead``); returns ``is_leader()``.

        A database error propagates; the lease then stays valid only until
        its local expiry (see ``check_lapsed``).
        """
        sent = self.clock()
        try:
            answer = await self.client.try_lead(self.node_id, self.boot_id,
                                                timedelta(seconds=self.lease), self.scope)
        except BaseException:
            self.check_lapsed()
            raise
        self.leader_node_id = answer.leader_node_id
        if not answer.is_leader:
            if self.term is not None:
                self._step_down(f"{answer.leader_node_id} leads now (term {answer.term})")
            return False
        if self.term is not None and self.term != answer.term:
            self._step_down(f"its lease lapsed (term {self.term} ended)")
        self._valid_until = sent + self.lease * (1.0 - CLOCK_MARGIN)
        if self.term is None:
            self.term = answer.term
            self.became_leader += 1
            log.info("node %s is the maintenance leader (term %d, lease %.1fs)",
                     self.node_id, answer.term, self.lease)
        return self.is_leader()

    def check_lapsed(self) -> bool:
        """Step down if the lease ran out by this node's clock; returns ``is_leader()``."""
        if self.term is not None and not self.is_leader():
            self._step_down("its lease could not be renewed in time")
        return self.is_leader()

    def _step_down(self, why: str) -> None:
        # while the database is down every node loses its lease: the outage was logged once
        level = logging.WARNING if self.client.guard.watch.is_up else logging.INFO
        log.log(level, "node %s lost the maintenance leadership: %s; it stepped down",
                self.node_id, why)
        self.term = None
        self._valid_until = 0.0
        self.lost_leadership += 1

    async def resign(self) -> bool:
        """Give the lease up (``pgbatch.resign_lead``) if this node holds one.

        Called at a clean stop, so another node takes over at its next renewal
        instead of after the lease. Asks the database even when this node
        does not believe it leads (an answer that was lost on the way may
        have made it the holder). Returns whether a valid lease was given up.
        """
        self.term = None
        self._valid_until = 0.0
        resigned = await self.client.resign_lead(self.node_id, self.boot_id, self.scope)
        if resigned:
            log.info("node %s resigned the maintenance leadership", self.node_id)
        return resigned
