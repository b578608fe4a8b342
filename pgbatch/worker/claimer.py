"""The claimer: finds each slot its next job; owns the prefetch buffer.

A slot asks ``next()`` for a claim. It gets one from the prefetch buffer, or
handed over by another slot's claim, or by claiming itself when a wakeup (a
notification, a due-time timer, a pass-on token) or its poll timeout says
so. A claim is sized to the free capacity: the claiming slot, every idle
slot, and the room left in the prefetch buffer (``PrefetchPolicy``); the
slot keeps the first job, hands the others to idle slots and buffers the
rest. Each claim follows the dispatcher protocol: ``begin_claim`` when it
starts, exactly one ``end_claim`` (in a ``finally``) when it returns, with
``full`` when it got all it asked for, so a backlog keeps the slots busy (see
``dispatcher``). Every claimed job is handed to the lease keeper at once.

When the buffer is down to half its limit and the last claim came back
full, the next batch is claimed in the background, so claim round trips
overlap with running jobs. A buffered job whose renewal finds it cancelled
is released (it ends cancelled), one whose claim was lost is dropped.

Errors: a dropped connection is retried with capped backoff; any other
claim error is fatal (``on_fatal``): retrying would hide a bug.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from pgbatch._aio_client import AsyncClient
from pgbatch._reconnect import during_outage
from pgbatch._types import ClaimedJob
from pgbatch.worker.claim import Claim
from pgbatch.worker.dispatcher import WakeupDispatcher
from pgbatch.worker.lease_keeper import LeaseKeeper
from pgbatch.worker.prefetch import PrefetchPolicy
from pgbatch.worker.settler import Settler

log = logging.getLogger("pgbatch.worker")


@dataclass
class ClaimStats:
    """Counters of the claim path."""

    claim_calls: int = 0
    claimed: int = 0
    empty_claims: int = 0


class Claimer:
    """Claims jobs for the slots of one worker and keeps its prefetch buffer."""

    def __init__(self, client: AsyncClient, dispatcher: WakeupDispatcher[Claim], *,
                 queues: Sequence[str], leases: dict[str, timedelta], worker_id: str,
                 settler: Settler, lease_keeper: LeaseKeeper, prefetch: PrefetchPolicy,
                 max_batch: int, poll_interval: float,
                 on_fatal: Callable[[BaseException], None],
                 arm_due: Callable[[str, float], None] | None = None) -> None:
        self.client = client
        self.dispatcher = dispatcher
        self.queues = list(queues)
        self.leases = leases
        self.worker_id = worker_id
        self.settler = settler
        self.lease_keeper = lease_keeper
        self.prefetch = prefetch
        self.max_batch = max_batch
        self.poll_interval = poll_interval
        self.on_fatal = on_fatal
        self.arm_due = arm_due
        self.stats = ClaimStats()
        self.stopping = False
        self._buffer: deque[Claim] = deque()
        self._refills: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._last_claim = dict.fromkeys(self.queues, time.monotonic())

    @property
    def buffered(self) -> int:
        """Claimed jobs waiting in the prefetch buffer."""
        return len(self._buffer)

    def stop(self) -> None:
        """Claim nothing more; ``next()`` returns None from now on."""
        self.stopping = True

    # -- the slots' side -----------------------------------------------------------
    async def next(self) -> Claim | None:
        """The calling slot's next job; None once the worker is stopping."""
        dispatcher = self.dispatcher
        while not self.stopping:
            if self._buffer:
                return self._take_buffered()
            wake = await dispatcher.wait(self._next_poll_in())
            if self.stopping:
                if wake is not None and wake.job is not None:
                    self._buffer.append(wake.job)  # released with the buffer
                if wake is not None and wake.queue is not None:
                    await self._claim(wake.queue)  # ends the claim the wakeup began
                return None
            if wake is None:
                # poll: the safety net, at most once per interval per queue and
                # process (a claim for any reason counts); also arms timers for
                # jobs due later
                queue = self._poll_queue()
                if queue is not None:
                    dispatcher.begin_claim(queue)
                    mine, got = await self._claim(queue)
                    if mine is not None:
                        return mine
                    if got == 0 and self.arm_due is not None:
                        await self._arm_next_due(queue)
            elif wake.job is not None:
                return wake.job
            elif wake.queue is not None:
                mine, _ = await self._claim(wake.queue)
                if mine is not None:
                    return mine
            # else: an empty wakeup, to re-check the stop flag
        return None

    def _pollable(self) -> dict[str, float]:
        """Last claim time of each queue that has no claim in flight."""
        return {q: t for q, t in self._last_claim.items() if not self.dispatcher.is_claiming(q)}

    def _next_poll_in(self) -> float:
        # a queue whose claim is in flight (e.g. retrying while the database is
        # away) is not due for a poll: counting it would wake idle slots every
        # millisecond until that claim returns
        pollable = self._pollable()
        if not pollable:
            return self.poll_interval
        oldest = min(pollable.values())
        return max(oldest + self.poll_interval - time.monotonic(), 0.0) + 0.001

    def _poll_queue(self) -> str | None:
        pollable = self._pollable()
        if not pollable:
            return None
        queue = min(pollable, key=pollable.__getitem__)
        if pollable[queue] + self.poll_interval > time.monotonic():
            return None
        return queue

    # -- claiming ------------------------------------------------------------------
    async def _claim(self, queue: str, *, run_first: bool = True) -> tuple[Claim | None, int]:
        """Claim a batch for the free capacity; ``(the caller's job, jobs claimed)``.

        The claim was begun (``begin_claim``) by whoever decided to claim; it
        ends here, once, whatever happens. With ``run_first=False`` (a
        background refill) every job is handed out or buffered.
        """
        jobs: list[ClaimedJob] = []
        want = 0
        try:
            if self.stopping:
                return None, 0
            # backpressure: do not run ahead of settlement (see Settler.wait_for_room)
            await self.settler.wait_for_room()
            if self.stopping:
                return None, 0
            # let slots that are finishing in this same loop iteration park first, so
            # the batch is sized to all the capacity that is free now
            await asyncio.sleep(0)
            self._last_claim[queue] = time.monotonic()
            want = min(int(run_first) + self.dispatcher.idle_count + self._prefetch_room(),
                       self.max_batch)
            if want <= 0:
                return None, 0
            jobs = await self._claim_batch(queue, want)
            if not jobs:
                return None, 0
            lease = self.leases[queue]
            renew_at = time.monotonic() + lease.total_seconds() / 3
            claims = [Claim(job, lease, self, renew_at) for job in jobs]
            for c in claims:
                self.lease_keeper.keep(c)
            mine, rest = (claims[0], claims[1:]) if run_first else (None, claims)
            for c in rest:
                if not self.dispatcher.hand(c):
                    self._buffer.append(c)
            if mine is not None and self.stopping:
                self._buffer.append(mine)
                mine = None
            return mine, len(jobs)
        finally:
            self.dispatcher.end_claim(queue, full=want > 0 and len(jobs) == want)

    async def _claim_batch(self, queue: str, want: int) -> list[ClaimedJob]:
        backoff = 0.05
        while True:
            try:
                jobs = await self.client.claim(queue, want, lease=self.leases[queue],
                                               worker_id=self.worker_id)
                break
            except psycopg.OperationalError as exc:
                if self.stopping:
                    return []
                if during_outage(self.client.guard.watch, exc):
                    # the watch logged the outage; claim again as soon as it is over
                    log.info("claim on %r failed (%s); waiting for the database", queue, exc)
                    if await self.client.guard.wait_up(5.0):
                        backoff = 0.05
                        continue
                else:
                    log.warning("claim on %r failed (%s); retrying in %.2fs", queue, exc,
                                backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as exc:
                log.exception("claim on %r failed; stopping the worker", queue)
                self.on_fatal(exc)
                return []
        self.stats.claim_calls += 1
        self.stats.claimed += len(jobs)
        if not jobs:
            self.stats.empty_claims += 1
        return jobs

    async def _arm_next_due(self, queue: str) -> None:
        assert self.arm_due is not None
        try:
            due = await self.client.next_due([queue])
        except psycopg.Error:
            return
        if due is not None:
            self.arm_due(queue, due.timestamp())

    # -- the prefetch buffer -------------------------------------------------------
    def _prefetch_room(self) -> int:
        return max(self.prefetch.limit() - len(self._buffer), 0)

    def _take_buffered(self) -> Claim:
        claim = self._buffer.popleft()
        self._maybe_refill()
        return claim

    def _maybe_refill(self) -> None:
        """Claim the next batch in the background while the buffer still holds work.

        Only when the last claim came back full (it left a token: there is
        probably more) and the buffer is down to half its limit.
        """
        if self.stopping:
            return
        limit = self.prefetch.limit()
        if limit == 0 or len(self._buffer) > limit // 2:
            return
        queue = self.dispatcher.take_token()
        if queue is None:
            return
        self.dispatcher.begin_claim(queue)
        task = asyncio.create_task(self._claim(queue, run_first=False), name="pgbatch-refill")
        self._refills.add(task)
        task.add_done_callback(self._refills.discard)

    def claim_cancelled(self, claim: Claim) -> None:
        """A buffered job was cancelled: release it now (it ends cancelled)."""
        if claim in self._buffer:
            self._buffer.remove(claim)
            task = asyncio.create_task(self.settler.release(claim.job, "cancelled"))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def claim_lost(self, claim: Claim) -> None:
        """A buffered job's claim is gone: forget it."""
        if claim in self._buffer:
            self._buffer.remove(claim)

    async def release_buffer(self) -> None:
        """At shutdown: wait for refills in flight, then give every buffered claim back."""
        if self._refills:
            # a refill claim in flight lands in the buffer, released below
            await asyncio.wait(list(self._refills), timeout=10)
        if self._background:
            await asyncio.wait(list(self._background), timeout=10)
        while self._buffer:
            claim = self._buffer.popleft()
            self.lease_keeper.drop(claim)
            await self.settler.release(claim.job, "buffered at shutdown")
