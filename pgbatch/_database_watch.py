"""One place per process decides "the database is back" after an outage.

A ``DatabaseWatch`` exists per connection string (``watch_for(conninfo)``), shared
by every pool, client, listener and maintenance loop of the process that uses
that string. Any of them that sees a connection break (``is_connection_lost``)
reports it (``report_lost``). The first report of an outage logs one WARNING
and starts a probe thread that opens a short connection to ``conninfo`` every
``PROBE_INTERVAL`` seconds (``connect_timeout`` ``PROBE_CONNECT_TIMEOUT``) and
asks ``pg_is_in_recovery()``. The first answer from a server that accepts
writes ends the outage: one WARNING says so, and everything that waited
(``wait_up``) goes on at once. With a multi-host DSN
(``host=a,b ... target_session_attrs=read-write``) that server is whichever
node was promoted, so recovery follows the promotion, not a backoff.

The watch holds no connection while the database is up, and its thread runs
only during an outage, ending when the database answers or when the last
pool tied to it closes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import PoolTimeout

log = logging.getLogger("pgbatch.reconnect")

#: Seconds between two probes while the database is down.
PROBE_INTERVAL: Final = 0.25
#: ``connect_timeout`` of a probe (libpq counts whole seconds, 2 at least).
PROBE_CONNECT_TIMEOUT: Final = 2
#: Seconds a pooled connection attempt keeps waiting for the database before it fails.
CONNECT_GIVE_UP: Final = 300.0
#: Seconds between two looks at the watch by a waiter that also watches something else.
WAIT_SLICE: Final = 0.05

#: SQLSTATEs that mean the session is gone or the server cannot take writes now.
_LOST_SQLSTATES: Final = frozenset({
    "57P01",  # admin_shutdown (pg_terminate_backend, postmaster exit, fast shutdown)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, shutting down, in recovery)
    "25006",  # read_only_sql_transaction: the node was demoted or is a standby
})


def is_connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection (or the server) was lost, not that the call failed.

    Connection failures (psycopg ``OperationalError`` without a SQLSTATE or with
    one of class 08), ``AdminShutdown``/``CrashShutdown``/``CannotConnectNow``, and
    ``ReadOnlySqlTransaction`` (a session on a node that no longer takes writes,
    after a failover). A pool timeout is not: the pool may just be busy.
    """
    if isinstance(exc, PoolTimeout) or not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state in _LOST_SQLSTATES:
        return True
    return isinstance(exc, psycopg.OperationalError) and (state is None or state.startswith("08"))


def during_outage(watch: DatabaseWatch, exc: BaseException) -> bool:
    """Whether ``exc`` is part of an outage the watch reports (so already logged once there).

    A lost connection, or any database error while the watch says the database is down
    (a pool timeout while nothing can connect): callers log these below WARNING.
    """
    return is_connection_lost(exc) or (isinstance(exc, psycopg.Error) and not watch.is_up)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _where(conninfo: str) -> str:
    """The hosts and ports of ``conninfo``, for log lines (no password, no options)."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "the database"
    hosts = str(params.get("host") or params.get("hostaddr") or "localhost").split(",")
    ports = str(params.get("port") or "5432").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    return ",".join(f"{h}:{p}" for h, p in zip(hosts, ports, strict=False))


class DatabaseWatch:
    """Whether the database of one connection string is reachable, decided by a probe.

    Thread-safe: parts on event loops and in threads share it.
    ``epoch`` counts the outages seen so far.
    """

    def __init__(self, conninfo: str, *, probe_interval: float = PROBE_INTERVAL) -> None:
        self.conninfo = conninfo
        self.probe_interval = probe_interval
        self.epoch = 0
        self.outages = 0
        self._lock = threading.Lock()
        self._up = threading.Event()
        self._up.set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._down_since = 0.0
        self._users = 0

    @property
    def is_up(self) -> bool:
        """False from the first report of an outage until the probe reaches a writable server."""
        return self._up.is_set()

    def report_lost(self, exc: BaseException, epoch: int | None = None) -> None:
        """A part saw the connection break: start probing (and log) unless already down.

        ``epoch``: the ``epoch`` when the broken connection was made, if known. A
        connection made before the latest outage began broke in that outage, which
        is already over or being probed: its failure starts no new one.
        """
        with self._lock:
            if not self._up.is_set() or (epoch is not None and epoch < self.epoch):
                return
            self._up.clear()
            self.epoch += 1
            self.outages += 1
            self._down_since = time.monotonic()
            self._stop.clear()
            thread = self._thread = threading.Thread(target=self._probe_loop, daemon=True,
                                                     name="pgbatch-reconnect-probe")
        log.warning("database connection lost (%s); probing %s every %.2fs until a server "
                    "that accepts writes answers", _first_line(exc), _where(self.conninfo),
                    self.probe_interval)
        thread.start()

    def wait_up(self, timeout: float | None = None) -> bool:
        """Block until the database is reachable (True) or ``timeout`` seconds passed (False)."""
        return self._up.wait(timeout)

    async def wait_up_async(self, timeout: float | None = None) -> bool:
        """``wait_up`` for an event loop (looks every few milliseconds, blocks no thread)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._up.is_set():
            left = WAIT_SLICE if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(WAIT_SLICE, left))
        return True

    def probe(self) -> bool:
        """One probe: whether a connection to ``conninfo`` reaches a server that takes writes."""
        conninfo = make_conninfo(self.conninfo, connect_timeout=PROBE_CONNECT_TIMEOUT,
                                 application_name="pgbatch-probe")
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                row = conn.execute("select pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            return False
        return row is not None and row[0] is False

    def _probe_loop(self) -> None:
        while not self._stop.is_set():
            if self.probe():
                break
            self._stop.wait(self.probe_interval)
        else:  # the last user left: stop probing, and block nobody who still looks
            with self._lock:
                self._thread = None
                self._up.set()
            return
        with self._lock:
            down_for = time.monotonic() - self._down_since
            self._thread = None
            self._up.set()
        log.warning("database reachable again after %.1fs (%s); reconnecting",
                    down_for, _where(self.conninfo))

    # -- users ------------------------------------------------------------------------
    def acquire(self) -> None:
        """Count one more user (a pool)."""
        with self._lock:
            self._users += 1

    def release(self) -> None:
        """Count one user less; the last one stops the probe (a pool closed mid-outage)."""
        with self._lock:
            self._users -= 1
            last = self._users <= 0
            thread = self._thread if last else None
        if last:
            with _watches_lock:
                if _watches.get(self.conninfo) is self:
                    del _watches[self.conninfo]
            self._stop.set()
            if thread is not None and thread is not threading.current_thread():
                thread.join(PROBE_CONNECT_TIMEOUT + 1.0)


_watches: dict[str, DatabaseWatch] = {}
_watches_lock = threading.Lock()


def watch_for(conninfo: str) -> DatabaseWatch:
    """The process's watch of ``conninfo`` (created on first use)."""
    with _watches_lock:
        watch = _watches.get(conninfo)
        if watch is None:
            watch = _watches[conninfo] = DatabaseWatch(conninfo)
        return watch


def stamp(conn: psycopg.BaseConnection[Any], epoch: int) -> None:
    conn._pgbatch_epoch = epoch  # type: ignore[attr-defined]  # psycopg connections take attributes


def stamp_epoch(conn: psycopg.BaseConnection[Any], epoch: int) -> None:
    """Mark ``conn`` as made in the watch's ``epoch`` (see ``DatabaseWatch.report_lost``)."""
    stamp(conn, epoch)


def epoch_of(conn: psycopg.BaseConnection[Any]) -> int | None:
    epoch: int | None = getattr(conn, "_pgbatch_epoch", None)
    return epoch
