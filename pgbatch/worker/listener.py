"""The LISTEN connection of a worker process.

One connection per process listens on the channels of the queues the process
serves (``pgbatch.channel_name(queue)``) and turns each notification into a
dispatcher call: a count payload (``"3"``, or ``"3/2"`` for a second
announcement in one transaction) announces ready jobs; an ``"@<unix ms>"``
payload says a job becomes due at that time, and arms a timer that announces
it then (corrected by the measured offset between this host's clock and the
database's, and by that measurement's error bound, so timers follow database
time and never fire early). Due times are kept per queue
(the earliest ``MAX_DUE_TIMES``): when one timer fires, the next is armed, so
a job due after another one is announced at its own time too. Due times
dropped by that cap are announced by the maintenance loop (``announce_due``).

If the connection drops (server restart, ``pg_terminate_backend``, a
failover), the listener reports it to the process's ``DatabaseWatch`` of its
DSN (``pgbatch._reconnect``; the watch logs the outage once), waits until the
watch's probe finds a writable server, reconnects at once, LISTENs again, and
wakes one claimer per queue for a catch-up claim, so nothing announced while
it was away waits for the next poll. Errors that are not a lost connection
(a refused login) are retried with capped exponential backoff.

Before its first LISTEN takes over, the listener checks that notifications
reach it at all (``probe``): it LISTENs on a private channel, NOTIFYs that
channel from another connection (the worker's pool) and waits up to
``probe_timeout`` seconds. Through a transaction pooler (PgBouncer
``pool_mode = transaction``) the LISTEN lands on some pooled server
connection and the notification never comes back: the listener then logs one
WARNING, closes its connection and ends, and the worker polls
(``poll_interval``). ``done`` is set once the listener either listens or gave
up, ``listening`` says which.

The listener's SQL is the client's (``channel_name``, ``now``); only the
LISTEN/UNLISTEN/NOTIFY commands are composed here (``psycopg.sql``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from pgbatch._aio_client import AsyncClient
from pgbatch._reconnect import AsyncConnectionPoolGuard, during_outage
from pgbatch._reconnect import stamp_epoch as _stamp_epoch

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

    #: Due times remembered per queue; later ones are left to ``announce_due``.
    MAX_DUE_TIMES = 1000

    def __init__(
        self,
        conninfo: str,
        queues: Sequence[str],
        on_ready: Callable[[str, int], None],
        on_reconnect: Callable[[], None],
        *,
        client: AsyncClient,
        max_backoff: float = 5.0,
        probe_timeout: float = 3.0,
    ) -> None:
        """Listen on ``conninfo`` for ``queues``; ``client``'s pool sends the probe."""
        self.conninfo = conninfo
        self.client = client
        self.probe_timeout = probe_timeout
        #: Set once the listener listens (``listening``) or gave up (the probe failed).
        self.done = asyncio.Event()
        self.listening = False
        self.queues = list(queues)
        self.on_ready = on_ready
        self.on_reconnect = on_reconnect
        self.max_backoff = max_backoff
        self.clock_offset = 0.0  # database time minus local time, seconds
        self.clock_error = 0.0  # how far clock_offset may be off, at most, seconds
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._channels: dict[str, str] = {}
        self._timers: dict[str, tuple[asyncio.TimerHandle, float]] = {}  # queue: (timer, due)
        self._dues: dict[str, list[float]] = {}  # queue: heap of due times (database time)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._stopping = False
        self._guard: AsyncConnectionPoolGuard | None = None

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        epoch = self._guard.watch.epoch if self._guard is not None else 0
        conn = await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, prepare_threshold=None,
            application_name="pgbatch-listener")
        _stamp_epoch(conn, epoch)
        try:
            if not self._channels:
                self._channels = {await self.client.channel_name(q): q for q in self.queues}
            for channel in self._channels:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            await self._measure_clock(conn)
        except BaseException:
            await _close_quietly(conn)
            raise
        return conn

    async def probe(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        """Whether a NOTIFY sent from another connection reaches ``conn``.

        LISTENs on a private channel on ``conn``, NOTIFYs it from a pooled
        connection of ``client`` and waits up to ``probe_timeout`` seconds.
        Pending notifications of the queues' channels that arrive meanwhile
        are delivered as usual.
        """
        name = f"pgbatch_probe_{uuid.uuid4().hex}"
        channel = sql.Identifier(name)
        await conn.execute(sql.SQL("LISTEN {}").format(channel))
        try:
            async with self.client.pool.connection() as other:
                await other.execute(sql.SQL("NOTIFY {}, 'probe'").format(channel))
            async with contextlib.aclosing(conn.notifies(timeout=self.probe_timeout)) as notes:
                async for note in notes:
                    if note.channel == name:
                        return True
                    self._deliver(note)
            return False
        finally:
            await conn.execute(sql.SQL("UNLISTEN {}").format(channel))

    def _deliver(self, note: psycopg.Notify) -> None:
        queue = self._channels.get(note.channel)
        if queue is None:
            return
        ready, due = parse_payload(note.payload)
        if ready:
            self.on_ready(queue, ready)
        if due is not None:
            self._arm_timer(queue, due)

    async def _measure_clock(self, conn: psycopg.AsyncConnection[Any], samples: int = 3) -> None:
        """Estimate the database clock's offset from the sample with the shortest round trip.

        The database read its clock somewhere inside the round trip, so the
        estimate (database time minus the round trip's midpoint) is off by at
        most half of it: ``clock_error``. Timers wait that much longer, so they
        never fire before the database considers the job due (a claim made too
        early finds nothing, and the job would wait for the next poll).
        """
        best: tuple[float, float] | None = None  # (offset, round trip)
        for _ in range(samples):
            t0 = time.time()
            db_now = await self.client.now(conn=conn)
            t1 = time.time()
            if best is None or t1 - t0 < best[1]:
                best = (db_now.timestamp() - (t0 + t1) / 2, t1 - t0)
        assert best is not None
        self.clock_offset, self.clock_error = best[0], best[1] / 2

    def _arm_timer(self, queue: str, due_unix: float) -> None:
        dues = self._dues.setdefault(queue, [])
        if due_unix not in dues:
            heapq.heappush(dues, due_unix)
        if len(dues) > self.MAX_DUE_TIMES:
            dues.sort()  # a sorted list is a heap
            del dues[self.MAX_DUE_TIMES:]
        self._schedule(queue)

    def _schedule(self, queue: str) -> None:
        """Make the queue's timer fire at its earliest remembered due time."""
        dues = self._dues.get(queue)
        existing = self._timers.get(queue)
        if not dues:
            return
        if existing is not None:
            if existing[1] <= dues[0]:
                return  # already armed for the earliest one
            existing[0].cancel()
        loop = asyncio.get_running_loop()
        # +1 ms: due times are whole milliseconds, rounded down
        delay = dues[0] - self.clock_offset + self.clock_error - time.time() + 0.001
        when = loop.time() + max(delay, 0.0)
        self._timers[queue] = (loop.call_at(when, self._fire_timer, queue, dues[0]), dues[0])

    def _fire_timer(self, queue: str, due_unix: float) -> None:
        self._timers.pop(queue, None)
        dues = self._dues.get(queue, [])
        now = max(time.time() + self.clock_offset, due_unix)
        while dues and dues[0] <= now:
            heapq.heappop(dues)
        self.on_ready(queue, 1)
        self._schedule(queue)

    def arm_due(self, queue: str, due_unix: float) -> None:
        """Arm a timer announcing ``queue`` at database time ``due_unix`` (Unix seconds)."""
        self._arm_timer(queue, due_unix)

    async def run(self) -> None:
        """Listen until ``stop()``; reconnects by itself."""
        self._guard = guard = AsyncConnectionPoolGuard(self.conninfo)
        try:
            await self._run(guard)
        finally:
            guard.close()

    async def _run(self, guard: AsyncConnectionPoolGuard) -> None:
        backoff = 0.05
        first = True
        while not self._stopping:
            if not await guard.wait_up(self.max_backoff):
                continue  # still down: the watch logged it; look at _stopping again
            try:
                self._conn = await self._connect()
            except (psycopg.OperationalError, OSError) as exc:
                guard.report_lost(exc)
                if during_outage(guard.watch, exc):
                    log.info("listener cannot connect (%s); waiting for the database", exc)
                    continue
                log.warning("listener cannot connect (%s); retrying in %.2fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = 0.05
            if first:
                try:
                    delivered = await self.probe(self._conn)
                except (psycopg.OperationalError, OSError) as exc:
                    guard.report_lost(exc, self._conn)
                    log.info("listener connection lost during its probe (%s); reconnecting",
                             exc)
                    await _close_quietly(self._conn)
                    self._conn = None
                    continue
                if not delivered:
                    log.warning(
                        "LISTEN does not work on this connection: a notification sent from "
                        "another connection did not arrive within %.1fs (a transaction "
                        "pooler such as PgBouncer?). Not listening: this worker polls "
                        "instead. Give a direct listen_dsn (--listen-dsn, "
                        "$PGBATCH_LISTEN_DSN) for prompt wakeups.", self.probe_timeout)
                    conn, self._conn = self._conn, None
                    await _close_quietly(conn)
                    self.done.set()
                    return
                self.listening = True
                self.done.set()
            self.connected.set()
            if not first:
                self.reconnects += 1
                log.info("listener reconnected; catching up")
                self.on_reconnect()
            first = False
            try:
                async for note in self._conn.notifies():
                    self._deliver(note)
            except (psycopg.OperationalError, OSError) as exc:
                if self._stopping:
                    break
                guard.report_lost(exc, self._conn)
                if during_outage(guard.watch, exc):
                    log.info("listener connection lost (%s); reconnecting", exc)
                else:
                    log.warning("listener connection lost (%s); reconnecting", exc)
            finally:
                self.connected.clear()
                conn, self._conn = self._conn, None
                if conn is not None:
                    await _close_quietly(conn)

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        self._stopping = True
        if self._guard is not None:
            self._guard.close()  # ends a wait for the database at once
        for timer, _ in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._dues.clear()
        conn = self._conn
        if conn is not None:
            await _close_quietly(conn)


async def _close_quietly(conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        await conn.close()
    except psycopg.Error:
        pass
