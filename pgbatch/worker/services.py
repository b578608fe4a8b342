"""Maintenance services: periodic work of a worker, on every node or on the leader only.

A service is a name, an interval (seconds), a scope and an ``async`` function
that is given a ``MaintenanceContext``. ``Maintenance`` (``maintenance.py``)
runs each service on its own interval: a leader-only service (``LEADER``)
runs only while this node holds the maintenance leadership lease (and once
at once when it takes the lease), a per-node one (``EVERY_NODE``) on every
worker. A service that raises is logged, counted in its ``ServiceStats`` and
retried with exponential backoff (``backoff_delay``); it never stops the
other services or the worker.

Services register without editing the loop: ``App.maintenance_service`` (a
decorator) or ``App.add_maintenance_service`` for every worker of an App,
``Maintenance.register`` for one loop. Write them so that running twice at
once is harmless (row locks, ``FOR UPDATE SKIP LOCKED``, idempotent writes):
leadership makes the work run once, it cannot make a leader that was stuck
in the middle of a run take back what it sent before the takeover. Work that
must not overlap a new leader's checks ``pgbatch.holds_lead`` in its own
transaction (``MaintenanceContext.holds_lead``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

if TYPE_CHECKING:
    import psycopg

    from pgbatch._aio_client import AsyncClient
    from pgbatch.worker.leadership import Leadership

#: Where a service runs: ``"leader"`` (one node at a time) or ``"node"`` (every node).
ServiceScope = Literal["leader", "node"]
#: The service runs on the maintenance leader only.
LEADER: ServiceScope = "leader"
#: The service runs on every worker node.
EVERY_NODE: ServiceScope = "node"

#: What a service does: an async function of its context (its result is ignored).
ServiceFunction = Callable[["MaintenanceContext"], Awaitable[object]]


@dataclass(frozen=True)
class MaintenanceService:
    """One periodic maintenance service.

    ``name``: unique among the services of a loop (logs and stats use it).
    ``interval``: seconds from the start of one run to the start of the next
    (a run that takes longer delays the next; runs of one service never
    overlap). ``scope``: ``LEADER`` or ``EVERY_NODE``. ``run``: the async
    function, called with a ``MaintenanceContext``.
    """

    name: str
    interval: float
    run: ServiceFunction
    scope: ServiceScope = LEADER

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a maintenance service needs a non-empty name, got {self.name!r}")
        if not math.isfinite(self.interval) or self.interval <= 0:
            raise ValueError(f"maintenance service {self.name!r}: interval must be a positive "
                             f"number of seconds, got {self.interval!r}")
        if self.scope not in (LEADER, EVERY_NODE):
            raise ValueError(f"maintenance service {self.name!r}: scope must be "
                             f"{LEADER!r} or {EVERY_NODE!r}, got {self.scope!r}")
        if not _is_async(self.run):
            raise TypeError(f"maintenance service {self.name!r}: run must be an async function "
                            f"(async def) taking a MaintenanceContext")


def _is_async(fn: Any) -> bool:
    call = getattr(fn, "__call__", None)  # noqa: B004 - an instance with an async __call__
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


@dataclass(frozen=True)
class MaintenanceContext:
    """What a running service is given.

    ``client``: the worker's ``AsyncClient`` (its pool: one SQL function call
    per method, PgBouncer-safe). ``conninfo``: the DSN, for a service that
    needs a connection of its own (e.g. VACUUM). ``node_id``/``boot_id``:
    this node incarnation. ``leadership``: this node's view of the lease.
    ``clock``: the monotonic clock the loop schedules by. ``service``: the
    service being run.
    """

    client: AsyncClient
    conninfo: str
    node_id: str
    boot_id: UUID
    leadership: Leadership
    clock: Callable[[], float]
    service: MaintenanceService

    def is_leader(self) -> bool:
        """Whether this node's leadership lease is still valid by its own clock."""
        return self.leadership.is_leader()

    @property
    def term(self) -> int | None:
        """The term of the lease this node holds (None when it does not lead)."""
        return self.leadership.term

    async def holds_lead(self, conn: psycopg.AsyncConnection[Any] | None = None) -> bool:
        """``pgbatch.holds_lead`` for this node and term, by database time.

        Pass the connection of the transaction that does the leader-only work
        so that the check and the work share it; False when not leading.
        """
        term = self.leadership.term
        if term is None:
            return False
        return await self.client.holds_lead(self.node_id, self.boot_id, term,
                                            self.leadership.scope, conn=conn)


@dataclass
class ServiceStats:
    """Counters of one service; a persistent failure shows as ``consecutive_failures``."""

    runs: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_duration: float | None = None


def backoff_delay(interval: float, consecutive_failures: int, cap: float) -> float:
    """Seconds before retrying a service that failed ``consecutive_failures`` times in a row.

    One interval after the first failure, doubling with each further one, at
    most ``cap`` (but never less than the interval itself).
    """
    exponent = min(max(consecutive_failures - 1, 0), 30)
    return min(interval * 2.0 ** exponent, max(cap, interval))
