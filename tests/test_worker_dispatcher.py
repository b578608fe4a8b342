"""Pure logic of the wakeup path: NOTIFY payloads and the WakeupDispatcher (no database)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from pgbatch.worker.dispatcher import Wakeup, WakeupDispatcher
from pgbatch.worker.listener import parse_payload

T = TypeVar("T")
Waiters = list[asyncio.Task[Wakeup[str] | None]]


@pytest.mark.parametrize(("payload", "expected"), [
    ("1", (1, None)),
    ("250", (250, None)),
    ("3/2", (3, None)),  # the second announcement on a channel in one transaction
    (" 7 ", (7, None)),
    ("0", (0, None)),
    ("-4", (0, None)),
    ("@1700000000123", (0, 1700000000.123)),
    ("@1700000000123/3", (0, 1700000000.123)),
    ("@soon", (0, None)),
    ("marker", (1, None)),  # unknown: treated as one ready job, so nothing is missed
    ("", (1, None)),
])
def test_parse_payload_reads_ready_counts_and_due_times(
        payload: str, expected: tuple[int, float | None]) -> None:
    assert parse_payload(payload) == expected


def run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(coro_fn())


async def settle() -> None:
    """Let every runnable task run until it blocks again."""
    for _ in range(5):
        await asyncio.sleep(0)


async def park(d: WakeupDispatcher[str], n: int, timeout: float | None = None) -> Waiters:
    """Start ``n`` waiters and let them park."""
    waiters = [asyncio.create_task(d.wait(timeout)) for _ in range(n)]
    await settle()
    assert d.idle_count == n
    return waiters


def woken(waiters: Waiters) -> list[Wakeup[str] | None]:
    return [w.result() for w in waiters if w.done()]


async def cancel(waiters: Waiters) -> None:
    for w in waiters:
        w.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)


def test_announce_wakes_exactly_one_idle_waiter_however_many_jobs_are_ready() -> None:
    async def scenario() -> None:
        d: WakeupDispatcher[str] = WakeupDispatcher(["q"], slots=5)
        waiters = await park(d, 5)
        assert d.announce("q", 50) == 1
        await settle()
        assert woken(waiters) == [Wakeup("q")]
        assert d.idle_count == 4
        assert d.stats.wakeups == 1
        await cancel(waiters)
    run(scenario)


def test_announce_during_an_inflight_claim_stores_a_token_instead_of_waking() -> None:
    async def scenario() -> None:
        d: WakeupDispatcher[str] = WakeupDispatcher(["q"], slots=5)
        waiters = await park(d, 3)
        assert d.announce("q", 1) == 1  # the claimer: its claim is now in flight
        await settle()
        assert d.announce("q", 1) == 0
        assert d.announce("q", 4) == 0
        await settle()
        assert len(woken(waiters)) == 1
        assert d.tokens("q") == 2
        # the claim returns (not full): the kept wakeups wake one waiter to claim again
        d.end_claim("q", full=False)
        await settle()
        assert woken(waiters) == [Wakeup("q"), Wakeup("q")]
        assert d.tokens("q") == 1
        await cancel(waiters)
    run(scenario)


def test_a_full_batch_passes_one_wakeup_on() -> None:
    async def scenario() -> None:
        d: WakeupDispatcher[str] = WakeupDispatcher(["q"], slots=3)
        waiters = await park(d, 1)
        d.begin_claim("q")  # a slot claims (e.g. its poll timer) and gets a full batch
        d.end_claim("q", full=True)
        await settle()
        assert woken(waiters) == [Wakeup("q")]  # the idle waiter claims next
        assert d.tokens("q") == 0
        # its batch is full too and nobody is idle: the wakeup is kept, and the next
        # slot to become free uses it at once instead of parking
        d.end_claim("q", full=True)
        assert d.tokens("q") == 1
        assert await d.wait(None) == Wakeup("q")
        assert d.tokens("q") == 0
        assert d.idle_count == 0
    run(scenario)


def test_tokens_are_capped_at_the_number_of_slots() -> None:
    d: WakeupDispatcher[str] = WakeupDispatcher(["q"], slots=2)
    for _ in range(10):
        assert d.announce("q", 100) == 0  # nobody is waiting
    assert d.tokens("q") == 2
    assert d.stats.tokens_stored == 2


def test_a_waiter_whose_claim_came_back_empty_parks_again() -> None:
    async def scenario() -> None:
        d: WakeupDispatcher[str] = WakeupDispatcher(["q"], slots=3)
        waiters = await park(d, 2)
        assert d.announce("q", 1) == 1
        await settle()
        (claimer,) = [w for w in waiters if w.done()]
        assert claimer.result() == Wakeup("q")
        d.end_claim("q", full=False)  # another process took the job: empty claim
        await settle()
        # nobody else was woken and no wakeup was kept: the claimer parks again
        assert d.idle_count == 1
        assert d.tokens("q") == 0
        again = asyncio.create_task(d.wait(None))
        await settle()
        assert not again.done()
        assert d.idle_count == 2
        await cancel([*waiters, again])
    run(scenario)


def test_wait_returns_none_when_its_timeout_passes() -> None:
    async def scenario() -> None:
        d: WakeupDispatcher[str] = WakeupDispatcher(["q"], slots=1)
        assert await d.wait(0.01) is None
        assert d.idle_count == 0
        # a timed-out waiter is not woken later
        assert d.announce("q", 1) == 0
        assert d.tokens("q") == 1
    run(scenario)


def test_hand_gives_a_claimed_job_to_an_idle_waiter() -> None:
    async def scenario() -> None:
        d: WakeupDispatcher[str] = WakeupDispatcher(["q"], slots=3)
        assert d.hand("job-0") is False  # nobody idle
        waiters = await park(d, 2)
        assert d.hand("job-1") is True
        await settle()
        assert woken(waiters) == [Wakeup(None, "job-1")]
        assert d.stats.handoffs == 1
        await cancel(waiters)
    run(scenario)


def test_announce_ignores_unknown_queues_and_zero_counts() -> None:
    async def scenario() -> None:
        d: WakeupDispatcher[str] = WakeupDispatcher(["q"], slots=2)
        waiters = await park(d, 2)
        assert d.announce("other", 5) == 0
        assert d.announce("q", 0) == 0
        await settle()
        assert woken(waiters) == []
        assert d.tokens("q") == 0
        await cancel(waiters)
    run(scenario)


def test_announce_all_wakes_one_claimer_per_queue_and_wake_all_wakes_everyone_empty() -> None:
    async def scenario() -> None:
        d: WakeupDispatcher[str] = WakeupDispatcher(["a", "b"], slots=4)
        waiters = await park(d, 4)
        d.announce_all()
        await settle()
        assert sorted(w.queue or "" for w in woken(waiters) if w) == ["a", "b"]
        assert d.wake_all() == 2
        await settle()
        assert [w for w in woken(waiters) if w and w.queue is None] == [Wakeup(None)] * 2
    run(scenario)
