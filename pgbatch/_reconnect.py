"""Reconnection after an outage: one place per process decides "the database is back".

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

Pools built here (``ConnectionPoolGuard.new_pool`` and the async
``AsyncConnectionPoolGuard.new_pool``) are tied to the watch by their
``PoolGuard``:

- a new connection waits while the watch says the database is down, so
  psycopg_pool's own reconnect backoff (1, 2, 4, 8, 16 s) never starts: its
  connection attempts block until the probe has seen a writable primary,
  then connect at once. A failed attempt reports the outage and waits again,
  for at most ``CONNECT_GIVE_UP`` seconds in all.
- a connection made before the latest outage is checked (an empty query) on
  its next checkout, and the first such check of an outage first checks every
  idle connection of the pool (``pool.check()``), so broken ones are dropped
  together instead of one per checkout with the pool's growing delay.

The watch holds no connection while the database is up, and its thread runs
only during an outage, ending when the database answers or when the last
pool tied to it closes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from typing import Any, Final, Self

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

log = logging.getLogger("pgbatch.reconnect")

#: Seconds between two probes while the database is down.
PROBE_INTERVAL: Final = 0.25
#: ``connect_timeout`` of a probe (libpq counts whole seconds, 2 at least).
PROBE_CONNECT_TIMEOUT: Final = 2
#: Seconds a pooled connection attempt keeps waiting for the database before it fails.
CONNECT_GIVE_UP: Final = 300.0
#: Seconds between two looks at the watch by a waiter that also watches something else.
_WAIT_SLICE: Final = 0.05

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
            left = _WAIT_SLICE if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(_WAIT_SLICE, left))
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


def _stamp(conn: psycopg.BaseConnection[Any], epoch: int) -> None:
    conn._pgbatch_epoch = epoch  # type: ignore[attr-defined]  # psycopg connections take attributes


def stamp_epoch(conn: psycopg.BaseConnection[Any], epoch: int) -> None:
    """Mark ``conn`` as made in the watch's ``epoch`` (see ``DatabaseWatch.report_lost``)."""
    _stamp(conn, epoch)


def _epoch_of(conn: psycopg.BaseConnection[Any]) -> int | None:
    epoch: int | None = getattr(conn, "_pgbatch_epoch", None)
    return epoch


class _PoolGuardBase:
    """What a pool and its clients share with the watch of the pool's DSN."""

    def __init__(self, conninfo: str, *, counted: bool = True) -> None:
        """Tie to the watch of ``conninfo``; ``counted``: as one of its users (until ``close``)."""
        self.watch = watch_for(conninfo)
        self.counted = counted
        if counted:
            self.watch.acquire()
        self.closed = False
        self._checked_epoch = self.watch.epoch

    def report_lost(self, exc: BaseException,
                    conn: psycopg.BaseConnection[Any] | None = None) -> None:
        """Tell the watch, when ``exc`` means the connection was lost (``conn``: on which)."""
        if is_connection_lost(exc):
            self.watch.report_lost(exc, None if conn is None else _epoch_of(conn))

    def close(self) -> None:
        """The pool closed: stop waiting for the database on its behalf."""
        if not self.closed:
            self.closed = True
            if self.counted:
                self.watch.release()

    def _connect_deadline(self) -> float:
        return time.monotonic() + CONNECT_GIVE_UP

    def _need_pool_check(self, conn: psycopg.BaseConnection[Any]) -> tuple[bool, bool]:
        """(check this connection, check the whole pool first) on checkout."""
        epoch = self.watch.epoch
        if _epoch_of(conn) == epoch:
            return False, False
        whole = self._checked_epoch != epoch
        self._checked_epoch = epoch
        return True, whole


_guards: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


class _WatchedAsyncPool(AsyncConnectionPool[Any]):
    """An async pool that releases its guard when it closes (also when ``open`` times out)."""

    guard: AsyncConnectionPoolGuard
    #: Open at the first ``getconn`` (``App.async_client``: made before any loop runs).
    open_on_first_use: bool = False

    async def getconn(self, timeout: float | None = None) -> Any:
        if self.open_on_first_use and self.closed:
            await self.open()  # a no-op once open; a pool closed after use stays closed
        return await super().getconn(timeout)

    async def close(self, timeout: float = 5.0) -> None:
        self.guard.close()
        await super().close(timeout)


class _WatchedPool(ConnectionPool[Any]):
    """A pool that releases its guard when it closes (also when ``open`` times out)."""

    guard: ConnectionPoolGuard

    def close(self, timeout: float = 5.0) -> None:
        self.guard.close()
        super().close(timeout)


class AsyncConnectionPoolGuard(_PoolGuardBase):
    """The tie of an ``AsyncConnectionPool`` to its ``DatabaseWatch`` (see the module)."""

    pool: AsyncConnectionPool[Any] | None = None

    @classmethod
    def new_pool(cls, conninfo: str, *, min_size: int, max_size: int, kwargs: dict[str, Any],
                 name: str, open_on_first_use: bool = False) -> AsyncConnectionPool[Any]:
        """An unopened pool whose connections follow the watch of ``conninfo``.

        ``open_on_first_use``: the first ``getconn`` (or ``connection()``) opens it.
        """
        guard = cls(conninfo)
        pool = _WatchedAsyncPool(
            conninfo, min_size=min_size, max_size=max_size, kwargs=kwargs, open=False,
            name=name, connection_class=guard.connection_class(), check=guard.check)
        pool.open_on_first_use = open_on_first_use
        pool.guard = guard
        guard.pool = pool
        _guards[pool] = guard
        return pool

    @classmethod
    def of(cls, pool: AsyncConnectionPool[Any] | None) -> Self:
        """The guard of ``pool`` (a pool not built by ``new_pool`` gets one that only waits)."""
        if pool is None:  # a client whose every call runs on the caller's connection
            return cls("", counted=False)
        guard = _guards.get(pool)
        if not isinstance(guard, cls):
            guard = cls(pool.conninfo if isinstance(pool.conninfo, str) else "", counted=False)
            _guards[pool] = guard
        return guard

    async def wait_up(self, timeout: float | None = None) -> bool:
        """Wait until the database is reachable; False after ``timeout`` seconds or a close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.closed:
            left = _WAIT_SLICE if deadline is None else min(_WAIT_SLICE,
                                                            deadline - time.monotonic())
            if left <= 0:
                return self.watch.is_up
            if await self.watch.wait_up_async(left):
                return True
        return False

    async def check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """The pool's checkout check: only connections older than the latest outage."""
        one, whole = self._need_pool_check(conn)
        if not one:
            return
        if whole and self.pool is not None:
            await self.pool.check()
        await conn.execute("")
        _stamp(conn, self.watch.epoch)

    def connection_class(self) -> type[psycopg.AsyncConnection[Any]]:
        """A connection class whose ``connect`` waits for the watch (see the module)."""
        guard = self

        class WatchedAsyncConnection(psycopg.AsyncConnection[Any]):
            @classmethod
            async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
                deadline = guard._connect_deadline()
                while True:
                    if not await guard.wait_up(max(0.0, deadline - time.monotonic())):
                        raise psycopg.OperationalError(
                            "pgbatch: the database is unreachable" if not guard.closed
                            else "pgbatch: the pool is closed")
                    epoch = guard.watch.epoch
                    try:
                        conn = await super().connect(conninfo, **kwargs)
                    except psycopg.OperationalError as exc:
                        if is_connection_lost(exc):
                            guard.watch.report_lost(exc, epoch)
                        if guard.closed or time.monotonic() >= deadline:
                            raise
                        if guard.watch.is_up:  # not a lost connection: the pool backs off
                            raise
                        continue
                    _stamp(conn, epoch)
                    return conn

        return WatchedAsyncConnection


class ConnectionPoolGuard(_PoolGuardBase):
    """The tie of a (sync) ``ConnectionPool`` to its ``DatabaseWatch`` (see the module)."""

    pool: ConnectionPool[Any] | None = None

    @classmethod
    def new_pool(cls, conninfo: str, *, min_size: int, max_size: int, kwargs: dict[str, Any],
                 name: str) -> ConnectionPool[Any]:
        """An unopened pool whose connections follow the watch of ``conninfo``."""
        guard = cls(conninfo)
        pool = _WatchedPool(
            conninfo, min_size=min_size, max_size=max_size, kwargs=kwargs, open=False,
            name=name, connection_class=guard.connection_class(), check=guard.check)
        pool.guard = guard
        guard.pool = pool
        _guards[pool] = guard
        return pool

    @classmethod
    def of(cls, pool: ConnectionPool[Any] | None) -> Self:
        """The guard of ``pool`` (a pool not built by ``new_pool`` gets one that only waits)."""
        if pool is None:  # a client whose every call runs on the caller's connection
            return cls("", counted=False)
        guard = _guards.get(pool)
        if not isinstance(guard, cls):
            guard = cls(pool.conninfo if isinstance(pool.conninfo, str) else "", counted=False)
            _guards[pool] = guard
        return guard

    def wait_up(self, timeout: float | None = None) -> bool:
        """Wait until the database is reachable; False after ``timeout`` seconds or a close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.closed:
            left = _WAIT_SLICE * 4 if deadline is None else min(_WAIT_SLICE * 4,
                                                                deadline - time.monotonic())
            if left <= 0:
                return self.watch.is_up
            if self.watch.wait_up(left):
                return True
        return False

    def check(self, conn: psycopg.Connection[Any]) -> None:
        """The pool's checkout check: only connections older than the latest outage."""
        one, whole = self._need_pool_check(conn)
        if not one:
            return
        if whole and self.pool is not None:
            self.pool.check()
        conn.execute("")
        _stamp(conn, self.watch.epoch)

    def connection_class(self) -> type[psycopg.Connection[Any]]:
        """A connection class whose ``connect`` waits for the watch (see the module)."""
        guard = self

        class WatchedConnection(psycopg.Connection[Any]):
            @classmethod
            def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
                deadline = guard._connect_deadline()
                while True:
                    if not guard.wait_up(max(0.0, deadline - time.monotonic())):
                        raise psycopg.OperationalError(
                            "pgbatch: the database is unreachable" if not guard.closed
                            else "pgbatch: the pool is closed")
                    epoch = guard.watch.epoch
                    try:
                        conn = super().connect(conninfo, **kwargs)
                    except psycopg.OperationalError as exc:
                        if is_connection_lost(exc):
                            guard.watch.report_lost(exc, epoch)
                        if guard.closed or time.monotonic() >= deadline or guard.watch.is_up:
                            raise
                        continue
                    _stamp(conn, epoch)
                    return conn

        return WatchedConnection
