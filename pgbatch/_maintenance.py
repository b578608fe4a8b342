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
import time
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

#: Dead row versions of the live table, and whether this role may VACUUM it.
_DEAD_TUPLES = (
    "select s.n_dead_tup, pg_has_role(c.relowner, 'USAGE')"
    " from pg_stat_user_tables s join pg_class c on c.oid = s.relid"
    " where s.relid = 'pgbatch.job'::regclass")


@dataclass
class MaintenanceConfig:
    """What the leader does and how often.

    ``interval``: seconds between ticks (reap and due announcements run every
    tick; a lease expiry is noticed within one interval). ``retention_done`` /
    ``retention_dead``: archived records older than these are swept (every
    ``sweep_every`` ticks). ``reap_limit``: claims reaped per call (repeated
    while full).

    ``vacuum_dead_tuples``: the leader runs ``VACUUM`` on ``pgbatch.job`` when
    the statistics count at least this many dead row versions there (every job
    leaves two: its claim and its settlement), at most once every
    ``vacuum_min_seconds``. Autovacuum looks at a database once a minute by
    default (``autovacuum_naptime``); at thousands of jobs a second that lets
    the live table and its claim index bloat to hundreds of megabytes, and
    claims slow down. ``0`` leaves it to autovacuum alone. The worker's role
    must own the table (be a member of its owner role) or be a superuser;
    otherwise the leader logs a warning once and leaves it to autovacuum.
    """

    interval: float = 1.0
    retention_done: timedelta = timedelta(days=1)
    retention_dead: timedelta = timedelta(days=7)
    sweep_every: int = 60
    compact_every: int = 10
    reap_limit: int = 1000
    vacuum_dead_tuples: int = 100_000
    vacuum_min_seconds: float = 5.0


@dataclass
class MaintenanceStats:
    """Counters of the maintenance loop."""

    ticks: int = 0
    leader_ticks: int = 0
    reaped: int = 0
    announced: int = 0
    swept: int = 0
    vacuums: int = 0
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
        self._may_vacuum = True
        self._last_vacuum = 0.0
        self._vacuum_task: asyncio.Task[None] | None = None
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
        await self._maybe_vacuum()

    async def _maybe_vacuum(self) -> None:
        """Start a VACUUM of the live table when it holds many dead row versions.

        The VACUUM runs in the background on its own connection, so a long one
        (a table that bloated during an outage) never holds up reaping, due
        announcements or heartbeats; at most one runs at a time.
        """
        cfg = self.config
        conn = self._lock_conn
        if (cfg.vacuum_dead_tuples <= 0 or not self._may_vacuum or conn is None
                or (self._vacuum_task is not None and not self._vacuum_task.done())
                or time.monotonic() - self._last_vacuum < cfg.vacuum_min_seconds):
            return
        cur = await conn.execute(_DEAD_TUPLES)
        row = await cur.fetchone()
        if row is None or row[0] is None or int(row[0]) < cfg.vacuum_dead_tuples:
            return
        if not row[1]:
            self._may_vacuum = False
            log.warning("the maintenance leader may not VACUUM pgbatch.job (its role does not "
                        "own the table); dead rows are left to autovacuum")
            return
        self._last_vacuum = time.monotonic()
        self._vacuum_task = asyncio.create_task(self._vacuum(), name="pgbatch-vacuum")

    async def _vacuum(self) -> None:
        try:
            async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, application_name="pgbatch-vacuum") as conn:
                # no truncation: the table is created with vacuum_truncate = false
                await conn.execute("vacuum (skip_locked) pgbatch.job")
        except psycopg.Error as exc:
            log.warning("VACUUM of pgbatch.job failed: %s", exc)
            return
        self.stats.vacuums += 1

    async def wait_vacuum(self) -> None:
        """Wait for a VACUUM the leader started (if any) to finish."""
        task = self._vacuum_task
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

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
        if self._vacuum_task is not None and not self._vacuum_task.done():
            self._vacuum_task.cancel()
        await self.wait_vacuum()
        await self._drop_lock()

    def stop(self) -> None:
        """End the loop (releases leadership)."""
        self._stop.set()
