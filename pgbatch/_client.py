"""Client: the SQL API from threads or plain code (psycopg ``Connection``).

GENERATED from pgbatch/_aio_client.py by tools/gen_sync.py: do not edit.
A test fails when the two drift.
Every method runs one ``pgbatch._ops.Op``: one SQL function call.

Connections: a client owns a pool (``ConnectionPool``, autocommit
connections, one round trip per call) unless it is given one. Every method
also takes ``conn=``: the call then runs on the caller's connection, inside
whatever transaction the caller has open, and commits only when the caller
commits (an enqueue in a rolled-back transaction leaves no job and wakes
nobody, because NOTIFY is delivered at commit).

Outages (``pgbatch._reconnect``): the pool's connections follow the process's
``DatabaseWatch`` of the DSN, so after a crash or a failover they reconnect
as soon as a writable server answers. ``enqueue`` and ``enqueue_many``
without ``conn=`` retry a lost connection themselves, with ids chosen before
the first attempt, for up to ``retry_for`` seconds (``pgbatch._retry``): one
call makes its jobs exactly once, or raises ``EnqueueUnconfirmed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool

from pgbatch import _enqueue_ops, _limits, _ops, _registry, _retry
from pgbatch._errors import DuplicateJobId, translate
from pgbatch._node_calls import NodeCalls
from pgbatch._pooler import connection_kwargs, resolve_pooler
from pgbatch._reconnect import ConnectionPoolGuard
from pgbatch._registry import TaskInfo
from pgbatch._types import (
    AckEffects,
    AckOutcome,
    AckRequest,
    ClaimedJob,
    EnqueueRequest,
    JobCursor,
    JobInfo,
    Json,
    QueueStats,
)

T = TypeVar("T")
AnyConn = psycopg.Connection[Any]

DEFAULT_LEASE = _limits.DEFAULT_LEASE
DEFAULT_MAX_ATTEMPTS = _limits.DEFAULT_MAX_ATTEMPTS
DEFAULT_RETRY_FOR = _retry.DEFAULT_RETRY_FOR


def _fetch(conn: AnyConn, op: _ops.Op[Any]) -> list[Any]:
    """The rows of ``op`` on ``conn``: tuples, or what the op's row factory makes."""
    if op.row_factory is None:
        cur = conn.execute(op.query, op.params)
        return cur.fetchall()
    rcur = conn.cursor(row_factory=op.row_factory)
    rcur.execute(op.query, op.params)
    return rcur.fetchall()


def _fetch_binary(conn: AnyConn, op: _ops.Op[Any]) -> list[Any]:
    """The rows of ``op`` on ``conn``: tuples in binary format, whatever its row factory."""
    cur = conn.cursor(binary=True, row_factory=tuple_row)
    cur.execute(op.query, op.params)
    return cur.fetchall()


class Client(NodeCalls):
    """The pgbatch SQL API over psycopg (sync)."""

    def __init__(self, pool: ConnectionPool[Any], *,
                 retry_for: float = DEFAULT_RETRY_FOR) -> None:
        """Use ``pool`` (its connections should be autocommit; see ``connect``).

        ``retry_for``: seconds ``enqueue``/``enqueue_many`` keep retrying a lost
        connection, unless a call says otherwise (0 to one day).
        """
        self.pool = pool
        self.retry_for = _retry.check_retry_for(retry_for)
        self._guard: ConnectionPoolGuard | None = None

    @property
    def guard(self) -> ConnectionPoolGuard:
        """The tie of the pool to the watch of its DSN (``pgbatch._reconnect``)."""
        if self._guard is None:
            self._guard = ConnectionPoolGuard.of(self.pool)
        return self._guard

    @classmethod
    def connect(cls, conninfo: str, *, min_size: int = 1, max_size: int = 10,
                      pooler: str | None = None,
                      retry_for: float = DEFAULT_RETRY_FOR) -> Client:
        """Open a pool of autocommit connections to ``conninfo`` and return a client on it.

        ``pooler``: ``"transaction"`` when ``conninfo`` goes through a transaction
        pooler (PgBouncer): the connections prepare no statements. Default
        ``$PGBATCH_POOLER``, else ``"none"`` (see ``pgbatch._pooler``).
        The pool reconnects as the process's watch of ``conninfo`` says
        (``pgbatch._reconnect``); ``retry_for``: see the constructor.
        """
        pool = ConnectionPoolGuard.new_pool(
            conninfo, min_size=min_size, max_size=max_size,
            kwargs=connection_kwargs(resolve_pooler(pooler)), name="pgbatch")
        pool.open(wait=True)
        return cls(pool, retry_for=retry_for)

    def close(self) -> None:
        """Close the pool."""
        self.pool.close()

    def run(self, op: _ops.Op[T], conn: AnyConn | None = None,
                  timeout: float | None = None) -> T:
        """Run one API call on ``conn`` (caller's transaction) or a pooled connection.

        ``timeout``: seconds to wait for a pooled connection (default: the pool's).
        A lost connection is reported to the watch of the pool's DSN; a pooled
        connection on a server that no longer takes writes is closed, not reused.
        """
        try:
            if conn is not None:
                rows = _fetch(conn, op)
            else:
                with self.pool.connection(timeout) as pooled:
                    try:
                        rows = _fetch(pooled, op)
                    except psycopg.Error as exc:
                        self.guard.report_lost(exc, pooled)
                        if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
                            pooled.close()
                        raise
        except psycopg.Error as exc:
            if conn is not None:
                self.guard.report_lost(exc, conn)
            mapped = translate(exc)
            if mapped is not None:
                raise mapped from exc
            raise
        return op.decode(rows)

    def enqueue(self, queue: str, payload: Json = None, *, run_at: datetime | None = None,
                      priority: int = 0, dedup_key: str | None = None,
                      max_attempts: int = DEFAULT_MAX_ATTEMPTS, id: UUID | None = None,
                      conn: AnyConn | None = None, retry_for: float | None = None) -> UUID:
        """Enqueue one job; returns its id (or the live duplicate's, see dedup_key).

        Without ``conn``: the id is chosen here (``id``, else a new UUIDv7), and a
        lost connection (also ``AdminShutdown`` and a read-only session after a
        failover) is retried with that id for up to ``retry_for`` seconds
        (default: the client's), waiting for the database between attempts; a
        ``DuplicateJobId`` for that id after a lost attempt means the lost
        attempt committed, and the call returns the id. So one call makes one
        job. Past the deadline: ``EnqueueUnconfirmed`` (it carries the id).
        With ``conn``: one attempt in the caller's transaction, never retried.
        """
        if conn is not None:
            return self._enqueue_once(
                _enqueue_ops.enqueue(queue, payload, run_at, priority, dedup_key, max_attempts, id),
                conn)
        job_id = id if id is not None else _retry.new_job_id()
        op = _enqueue_ops.enqueue(queue, payload, run_at, priority, dedup_key, max_attempts, job_id)
        done = self._enqueue_retried(op, [job_id], retry_for)
        return job_id if done is None else done

    def enqueue_many(self, requests: Sequence[EnqueueRequest], *,
                           conn: AnyConn | None = None,
                           retry_for: float | None = None) -> list[UUID]:
        """Enqueue many jobs in one call (``pgbatch.enqueue_arrays``); returns their ids in order.

        One statement and one transaction (the caller's with ``conn``): every
        request is enqueued or, when one is refused, none; the error names the
        request (``invalid enqueue request 3: ...``). Retried like ``enqueue``
        without ``conn`` (requests without an id get one first; a
        ``DuplicateJobId`` for one of them after a lost attempt means that
        attempt committed them all). A request with a ``dedup_key`` whose lost
        attempt committed reports its own id, even if that attempt had matched
        an older live job. With ``conn``: one attempt in the caller's
        transaction, never retried.
        """
        if conn is not None:
            return self._enqueue_once(_enqueue_ops.enqueue_many(requests), conn)
        job_ids = _enqueue_ops.ids_for(requests)
        done = self._enqueue_retried(_enqueue_ops.enqueue_many(requests, job_ids),
                                           job_ids, retry_for)
        return job_ids if done is None else done

    def _enqueue_retried(self, op: _ops.Op[T], job_ids: list[UUID],
                               retry_for: float | None) -> T | None:
        """Run ``op`` until it commits, retrying lost connections with the same ids.

        ``None``: a ``DuplicateJobId`` for one of ``job_ids`` after a lost
        attempt, so that attempt committed (the caller returns its ids).
        """
        attempts = _retry.EnqueueAttempts(job_ids, self._retry_for(retry_for))
        while True:
            try:
                return self._enqueue_once(op, None, attempts.checkout_timeout())
            except DuplicateJobId as exc:
                if attempts.confirms(exc):
                    return None
                raise
            except psycopg.Error as exc:
                if not attempts.retry(exc):
                    raise
            self.guard.wait_up(attempts.remaining())

    def _enqueue_once(self, op: _ops.Op[T], conn: AnyConn | None,
                            timeout: float | None = None) -> T:
        """Run one enqueue call (one SQL statement) once: the attempt a retry repeats.

        The ids come back in binary (no text form of a thousand UUIDs to write
        and parse). Without ``conn`` it borrows a pooled connection with
        ``getconn`` (waiting at most ``timeout`` seconds, default the pool's)
        and gives it back with ``putconn``, without the ``connection()``
        context (whose ``with conn:`` commit does nothing on an autocommit
        connection but costs the producer's hot path its time); ``putconn``
        rolls back or discards a connection an error left in a transaction or
        broken. A lost connection is reported to the watch of the pool's DSN;
        a pooled connection on a server that no longer takes writes is closed.
        """
        try:
            if conn is not None:
                try:
                    rows = _fetch_binary(conn, op)
                except psycopg.Error as exc:
                    self.guard.report_lost(exc, conn)
                    raise
            else:
                pooled = self.pool.getconn(timeout)
                try:
                    rows = _fetch_binary(pooled, op)
                except psycopg.Error as exc:
                    self.guard.report_lost(exc, pooled)
                    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
                        pooled.close()
                    raise
                finally:
                    self.pool.putconn(pooled)
        except psycopg.Error as exc:
            mapped = translate(exc)
            if mapped is not None:
                raise mapped from exc
            raise
        return op.decode(rows)

    def _retry_for(self, retry_for: float | None) -> float:
        return self.retry_for if retry_for is None else _retry.check_retry_for(retry_for)

    def claim(self, queue: str, max_jobs: int = 1, *, lease: timedelta = DEFAULT_LEASE,
                    worker_id: str | None = None, conn: AnyConn | None = None) -> list[ClaimedJob]:
        """Claim up to ``max_jobs`` due jobs of ``queue`` (one transaction)."""
        return self.run(_ops.claim(queue, max_jobs, lease, worker_id), conn)

    def ack(self, job_id: UUID, claim_token: UUID, effects: AckEffects | None = None, *,
                  conn: AnyConn | None = None) -> list[UUID]:
        """Mark a claimed job done, applying ``effects`` atomically; returns follow-up ids."""
        return self.run(_ops.ack(job_id, claim_token, effects), conn)

    def ack_many(self, acks: Sequence[AckRequest], *,
                       conn: AnyConn | None = None) -> list[AckOutcome]:
        """Settle many claims in one transaction; one outcome per entry."""
        return self.run(_ops.ack_many(acks), conn)

    def ack_ids(self, job_ids: Sequence[UUID], claim_tokens: Sequence[UUID], *,
                      conn: AnyConn | None = None) -> list[AckOutcome]:
        """Ack ``job_ids[i]`` with ``claim_tokens[i]`` (no effects) in one transaction.

        Returns an outcome only for the entries that were not acked
        (``claim_lost``/``not_found``), in input order: an empty list means all were.
        """
        return self.run(_ops.ack_ids(job_ids, claim_tokens), conn)

    def nack(self, job_id: UUID, claim_token: UUID, *, error: Json = None,
                   retry_at: datetime | None = None,
                   backoff_base: timedelta = timedelta(seconds=1),
                   backoff_cap: timedelta = timedelta(hours=1),
                   conn: AnyConn | None = None) -> str:
        """Fail an attempt: retry later, or dead-letter at the last attempt; returns the state."""
        return self.run(
            _ops.nack(job_id, claim_token, error, retry_at, backoff_base, backoff_cap), conn)

    def dead_letter(self, job_id: UUID, claim_token: UUID, reason: str | None = None, *,
                          conn: AnyConn | None = None) -> None:
        """Move a claimed job to dead."""
        self.run(_ops.dead_letter(job_id, claim_token, reason), conn)

    def renew_lease(self, job_id: UUID, claim_token: UUID, lease: timedelta = DEFAULT_LEASE,
                          *, conn: AnyConn | None = None) -> datetime:
        """Extend a claim's lease; returns the new expiry."""
        return self.run(_ops.renew_lease(job_id, claim_token, lease), conn)

    def fence_claim(self, job_id: UUID, claim_token: UUID, lease: timedelta = DEFAULT_LEASE,
                          *, conn: AnyConn | None = None) -> tuple[datetime, bool]:
        """Check the claim and extend its lease in ``conn``'s transaction (durably).

        Call it last in a transaction run inside a claim: the caller's writes
        then commit only with a live claim. Returns ``(new expiry, cancel
        requested)``; raises ClaimLost when the claim is gone.
        """
        return self.run(_ops.fence_claim(job_id, claim_token, lease), conn)

    def release(self, job_id: UUID, claim_token: UUID, *,
                      conn: AnyConn | None = None) -> None:
        """Give a claim back without consuming an attempt."""
        self.run(_ops.release(job_id, claim_token), conn)

    def requeue_dead_job(self, job_id: UUID, run_at: datetime | None = None, *,
                               request_id: UUID | None = None,
                               conn: AnyConn | None = None) -> UUID:
        """Revive a dead job with a fresh attempt count; returns its id.

        A repeat with the same ``request_id`` returns the first answer and changes nothing."""
        return self.run(_ops.requeue_dead_job(job_id, run_at, request_id), conn)

    def cancel_job(self, job_id: UUID, *, conn: AnyConn | None = None) -> str:
        """Cancel a pending job, or flag a claimed one; returns the resulting state."""
        return self.run(_ops.cancel_job(job_id), conn)

    def reap_expired(self, limit: int = 1000, *, conn: AnyConn | None = None) -> int:
        """End claims whose lease expired; returns how many."""
        return self.run(_ops.reap_expired(limit), conn)

    def sweep_retention(self, done_after: timedelta = timedelta(days=1),
                              dead_after: timedelta = timedelta(days=7), limit: int = 10000, *,
                              conn: AnyConn | None = None) -> int:
        """Delete old archived records; returns how many."""
        return self.run(_ops.sweep_retention(done_after, dead_after, limit), conn)

    def pause_queue(self, queue: str, *, conn: AnyConn | None = None) -> None:
        """Stop claims on ``queue``."""
        self.run(_ops.pause_queue(queue), conn)

    def resume_queue(self, queue: str, *, conn: AnyConn | None = None) -> None:
        """Restart claims on ``queue``."""
        self.run(_ops.resume_queue(queue), conn)

    def set_queue_notify(self, queue: str, enabled: bool, *,
                               conn: AnyConn | None = None) -> None:
        """Switch NOTIFY on enqueue on or off for ``queue``."""
        self.run(_ops.set_queue_notify(queue, enabled), conn)

    def queue_stats(self, queue: str | None = None, *,
                          conn: AnyConn | None = None) -> list[QueueStats]:
        """Counts per queue (all queues when ``queue`` is None)."""
        return self.run(_ops.queue_stats(queue), conn)

    def get_job(self, job_id: UUID, *, conn: AnyConn | None = None) -> JobInfo:
        """One job, live or archived (``pgbatch.get_job``); JobNotFound if there is none.

        A pending job that is not due yet has state ``scheduled``. Never
        carries a claim token. Reads any job's payload and errors: an
        operator's call (``pgbatch_admin``).
        """
        return self.run(_ops.get_job(job_id), conn)

    def list_jobs(self, queue: str | None = None, state: str | None = None, *,
                        created_after: datetime | None = None,
                        created_before: datetime | None = None, limit: int = 50,
                        cursor: JobCursor | None = None,
                        conn: AnyConn | None = None) -> list[JobInfo]:
        """Jobs newest first, live and archived (``pgbatch.list_jobs``).

        Filters: ``queue``, ``state`` (one of ``JOB_STATES``), creation time in
        ``[created_after, created_before)``. Order: ``created_at``, then
        enqueue order (``seq``), then id, all descending, so jobs created in
        the same statement keep one stable order. Page with
        ``cursor=page[-1].cursor``: the next page starts after that row.
        ``limit`` is 1 to 10000. Bad arguments raise InvalidQueueName or
        InvalidArgument. An operator's call (``pgbatch_admin``).
        """
        return self.run(
            _ops.list_jobs(queue, state, created_after, created_before, limit, cursor), conn)

    def channel_name(self, queue: str, *, conn: AnyConn | None = None) -> str:
        """The NOTIFY channel of ``queue``."""
        return self.run(_ops.channel_name(queue), conn)

    def now(self, *, conn: AnyConn | None = None) -> datetime:
        """The database clock, ``pgbatch.now()`` (the transaction's start time)."""
        return self.run(_ops.now(), conn)

    def kv_get(self, key: str, *, conn: AnyConn | None = None) -> Json:
        """The value ack effects stored under ``key``, or None."""
        return self.run(_ops.kv_get(key), conn)

    # -- the task registry and queue removal (pgbatch._registry) --------------------------
    def enqueue_task(self, task: str, kwargs: dict[str, Json] | None = None, *,
                           queue: str | None = None, run_at: datetime | None = None,
                           priority: int | None = None, dedup_key: str | None = None,
                           max_attempts: int | None = None, id: UUID | None = None,
                           conn: AnyConn | None = None) -> UUID:
        """Enqueue a job of ``task`` by name, with its registered options where none is given.

        The queue, priority and max_attempts default to those a worker that
        has the task recorded in the task registry; InvalidArgument when the
        task is not registered and no ``queue`` is given.
        """
        return self.run(_registry.enqueue_task(task, kwargs, queue, run_at, priority,
                                                     dedup_key, max_attempts, id), conn)

    def register_tasks(self, node_id: str, tasks: Sequence[dict[str, Json]], *,
                             conn: AnyConn | None = None) -> int:
        """Record tasks' options in the task registry (what a worker does at start)."""
        return self.run(_registry.register_tasks(node_id, tasks), conn)

    def list_tasks(self, name: str | None = None, *,
                         conn: AnyConn | None = None) -> list[TaskInfo]:
        """The task registry, by name (one task when ``name`` is given)."""
        return self.run(_registry.list_tasks(name), conn)

    def drop_queue(self, queue: str, *, conn: AnyConn | None = None) -> None:
        """Remove a queue that holds no live job (InvalidState otherwise)."""
        self.run(_registry.drop_queue(queue), conn)
