"""The maintenance loop every worker runs; one leader does the shared work.

Every node heartbeats its own registration each period. The shared work —
reaping expired leases, announcing jobs that became due, folding counters,
sweeping retention — runs on one node at a time: the one holding a
session-level advisory lock on its own dedicated connection. If that node
dies, its session ends, PostgreSQL releases the lock, and another node's
next ``pg_try_advisory_lock`` wins: failover within one period, no
coordination service. Two leaders for a moment (a lock connection that died
silently) are harmless: every maintenance function is safe to run
concurrently (``FOR UPDATE SKIP LOCKED``), leadership only avoids doing the
work N times.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg

from pgbatch._aio_client import AsyncClient

log = logging.getLogger("pgbatch.maintenance")

#: Advisory lock key of the maintenance leader ("pgbatch" as int64, constant).
LEADER_LOCK_KEY = 0x7067626174636801


@dataclass
class MaintenanceConfig:
    """What the leader does and how often.

    ``interval``: seconds between ticks (reap and due announcements run every
    tick; a lease expiry is noticed within one interval). ``retention_done`` /
    ``retention_dead``: archived records older than these are swept (every
    ``sweep_every`` ticks). ``reap_limit``: claims reaped per call (repeated
    while full).
    """

    interval: float = 1.0
    retention_done: timedelta = timedelta(days=1)
    retention_dead: timedelta = timedelta(days=7)
    sweep_every: int = 60
    compact_every: int = 10
    reap_limit: int = 1000


@dataclass
class MaintenanceStats:
    """Counters of the maintenance loop."""

    ticks: int = 0
    leader_ticks: int = 0
    reaped: int = 0
    announced: int = 0
    swept: int = 0
    became_leader: int = 0
    replaced: bool = False


class Maintenance:
    """Heartbeats this node; when leader, reaps, announces, compacts and sweeps."""

    def __init__(self, conninfo: str, client: AsyncClient, node_id: str, boot_id: UUID,
                 config: MaintenanceConfig | None = None,
                 on_replaced: Callable[[], None] | None = None) -> None:
        self.conninfo = conninfo
        self.client = client
        self.node_id = node_id
        self.boot_id = boot_id
        self.config = config or MaintenanceConfig()
        self.on_replaced = on_replaced
        self.stats = MaintenanceStats()
        # the dedicated connection that holds (or keeps asking for) the leader lock
        self._lock_conn: psycopg.AsyncConnection[Any] | None = None
        self._leader = False
        self._stop = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        """Whether this node held the leader lock at its last tick."""
        return self._leader

    async def _try_lead(self) -> bool:
        conn = self._lock_conn
        try:
            if conn is None or conn.closed:
                conn = self._lock_conn = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, application_name="pgbatch-maintenance")
            if self._leader:
                await conn.execute("select 1")  # the lock lives as long as this session
                return True
            cur = await conn.execute("select pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,))
            row = await cur.fetchone()
        except psycopg.Error:
            await self._drop_lock()
            return False
        if row and row[0]:
            self._leader = True
            self.stats.became_leader += 1
            log.info("node %s is the maintenance leader", self.node_id)
            return True
        return False

    async def _drop_lock(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        self._leader = False
        if conn is not None:
            try:
                await conn.close()
            except psycopg.Error:
                pass

    async def tick(self) -> None:
        """One period: heartbeat, and the shared work when leader."""
        self.stats.ticks += 1
        alive = await self.client.heartbeat_node(self.node_id, self.boot_id)
        if not alive and not self.stats.replaced:
            self.stats.replaced = True
            log.error("node %s was registered again by another process; this one is stale "
                      "and stops claiming", self.node_id)
            if self.on_replaced is not None:
                self.on_replaced()
        if not await self._try_lead():
            return
        self.stats.leader_ticks += 1
        cfg = self.config
        while True:
            n = await self.client.reap_expired(cfg.reap_limit)
            self.stats.reaped += n
            if n < cfg.reap_limit:
                break
        self.stats.announced += await self.client.announce_due()
        if self.stats.leader_ticks % cfg.compact_every == 1:
            await self.client.compact_counters()
        if self.stats.leader_ticks % cfg.sweep_every == 1:
            self.stats.swept += await self.client.sweep_retention(
                cfg.retention_done, cfg.retention_dead)

    async def run(self) -> None:
        """Tick every ``interval`` until ``stop()``; database errors are logged and retried."""
        while not self._stop.is_set():
            try:
                await self.tick()
            except psycopg.Error as exc:
                log.warning("maintenance tick failed: %s", exc)
                await self._drop_lock()
            try:
                await asyncio.wait_for(self._stop.wait(), self.config.interval)
            except TimeoutError:
                pass
        await self._drop_lock()

    def stop(self) -> None:
        """End the loop (releases leadership)."""
        self._stop.set()
