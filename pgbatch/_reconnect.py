"""Pools that reconnect after an outage, tied to the process's DatabaseWatch
(:mod:`pgbatch._database_watch`) of their connection string.

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
"""

from __future__ import annotations

import time
import weakref
from typing import Any, Self

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from pgbatch._database_watch import (
    CONNECT_GIVE_UP,
    WAIT_SLICE,
    DatabaseWatch,
    during_outage,
    epoch_of,
    is_connection_lost,
    stamp,
    stamp_epoch,
    watch_for,
)

__all__ = ["AsyncConnectionPoolGuard", "ConnectionPoolGuard", "DatabaseWatch", "during_outage",
           "is_connection_lost", "stamp_epoch", "watch_for"]


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
            self.watch.report_lost(exc, None if conn is None else epoch_of(conn))

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
        if epoch_of(conn) == epoch:
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
            left = WAIT_SLICE if deadline is None else min(WAIT_SLICE,
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
        stamp(conn, self.watch.epoch)

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
                    stamp(conn, epoch)
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
            left = WAIT_SLICE * 4 if deadline is None else min(WAIT_SLICE * 4,
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
        stamp(conn, self.watch.epoch)

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
                    stamp(conn, epoch)
                    return conn

        return WatchedConnection
