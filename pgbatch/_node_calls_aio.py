"""AsyncNodeCalls: the SQL API calls of worker nodes and their maintenance loop
(node registration and heartbeat, leadership leases, due-job announcements,
counter folding, vacuum statistics, the schema compatibility check), a part of
``AsyncClient``.

This file is the source of the sync ``NodeCalls`` too: ``tools/gen_sync.py``
derives ``pgbatch/_node_calls.py`` from it, and a test fails when the two drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import psycopg

from pgbatch import _ops
from pgbatch._types import Json, LeaderLease, VacuumStat

T = TypeVar("T")
AnyConn = psycopg.AsyncConnection[Any]


class AsyncNodeCalls:
    """The node and maintenance calls of ``AsyncClient`` (each one ``run`` of an ``Op``)."""

    async def run(self, op: _ops.Op[T], conn: AnyConn | None = None,
                  timeout: float | None = None) -> T:
        """Run one API call (``AsyncClient.run``)."""
        raise NotImplementedError

    async def announce_due(self, *, conn: AnyConn | None = None) -> int:
        """Announce jobs that became due since the last call; returns how many."""
        return await self.run(_ops.announce_due(), conn)

    async def compact_counters(self, *, conn: AnyConn | None = None) -> int:
        """Fold archived-job counter deltas; returns how many rows were folded."""
        return await self.run(_ops.compact_counters(), conn)

    async def next_due(self, queues: Sequence[str], *,
                       conn: AnyConn | None = None) -> datetime | None:
        """The earliest run_at of a pending job in ``queues``."""
        return await self.run(_ops.next_due(queues), conn)

    async def register_node(self, node_id: str, boot_id: UUID, info: Json = None, *,
                            conn: AnyConn | None = None) -> int:
        """Register a worker node incarnation; returns claims released from its previous one."""
        return await self.run(_ops.register_node(node_id, boot_id, info), conn)

    async def heartbeat_node(self, node_id: str, boot_id: UUID, *,
                             conn: AnyConn | None = None) -> bool:
        """Record a node heartbeat; False when a newer incarnation replaced this one."""
        return await self.run(_ops.heartbeat_node(node_id, boot_id), conn)

    async def deregister_node(self, node_id: str, boot_id: UUID, *,
                              conn: AnyConn | None = None) -> bool:
        """Remove a node's registration at a clean shutdown."""
        return await self.run(_ops.deregister_node(node_id, boot_id), conn)

    async def try_lead(self, node_id: str, boot_id: UUID,
                       lease: timedelta = timedelta(seconds=5), scope: str = "maintenance", *,
                       conn: AnyConn | None = None) -> LeaderLease:
        """Take or renew the leadership lease of ``scope``; says who leads and until when."""
        return await self.run(_ops.try_lead(node_id, boot_id, lease, scope), conn)

    async def resign_lead(self, node_id: str, boot_id: UUID, scope: str = "maintenance", *,
                          conn: AnyConn | None = None) -> bool:
        """End this node's leadership lease of ``scope`` now; False if it held none."""
        return await self.run(_ops.resign_lead(node_id, boot_id, scope), conn)

    async def holds_lead(self, node_id: str, boot_id: UUID, term: int,
                         scope: str = "maintenance", *, conn: AnyConn | None = None) -> bool:
        """Whether this node holds a valid lease of ``scope`` under ``term`` (database time)."""
        return await self.run(_ops.holds_lead(node_id, boot_id, term, scope), conn)

    async def vacuum_stats(self, *, conn: AnyConn | None = None) -> list[VacuumStat]:
        """Dead row versions of the tables the leader vacuums, and whether this role may."""
        return await self.run(_ops.vacuum_stats(), conn)

    async def check_compat(self, supported: int, *, conn: AnyConn | None = None) -> int:
        """Raise IncompatibleSchema if the database is newer than ``supported``."""
        return await self.run(_ops.check_compat(supported), conn)
