"""Per-process wakeup dispatcher: one waiter per ready job, not the whole pool.

How a worker process finds work
-------------------------------
Each concurrency slot of a worker is a *waiter*. An idle waiter parks here.
Wakeups arrive from the listener (a NOTIFY said ``k`` jobs are ready on a
queue), from a due-time timer (a job enqueued for later is due now), or from
the poll timeout (the safety net for lost notifications and for connections
that cannot LISTEN).

A wakeup for a queue makes **one** idle waiter the *claimer*: it claims a batch
sized to the process's free capacity (itself plus every other idle waiter) in
one transaction, keeps one job and hands the others directly to idle waiters
(they wake holding a job and never issue a claim themselves). So a single job
enqueued with 50 idle waiters costs one claim call, and a burst is claimed in
batches rather than one transaction per job.

While a claim for a queue is in flight, further wakeups for it are kept as a
token instead of waking another claimer: the in-flight claim may well take
those jobs. When a claim returns a full batch there is probably more work, so
the claimer passes one wakeup on (a token); the next waiter to become free
uses it before parking, so a backlog keeps every slot busy. Tokens are capped
at the number of slots, so a flood of notifications cannot build up a debt.

A waiter whose claim came back empty (another process won the race) parks
again for the rest of its poll timeout rather than starting a new one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

J = TypeVar("J")


@dataclass
class Wakeup(Generic[J]):
    """Why a waiter woke: to claim on ``queue``, or holding a handed ``job``."""

    queue: str | None
    job: J | None = None


@dataclass
class DispatchStats:
    """Counters a test or benchmark can read."""

    wakeups: int = 0  # waiters woken to claim
    handoffs: int = 0  # waiters woken holding a job
    tokens_stored: int = 0
    notifications: int = 0
    per_queue_wakeups: dict[str, int] = field(default_factory=dict)


class WakeupDispatcher(Generic[J]):
    """Parks idle waiters and wakes exactly as many as there is work for."""

    def __init__(self, queues: Sequence[str], slots: int) -> None:
        self.queues = list(queues)
        self.slots = slots
        self._idle: deque[asyncio.Future[Wakeup[J] | None]] = deque()
        self._tokens: dict[str, int] = dict.fromkeys(self.queues, 0)
        self._claiming: set[str] = set()
        self.stats = DispatchStats()

    # -- state -----------------------------------------------------------------
    @property
    def idle_count(self) -> int:
        """Waiters parked right now (not counting cancelled ones)."""
        return sum(1 for f in self._idle if not f.done())

    def tokens(self, queue: str) -> int:
        """Wakeups remembered for ``queue`` that no waiter has used yet."""
        return self._tokens.get(queue, 0)

    # -- waiters ---------------------------------------------------------------
    def is_claiming(self, queue: str) -> bool:
        """Whether a claim on ``queue`` is in flight."""
        return queue in self._claiming

    def take_token(self) -> str | None:
        """A waiter about to park first takes a remembered wakeup, if any."""
        for queue in self.queues:
            if self._tokens[queue] > 0 and queue not in self._claiming:
                self._tokens[queue] -= 1
                return queue
        return None

    async def wait(self, timeout: float | None) -> Wakeup[J] | None:
        """Park until woken (a queue to claim on, or a handed job); None on timeout.

        One future per parked waiter, resolved directly by the waker or by its
        own timer: a wakeup resumes the waiter in one loop iteration.
        """
        queue = self.take_token()
        if queue is not None:
            self.begin_claim(queue)
            return Wakeup(queue)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Wakeup[J] | None] = loop.create_future()
        self._idle.append(fut)
        timer = loop.call_later(timeout, _expire, fut) if timeout is not None else None
        try:
            return await fut
        finally:
            if timer is not None:
                timer.cancel()
            if not fut.done():
                fut.cancel()

    def _pop_idle(self) -> asyncio.Future[Wakeup[J] | None] | None:
        while self._idle:
            fut = self._idle.popleft()
            if not fut.done():
                return fut
        return None

    # -- claims ----------------------------------------------------------------
    def begin_claim(self, queue: str) -> None:
        """Mark a claim on ``queue`` as in flight (further wakeups become tokens)."""
        self._claiming.add(queue)

    def end_claim(self, queue: str, *, full: bool) -> None:
        """A claim on ``queue`` returned; ``full`` means it got the whole batch it asked for."""
        self._claiming.discard(queue)
        if full:
            self._add_token(queue, 1)
        if self._tokens.get(queue, 0) > 0:
            # work may be waiting and someone is idle: wake one to claim it
            fut = self._pop_idle()
            if fut is not None:
                self._tokens[queue] -= 1
                self._wake_claimer(fut, queue)

    def hand(self, job: J) -> bool:
        """Give a claimed job to an idle waiter; False when nobody is idle."""
        fut = self._pop_idle()
        if fut is None:
            return False
        self.stats.handoffs += 1
        fut.set_result(Wakeup(None, job))
        return True

    def _add_token(self, queue: str, n: int) -> None:
        before = self._tokens.get(queue, 0)
        self._tokens[queue] = min(self.slots, before + n)
        self.stats.tokens_stored += self._tokens[queue] - before

    def _wake_claimer(self, fut: asyncio.Future[Wakeup[J] | None], queue: str) -> None:
        self.stats.wakeups += 1
        self.stats.per_queue_wakeups[queue] = self.stats.per_queue_wakeups.get(queue, 0) + 1
        self.begin_claim(queue)
        fut.set_result(Wakeup(queue))

    # -- wakeups ---------------------------------------------------------------
    def announce(self, queue: str, ready: int) -> int:
        """``ready`` jobs are claimable on ``queue``: wake one claimer (or keep a token).

        Returns the number of waiters woken (0 or 1).
        """
        if queue not in self._tokens or ready <= 0:
            return 0
        self.stats.notifications += 1
        if queue in self._claiming:
            self._add_token(queue, 1)
            return 0
        fut = self._pop_idle()
        if fut is None:
            self._add_token(queue, 1)
            return 0
        self._wake_claimer(fut, queue)
        return 1

    def wake_all(self) -> int:
        """Wake every idle waiter with an empty wakeup (it re-checks whether to stop)."""
        n = 0
        while (fut := self._pop_idle()) is not None:
            fut.set_result(Wakeup(None))
            n += 1
        return n

    def announce_all(self) -> None:
        """Wake one claimer per queue (after a reconnect: catch up on missed notifications)."""
        for queue in self.queues:
            self.announce(queue, 1)


def _expire(fut: asyncio.Future[Wakeup[J] | None]) -> None:
    if not fut.done():
        fut.set_result(None)
