"""The settler: every settlement of the worker goes through it.

Acks of finished jobs are batched (below). Nacks (a failed attempt),
dead-letters, releases (shutdown, hand-off) and acks made inside a job's own
transaction (``ack_in``, for transactional tasks and fenced handlers) are
sent at once, through the same object, so its counters (``SettleStats``)
count every settlement and a lost claim is logged the same way whatever the
path.

Batched acks: many in one transaction, per-job outcomes kept.

Finished jobs are queued here and sent in batches: with ``ack_ids`` (two
uuid arrays; only the entries that were not acked come back) when no job in
the batch has effects, else with ``ack_many``. One batch is in
flight at a time (``max_in_flight``); while it runs, the next one
accumulates, so under load acks batch themselves (up to ``max_batch``) and at
low load each ack goes at once. Two in flight measured slower on 2 cores
(more server CPU contention), so one is the default. A batch takes up to
``max_batch`` acks, so a settler that fell behind (a slow WAL flush) catches
up with larger commits; and once ``high_water`` acks wait, ``wait_for_room()``
holds the worker's next claim until they drain. Finished jobs therefore
never pile up unsettled until their leases run out (the reaper would then
hand them out again and they would run twice).
``linger`` adds a small wait for more acks before sending (off by default).

Each entry gets its own outcome: a lost claim is logged distinctly from other
failures and the worker goes on (the redelivered attempt settles the job). An
entry that fails for another reason (e.g. malformed effects) is nacked with
that error, so it is retried or dead-lettered instead of waiting for its lease.
If the connection drops while a batch is sent, it is resent: settlement is
idempotent for the same claim token, so a batch that did commit is not
misreported.

During an outage (``pgbatch._reconnect``: the watch of the DSN logs it once)
these resends log below WARNING. A nack or dead-letter that fails because the
connection was lost is not resent: one WARNING line says so, without a
traceback, and the job's lease expires and it is reaped and retried (an
attempt is consumed, as for a crash).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from pgbatch._aio_client import AsyncClient
from pgbatch._client import Client
from pgbatch._errors import ClaimLost, JobNotFound
from pgbatch._reconnect import during_outage
from pgbatch._types import AckEffects, AckOutcome, AckRequest, ClaimedJob, Json
from pgbatch.worker.error_bounds import bounded_error, bounded_reason

_Entry = tuple[ClaimedJob, AckEffects | None]

log = logging.getLogger("pgbatch.worker")


@dataclass
class SettleStats:
    """Counters of the settlement path."""

    acked: int = 0  # every ack, batched or in the job's own transaction
    acked_in_transaction: int = 0
    nacked: int = 0
    dead_lettered: int = 0
    released: int = 0
    claim_lost: int = 0
    errors: int = 0
    batches: int = 0
    retries: int = 0


class Settler:
    """Settles jobs: acks in batches (``ack_ids``/``ack_many``), everything else at once.

    ``sync_client`` gives the sync client whose connections sync handlers use
    (only ``ack_in_sync`` needs it). Build it on the event loop that runs it.
    """

    def __init__(self, client: AsyncClient, *, max_batch: int = 1000, linger: float = 0.0,
                 max_backoff: float = 5.0, max_in_flight: int = 1,
                 high_water: int | None = None,
                 sync_client: Callable[[], Client] | None = None) -> None:
        self.client = client
        self.sync_client = sync_client
        self._loop = asyncio.get_running_loop()
        self.max_batch = max_batch
        self.high_water = 2 * max_batch if high_water is None else high_water
        self.max_in_flight = max_in_flight
        self.linger = linger
        self.max_backoff = max_backoff
        self.stats = SettleStats()
        self._pending: list[_Entry] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False

    def ack(self, job: ClaimedJob, effects: AckEffects | None) -> None:
        """Queue an ack (``effects`` applied atomically with it); outcomes are logged."""
        self._pending.append((job, None if effects is None or effects.is_empty() else effects))
        if len(self._pending) >= self.high_water:
            self._room.clear()
        self._idle.clear()
        self._wake.set()

    @property
    def backlog(self) -> int:
        """Acks queued and not yet sent."""
        return len(self._pending)

    async def wait_for_room(self) -> None:
        """Return once fewer than ``high_water`` acks are waiting to be sent."""
        await self._room.wait()

    async def run(self) -> None:
        """Send batches until ``close()`` and everything queued is settled.

        Up to ``max_in_flight`` batches are sent concurrently (on separate
        pooled connections).
        """
        inflight: set[asyncio.Task[None]] = set()

        def sent(task: asyncio.Task[None]) -> None:
            inflight.discard(task)
            self._wake.set()

        while True:
            if self._pending and len(inflight) < self.max_in_flight:
                if self.linger > 0 and len(self._pending) < self.max_batch:
                    await asyncio.sleep(self.linger)
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                if len(self._pending) < self.high_water:
                    self._room.set()
                task = asyncio.create_task(self._send(batch), name="pgbatch-ack-batch")
                inflight.add(task)
                task.add_done_callback(sent)
                continue
            if not self._pending and not inflight:
                self._idle.set()
                if self._closed:
                    return
            self._wake.clear()
            await self._wake.wait()

    async def _send(self, batch: list[_Entry]) -> None:
        backoff = 0.05
        while True:
            try:
                failed = await self._settle(batch)
                break
            except psycopg.OperationalError as exc:
                self.stats.retries += 1
                level = logging.INFO if self._outage(exc) else logging.WARNING
                log.log(level, "ack batch failed (%s); resending %d acks in %.2fs",
                        exc, len(batch), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            except Exception:
                log.exception("ack batch failed; %d jobs stay claimed until reaped", len(batch))
                self.stats.errors += len(batch)
                return
        self.stats.batches += 1
        self.stats.acked += len(batch) - len(failed)
        for job, outcome in failed:
            if outcome.status in ("claim_lost", "not_found"):
                self.stats.claim_lost += 1
                log.warning("lost claim: job %s (attempt %d) could not be acked: %s",
                            job.id, job.attempt, outcome.message)
            else:
                self.stats.errors += 1
                log.error("ack of job %s failed (%s): %s; nacking it",
                          job.id, outcome.error_code, outcome.message)
                await self._nack_quietly(job, outcome)

    async def _settle(self, batch: list[_Entry]) -> list[tuple[ClaimedJob, AckOutcome]]:
        """Send one batch; return the entries that were not acked, with their outcomes."""
        if all(effects is None for _, effects in batch):
            missed = await self.client.ack_ids([job.id for job, _ in batch],
                                               [job.claim_token for job, _ in batch])
            if not missed:
                return []
            jobs = {job.id: job for job, _ in batch}
            return [(jobs[o.job_id], o) for o in missed]
        outcomes = await self.client.ack_many(
            [AckRequest(job.id, job.claim_token, effects) for job, effects in batch])
        return [(job, o) for (job, _), o in zip(batch, outcomes, strict=True) if not o.ok]

    async def _nack_quietly(self, job: ClaimedJob, outcome: AckOutcome) -> None:
        try:
            await self.client.nack(job.id, job.claim_token, error=bounded_error({
                "type": "AckFailed", "message": outcome.message, "sqlstate": outcome.error_code}))
            self.stats.nacked += 1
        except Exception as exc:  # noqa: BLE001 - logged; the lease expires
            self._failed(job, "nack after a failed ack", exc)

    # -- settlements sent at once ------------------------------------------------------
    def _outage(self, exc: BaseException) -> bool:
        return during_outage(self.client.guard.watch, exc)

    def _failed(self, job: ClaimedJob, what: str, exc: Exception) -> None:
        """A settlement sent at once failed: a WARNING line (a dropped connection) or ERROR."""
        self.stats.errors += 1
        if self._outage(exc):
            log.warning("%s of job %s (attempt %d) failed: the connection was lost (%s); its "
                        "lease will expire and the job will be retried", what, job.id,
                        job.attempt, str(exc).strip().splitlines()[0] if str(exc) else
                        type(exc).__name__)
        else:
            log.error("%s of job %s failed; its lease will expire", what, job.id, exc_info=exc)

    def _lost(self, job: ClaimedJob, what: str, exc: Exception) -> None:
        self.stats.claim_lost += 1
        log.warning("lost claim: job %s (attempt %d) could not be %s: %s",
                    job.id, job.attempt, what, exc)

    async def nack(self, job: ClaimedJob, error: Json, *, retry_at: datetime | None = None,
                   backoff_base: timedelta = timedelta(seconds=1),
                   backoff_cap: timedelta = timedelta(hours=1)) -> str | None:
        """Fail the attempt (retry with backoff, dead at the last); the state, or None.

        An error over the SQL API's limit is cut to fit (``pgbatch.worker.error_bounds``).
        """
        error = bounded_error(error)
        try:
            state = await self.client.nack(job.id, job.claim_token, error=error,
                                           retry_at=retry_at, backoff_base=backoff_base,
                                           backoff_cap=backoff_cap)
        except (ClaimLost, JobNotFound) as exc:
            self._lost(job, "nacked", exc)
            return None
        except Exception as exc:  # noqa: BLE001 - logged; the lease expires
            self._failed(job, "nack", exc)
            return None
        self.stats.nacked += 1
        info = error if isinstance(error, dict) else {}
        log.debug("job %s attempt %d failed (%s: %s); now %s", job.id, job.attempt,
                 info.get("type"), info.get("message"), state)
        return state

    async def dead_letter(self, job: ClaimedJob, reason: str | None) -> bool:
        """Move the job to dead; False when that failed (logged). A long reason is cut to fit."""
        try:
            await self.client.dead_letter(job.id, job.claim_token, bounded_reason(reason))
        except (ClaimLost, JobNotFound) as exc:
            self._lost(job, "dead-lettered", exc)
            return False
        except Exception as exc:  # noqa: BLE001 - logged; the lease expires
            self._failed(job, "dead-letter", exc)
            return False
        self.stats.dead_lettered += 1
        return True

    async def release(self, job: ClaimedJob, why: str) -> bool:
        """Give the claim back (pending again, attempt not consumed); False if it failed."""
        try:
            await self.client.release(job.id, job.claim_token)
        except (ClaimLost, JobNotFound):
            return False  # already gone: nothing to give back
        except psycopg.Error as exc:
            self.stats.errors += 1
            level = logging.INFO if self._outage(exc) else logging.WARNING
            log.log(level, "could not release job %s (%s); its lease will expire", job.id, exc)
            return False
        self.stats.released += 1
        log.info("released job %s (%s)", job.id, why)
        return True

    async def ack_in(self, conn: psycopg.AsyncConnection[Any], job: ClaimedJob,
                     effects: AckEffects | None) -> None:
        """Ack inside the caller's open transaction on ``conn`` (it commits it).

        Raises ClaimLost when the claim is gone (the caller rolls back). Call
        ``acked_in_transaction`` once the transaction committed.
        """
        try:
            await self.client.ack(job.id, job.claim_token, effects, conn=conn)
        except (ClaimLost, JobNotFound) as exc:
            self._lost(job, "acked", exc)
            raise ClaimLost(str(exc)) from exc

    def ack_in_sync(self, conn: psycopg.Connection[Any], job: ClaimedJob,
                    effects: AckEffects | None) -> None:
        """``ack_in`` for a sync connection, from a handler's thread."""
        assert self.sync_client is not None, "a Settler for sync handlers needs sync_client"
        try:
            self.sync_client().ack(job.id, job.claim_token, effects, conn=conn)
        except (ClaimLost, JobNotFound) as exc:
            self._loop.call_soon_threadsafe(self._lost, job, "acked", exc)
            raise ClaimLost(str(exc)) from exc

    def acked_in_transaction(self) -> None:
        """Count an ack whose transaction committed (thread-safe)."""
        self._loop.call_soon_threadsafe(self._count_acked_in_transaction)

    def _count_acked_in_transaction(self) -> None:
        self.stats.acked += 1
        self.stats.acked_in_transaction += 1

    async def drain(self) -> None:
        """Wait until everything queued so far is settled."""
        await self._idle.wait()

    def close(self) -> None:
        """Stop after settling what is queued."""
        self._closed = True
        self._wake.set()
