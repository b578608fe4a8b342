"""The worker's pooled connections (the listener and maintenance own theirs).

- the async pool (``client``): claims, settlements, lease renewals, and the
  fenced transactions of async handlers; ``concurrency + 4`` connections.
- a sync pool (``sync_client()``), opened at first use from a sync
  handler's thread: the fenced transactions of sync handlers (transactional
  tasks included); ``concurrency`` connections. A worker whose handlers never
  open a fenced transaction from a thread never opens it.

In transaction pooler mode (``pooler="transaction"``) both pools prepare no
statements (``pgbatch._pooler``).
"""

from __future__ import annotations

import threading

from pgbatch._aio_client import AsyncClient
from pgbatch._client import Client
from pgbatch._pooler import PoolerMode


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
        return self._client

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
                self._sync = Client.connect(self.dsn, min_size=1, max_size=self.concurrency,
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
