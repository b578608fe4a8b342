"""The worker's pooled connections (the listener and maintenance own theirs).

- the async pool (``client``): claims, settlements, lease renewals, and the
  fenced transactions of async handlers; ``concurrency + 4`` connections.
- a sync pool (``sync_client()``), opened at first use from a sync
  handler's thread: the fenced transactions of sync handlers (transactional
  tasks included); ``concurrency + 1`` connections (the one more lets one
  batch chunk step run in the server pipeline its commits on two,
  :mod:`pgbatch.batch.pipeline`). A worker whose handlers never
  open a fenced transaction from a thread never opens it.

In transaction pooler mode (``pooler="transaction"``) both pools prepare no
statements (``pgbatch._pooler``). Both follow the process's watch of the DSN
after an outage (``pgbatch._reconnect``).

At ``open`` the worker checks that commits wait for a standby when the
server streams to standbys (``pgbatch._replication``) and logs one WARNING
when they do not.
"""

from __future__ import annotations

import logging
import threading

import psycopg

from pgbatch._aio_client import AsyncClient
from pgbatch._client import Client
from pgbatch._pooler import PoolerMode
from pgbatch._replication import replication_state_async

log = logging.getLogger("pgbatch.worker")


class WorkerConnections:
    """Owns the worker's connection pools."""

    def __init__(self, dsn: str, concurrency: int, *, pooler: PoolerMode = "none") -> None:
        """Pools on ``dsn``; ``pooler="transaction"``: they prepare no statements."""
        self.dsn = dsn
        self.pooler: PoolerMode = pooler
        self.concurrency = concurrency
        self._client: AsyncClient | None = None
        self._sync: Client | None = None
        self._lock = threading.Lock()
        self._closed = False

    async def open(self) -> AsyncClient:
        """Open the async pool and return its client."""
        self._client = await AsyncClient.connect(self.dsn, min_size=1,
                                                 max_size=self.concurrency + 4,
                                                 pooler=self.pooler)
        await self.warn_if_commits_do_not_wait()
        return self._client

    async def warn_if_commits_do_not_wait(self) -> str | None:
        """Log (WARNING) and return the replication warning, if the server deserves one."""
        try:
            async with self.client.pool.connection() as conn:
                warning = (await replication_state_async(conn)).warning
        except psycopg.Error as exc:  # a check, not a reason to stop the worker
            log.info("could not check the server's replication settings: %s", exc)
            return None
        if warning is not None:
            log.warning("%s", warning)
        return warning

    @property
    def is_open(self) -> bool:
        """Whether ``open()`` succeeded."""
        return self._client is not None

    @property
    def client(self) -> AsyncClient:
        """The async client (after ``open``)."""
        assert self._client is not None, "WorkerConnections.open() was not called"
        return self._client

    def sync_client(self) -> Client:
        """The sync client, its pool opened on first use (thread-safe)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker's connections are closed")
            if self._sync is None:
                self._sync = Client.connect(self.dsn, min_size=1, max_size=self.concurrency + 1,
                                            pooler=self.pooler)
            return self._sync

    async def close(self) -> None:
        """Close both pools."""
        with self._lock:
            self._closed = True
            sync, self._sync = self._sync, None
        if sync is not None:
            sync.close()
        if self._client is not None:
            await self._client.close()
