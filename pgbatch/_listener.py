"""The LISTEN connection of a worker process.

One connection per process listens on the channels of the queues the process
serves (``pgbatch.channel_name(queue)``) and turns each notification into a
dispatcher call: a count payload (``"3"``, or ``"3/2"`` for a second
announcement in one transaction) announces ready jobs; an ``"@<unix ms>"``
payload says a job becomes due at that time, and arms a timer that announces
it then (corrected by the measured offset between this host's clock and the
database's, so timers follow database time).

If the connection drops (server restart, ``pg_terminate_backend``), the
listener reconnects with capped exponential backoff, LISTENs again, and wakes
one claimer per queue for a catch-up claim, so nothing announced while it was
away waits for the next poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger("pgbatch.listener")


def parse_payload(payload: str) -> tuple[int, float | None]:
    """Return ``(ready count, due time in Unix seconds or None)`` of a NOTIFY payload."""
    head = payload.split("/", 1)[0].strip()
    if head.startswith("@"):
        try:
            return 0, int(head[1:]) / 1000.0
        except ValueError:
            return 0, None
    try:
        return max(int(head), 0), None
    except ValueError:
        return 1, None  # unknown payload: treat as one ready job


class Listener:
    """Owns the LISTEN connection of one worker process."""

    def __init__(
        self,
        conninfo: str,
        queues: Sequence[str],
        on_ready: Callable[[str, int], None],
        on_reconnect: Callable[[], None],
        *,
        max_backoff: float = 5.0,
    ) -> None:
        self.conninfo = conninfo
        self.queues = list(queues)
        self.on_ready = on_ready
        self.on_reconnect = on_reconnect
        self.max_backoff = max_backoff
        self.clock_offset = 0.0  # database time minus local time, seconds
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._channels: dict[str, str] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._stopping = False

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, application_name="pgbatch-listener")
        t0 = time.time()
        cur = await conn.execute(
            "select extract(epoch from clock_timestamp())::float8,"
            " array(select pgbatch.channel_name(q) from unnest(%s::text[]) q)",
            (self.queues,))
        row = await cur.fetchone()
        t1 = time.time()
        assert row is not None
        self.clock_offset = float(row[0]) - (t0 + t1) / 2
        self._channels = dict(zip(row[1], self.queues, strict=True))
        for channel in self._channels:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        return conn

    def _arm_timer(self, queue: str, due_unix: float) -> None:
        loop = asyncio.get_running_loop()
        delay = due_unix - self.clock_offset - time.time() + 0.001
        existing = self._timers.get(queue)
        when = loop.time() + max(delay, 0.0)
        if existing is not None and not existing.cancelled() and existing.when() <= when:
            return  # an earlier timer will wake a claimer first; it re-arms from next_due
        if existing is not None:
            existing.cancel()
        self._timers[queue] = loop.call_at(when, self._fire_timer, queue)

    def _fire_timer(self, queue: str) -> None:
        self._timers.pop(queue, None)
        self.on_ready(queue, 1)

    def arm_due(self, queue: str, due_unix: float) -> None:
        """Arm a timer announcing ``queue`` at database time ``due_unix`` (Unix seconds)."""
        self._arm_timer(queue, due_unix)

    async def run(self) -> None:
        """Listen until ``stop()``; reconnects by itself."""
        backoff = 0.05
        first = True
        while not self._stopping:
            try:
                self._conn = await self._connect()
            except (psycopg.OperationalError, OSError) as exc:
                log.warning("listener cannot connect (%s); retrying in %.2fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = 0.05
            self.connected.set()
            if not first:
                self.reconnects += 1
                log.info("listener reconnected; catching up")
                self.on_reconnect()
            first = False
            try:
                async for note in self._conn.notifies():
                    queue = self._channels.get(note.channel)
                    if queue is None:
                        continue
                    ready, due = parse_payload(note.payload)
                    if ready:
                        self.on_ready(queue, ready)
                    if due is not None:
                        self._arm_timer(queue, due)
            except (psycopg.OperationalError, OSError) as exc:
                if self._stopping:
                    break
                log.warning("listener connection lost (%s); reconnecting", exc)
            finally:
                self.connected.clear()
                conn, self._conn = self._conn, None
                if conn is not None:
                    await _close_quietly(conn)

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        self._stopping = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        conn = self._conn
        if conn is not None:
            await _close_quietly(conn)


async def _close_quietly(conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        await conn.close()
    except psycopg.Error:
        pass
