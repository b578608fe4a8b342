"""What a running job knows about itself, and how it writes inside its claim.

A handler gets a ``JobContext``. Besides the job, it carries three signals
(``threading.Event``, so sync handlers on threads can wait on them too):

- ``stop_requested``: the worker is shutting down (``stop()``, SIGTERM). The
  job may finish; if it is still running after the grace period, its claim
  is given back (``released`` is set) for another worker: a hand-off, no
  attempt consumed. ``on_stop(callback)`` calls back when it happens.
- ``cancelled``: ``cancel_job`` was called for this job (seen at the next
  lease renewal or fenced commit). The job should stop; it ends cancelled.
- ``claim_lost``: the lease expired and the job was reaped or re-claimed;
  nothing this attempt still writes in a fenced transaction will commit.

Fenced transactions: ``async with ctx.fenced() as conn:`` (``with
ctx.fenced_sync() as conn:`` on a sync handler's thread) opens a transaction
on one of the worker's connections. When the block ends without an
exception, ``pgbatch.fence_claim`` checks the claim token and extends the
lease in that same transaction, then it commits: the block's writes commit
only with a live claim, durably. A lost claim raises ``ClaimLost`` and rolls
everything back. A handler may run as many of them as it likes inside one
claim (one per chunk). ``ctx.ack_in(conn, effects)`` inside the block acks
the job in that transaction instead (the ack is the fence then); the worker
does not settle the job again. A connection lost during ``COMMIT`` raises
``psycopg.OperationalError``: whether that transaction committed is unknown,
so the handler checks its own progress (a chunk step reads its checkpoint)
instead of blindly redoing it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

from pgbatch._aio_client import AsyncClient
from pgbatch._client import Client
from pgbatch._errors import ClaimLost, JobNotFound
from pgbatch._types import AckEffects, ClaimedJob
from pgbatch.worker.claim import Claim
from pgbatch.worker.settler import Settler

log = logging.getLogger("pgbatch.worker")


@dataclass(frozen=True)
class ClaimServices:
    """What a context needs from its worker to run fenced transactions."""

    client: AsyncClient
    sync_client: Callable[[], Client]
    settler: Settler


class JobContext:
    """What a running job knows about itself (see the module docstring).

    ``conn`` is set for ``transactional`` tasks: the connection of the
    transaction that also acks the job (sync ``psycopg.Connection`` for sync
    tasks, ``AsyncConnection`` for async ones). ``task_name`` is the name of
    the handler (the task's name for task jobs); ``kind`` the job's kind.
    """

    __slots__ = ("_acking", "_cancelled", "_claim_lost", "_released", "_stop",
                 "_stop_callbacks", "claim", "conn", "job", "kind", "services", "settled",
                 "task_name", "worker_id")

    #: Guards the stop callbacks of every context (rarely used: one lock will do).
    _stop_lock = threading.Lock()

    def __init__(self, job: ClaimedJob, task_name: str, worker_id: str, conn: Any = None, *,
                 kind: str = "task", claim: Claim | None = None,
                 services: ClaimServices | None = None) -> None:
        self.job = job
        self.task_name = task_name
        self.worker_id = worker_id
        self.conn = conn
        self.kind = kind
        self.claim = claim
        self.services = services
        #: True once the job was acked inside one of its own transactions.
        self.settled = False
        self._acking = False
        self._cancelled: threading.Event | None = None
        self._claim_lost: threading.Event | None = None
        self._stop: threading.Event | None = None
        self._released: threading.Event | None = None
        self._stop_callbacks: list[Callable[[], None]] | None = None

    # -- signals -------------------------------------------------------------------
    @property
    def cancelled(self) -> threading.Event:
        """Set when ``cancel_job`` was called for the job (never at shutdown)."""
        if self._cancelled is None:
            self._cancelled = threading.Event()
        return self._cancelled

    @property
    def claim_lost(self) -> threading.Event:
        """Set when the claim was lost (lease reaped): the result will not be acked."""
        if self._claim_lost is None:
            self._claim_lost = threading.Event()
        return self._claim_lost

    @property
    def stop_requested(self) -> threading.Event:
        """Set when the worker is shutting down: finish soon, or hand the job off."""
        if self._stop is None:
            self._stop = threading.Event()
        return self._stop

    @property
    def released(self) -> threading.Event:
        """Set when the worker gave the claim back at shutdown (a hand-off, not a cancel)."""
        if self._released is None:
            self._released = threading.Event()
        return self._released

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when a stop is requested (at once if it already was).

        It runs on the worker's event loop thread (or the caller's, when the
        stop was already requested): keep it short, e.g. set a flag.
        """
        with self._stop_lock:
            if not self.stop_requested.is_set():
                if self._stop_callbacks is None:
                    self._stop_callbacks = []
                self._stop_callbacks.append(callback)
                return
        callback()

    def request_stop(self) -> None:
        """Tell the job that the worker is stopping (the worker calls this)."""
        with self._stop_lock:
            self.stop_requested.set()
            callbacks, self._stop_callbacks = self._stop_callbacks or [], None
        for cb in callbacks:
            try:
                cb()
            except Exception:
                log.exception("stop callback of job %s failed", self.job.id)

    @property
    def attempt(self) -> int:
        """This attempt's number (1 for the first)."""
        return self.job.attempt

    @property
    def job_id(self) -> UUID:
        """The job's id."""
        return self.job.id

    # -- fenced transactions -------------------------------------------------------
    def _services(self) -> tuple[Claim, ClaimServices]:
        if self.claim is None or self.services is None:
            raise RuntimeError("fenced transactions need a job run by a worker")
        if self.settled:
            raise ClaimLost(f"job {self.job.id} was already acked by this attempt")
        if self._claim_lost is not None and self._claim_lost.is_set():
            raise ClaimLost(f"claim lost: job {self.job.id} was reaped or re-claimed")
        return self.claim, self.services

    def _fenced(self, claim: Claim, cancel_requested: bool) -> None:
        claim.extended()
        if cancel_requested:
            self.cancelled.set()

    def _lost(self, exc: Exception) -> ClaimLost:
        """Mark the claim lost; the ClaimLost to raise for ``exc``."""
        self.claim_lost.set()
        return exc if isinstance(exc, ClaimLost) else ClaimLost(exc.args[0] if exc.args else "")

    @contextlib.asynccontextmanager
    async def fenced(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A transaction that commits only while this claim holds (see the module doc)."""
        claim, svc = self._services()
        async with svc.client.pool.connection() as conn:
            self._acking = False
            cancel = False
            try:
                async with conn.transaction():
                    yield conn
                    if not self._acking:
                        _, cancel = await svc.client.fence_claim(
                            self.job.id, self.job.claim_token, claim.lease, conn=conn)
            except (ClaimLost, JobNotFound) as exc:
                lost = self._lost(exc)
                if lost is exc:
                    raise
                raise lost from exc
            finally:
                acked, self._acking = self._acking, False
        self._committed(claim, svc, acked=acked, cancel=cancel)

    @contextlib.contextmanager
    def fenced_sync(self) -> Iterator[psycopg.Connection[Any]]:
        """``fenced()`` for sync handlers (on their worker thread)."""
        claim, svc = self._services()
        client = svc.sync_client()
        with client.pool.connection() as conn:
            self._acking = False
            cancel = False
            try:
                with conn.transaction():
                    yield conn
                    if not self._acking:
                        _, cancel = client.fence_claim(
                            self.job.id, self.job.claim_token, claim.lease, conn=conn)
            except (ClaimLost, JobNotFound) as exc:
                lost = self._lost(exc)
                if lost is exc:
                    raise
                raise lost from exc
            finally:
                acked, self._acking = self._acking, False
        self._committed(claim, svc, acked=acked, cancel=cancel)

    def _committed(self, claim: Claim, svc: ClaimServices, *, acked: bool,
                   cancel: bool) -> None:
        if acked:
            self.settled = True
            svc.settler.acked_in_transaction()
        else:
            self._fenced(claim, cancel)

    async def ack_in(self, conn: psycopg.AsyncConnection[Any],
                     effects: AckEffects | None = None) -> None:
        """Ack the job in the open ``fenced()`` transaction on ``conn``."""
        _, svc = self._services()
        try:
            await svc.settler.ack_in(conn, self.job, effects)
        except ClaimLost:
            self.claim_lost.set()
            raise
        self._acking = True

    def ack_in_sync(self, conn: psycopg.Connection[Any],
                    effects: AckEffects | None = None) -> None:
        """``ack_in`` in an open ``fenced_sync()`` transaction."""
        _, svc = self._services()
        try:
            svc.settler.ack_in_sync(conn, self.job, effects)
        except ClaimLost:
            self.claim_lost.set()
            raise
        self._acking = True
