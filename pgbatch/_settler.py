"""Batched settlement: many acks in one transaction, per-job outcomes kept.

Finished jobs are queued here and sent with ``ack_many``. One batch is in
flight at a time (``max_in_flight``); while it runs, the next one
accumulates, so under load acks batch themselves (up to ``max_batch``) and at
low load each ack goes at once. Two in flight measured slower on 2 cores
(more server CPU contention), so one is the default.
``linger`` adds a small wait for more acks before sending (off by default).

Each entry gets its own outcome: a lost claim is logged distinctly from other
failures and the worker goes on (the redelivered attempt settles the job). An
entry that fails for another reason (e.g. malformed effects) is nacked with
that error, so it is retried or dead-lettered instead of waiting for its lease.
If the connection drops during ``ack_many`` the batch is resent: settlement is
idempotent for the same claim token, so a batch that did commit is not
misreported.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import psycopg

from pgbatch._aio_client import AsyncClient
from pgbatch._types import AckEffects, AckOutcome, AckRequest, ClaimedJob

log = logging.getLogger("pgbatch.worker")


@dataclass
class SettleStats:
    """Counters of the settlement path."""

    acked: int = 0
    claim_lost: int = 0
    errors: int = 0
    batches: int = 0
    retries: int = 0


class Settler:
    """Queues acks and sends them in batches with ``ack_many``."""

    def __init__(self, client: AsyncClient, *, max_batch: int = 200, linger: float = 0.0,
                 max_backoff: float = 5.0, max_in_flight: int = 1) -> None:
        self.client = client
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.linger = linger
        self.max_backoff = max_backoff
        self.stats = SettleStats()
        self._pending: list[tuple[AckRequest, ClaimedJob, asyncio.Future[AckOutcome]]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    def ack(self, job: ClaimedJob, effects: AckEffects | None) -> asyncio.Future[AckOutcome]:
        """Queue an ack; the future resolves with its outcome."""
        fut: asyncio.Future[AckOutcome] = asyncio.get_running_loop().create_future()
        self._pending.append((AckRequest(job.id, job.claim_token, effects), job, fut))
        self._idle.clear()
        self._wake.set()
        return fut

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

    async def _send(self, batch: list[tuple[AckRequest, ClaimedJob, asyncio.Future[AckOutcome]]],
                    ) -> None:
        backoff = 0.05
        while True:
            try:
                outcomes = await self.client.ack_many([b[0] for b in batch])
                break
            except psycopg.OperationalError as exc:
                self.stats.retries += 1
                log.warning("ack_many failed (%s); resending %d acks in %.2fs",
                            exc, len(batch), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            except Exception as exc:
                log.exception("ack_many failed; %d jobs stay claimed until reaped", len(batch))
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                self.stats.errors += len(batch)
                return
        self.stats.batches += 1
        for (_, job, fut), outcome in zip(batch, outcomes, strict=True):
            if outcome.status == "acked":
                self.stats.acked += 1
            elif outcome.status in ("claim_lost", "not_found"):
                self.stats.claim_lost += 1
                log.warning("lost claim: job %s (attempt %d) could not be acked: %s",
                            job.id, job.attempt, outcome.message)
            else:
                self.stats.errors += 1
                log.error("ack of job %s failed (%s): %s; nacking it",
                          job.id, outcome.error_code, outcome.message)
                await self._nack_quietly(job, outcome)
            if not fut.done():
                fut.set_result(outcome)

    async def _nack_quietly(self, job: ClaimedJob, outcome: AckOutcome) -> None:
        try:
            await self.client.nack(job.id, job.claim_token, error={
                "type": "AckFailed", "message": outcome.message, "sqlstate": outcome.error_code})
        except Exception:
            log.exception("nack of job %s after a failed ack failed too", job.id)

    async def drain(self) -> None:
        """Wait until everything queued so far is settled."""
        await self._idle.wait()

    def close(self) -> None:
        """Stop after settling what is queued."""
        self._closed = True
        self._wake.set()
