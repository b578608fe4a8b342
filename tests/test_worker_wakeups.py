"""Wakeups: one claim per job, backlogs fan out, timers fire on time, LISTEN recovers.

Workers run in-process (a ``LoopThread``) or as subprocesses (``worker_proc``);
the tests wait on rows, counters and event lines, never on sleeps (the one
fixed window measures CPU use). Poll intervals are long (10-30 s), so anything
that happens sooner was caused by a wakeup, not by polling.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pgbatch import JobContext, MaintenanceConfig, Worker
from tests.conftest import TestDatabase
from tests.helpers import counts, job_row, scalar
from tests.worker_harness import (
    LoopThread,
    ProcGroup,
    app_on,
    backend_pids,
    enqueue_jobs,
    wait_until,
)

#: How late a job due at ``run_at`` may start in the timer tests: far below the
#: workers' poll intervals there (10 s, 30 s), so a start within it was woken by
#: the listener's due-time timer, never by a poll; generous, because how soon is
#: the benchmark's business (B3), not a test's, and a loaded machine is slow.
TIMER_SLACK = 1.0

def test_one_job_with_50_idle_waiters_in_one_process_costs_exactly_one_claim(
        db: TestDatabase) -> None:
    conn = db.connect()
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="herd")
        def job() -> None:
            return None

        # maintenance off: its due-job announcements are a second wakeup source
        worker = Worker(app, concurrency=50, poll_interval=30, maintenance=False)
        lt.start(worker)  # startup claim done, all 50 slots parked
        claims0 = lt.call(lambda: worker.stats.claim_calls)
        wakeups0 = lt.call(lambda: worker.dispatcher.stats.wakeups)

        job.defer()
        wait_until(lambda: counts(conn, "herd")["done"] == 1, 10, "the job to be done")
        wait_until(lambda: lt.idle(worker), 10, "all slots to be parked again")

        assert lt.call(lambda: worker.stats.claim_calls) - claims0 == 1
        assert lt.call(lambda: worker.dispatcher.stats.wakeups) - wakeups0 == 1
        assert lt.call(lambda: worker.stats.empty_claims) == 1  # only the startup claim


def test_one_job_with_4_processes_of_10_waiters_costs_at_most_one_claim_per_process(
        db: TestDatabase, tmp_path: Path) -> None:
    conn = db.connect()
    with ProcGroup(db.dsn, tmp_path) as group:
        procs = [group.spawn(f"w{i}", queue="herd4", concurrency=10, poll_interval=30,
                             no_maintenance=True) for i in range(4)]
        for wp in procs:
            wp.wait_event("idle", timeout=30)

        enqueue_jobs(conn, "herd4", "noop")
        wait_until(lambda: counts(conn, "herd4")["done"] == 1, 10, "the job to be done")

        reports = [wp.stop() for wp in procs]
    claims = [r["stats"]["claim_calls"] - r["idle_claim_calls"] for r in reports]
    assert all(c <= 1 for c in claims), claims
    assert sum(r["stats"]["succeeded"] for r in reports) == 1
    winner = next(r for r in reports if r["stats"]["succeeded"] == 1)
    assert winner["stats"]["claim_calls"] - winner["idle_claim_calls"] == 1


class _Concurrency:
    """Counts task bodies running at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current = 0
        self.peak = 0
        self.started = 0
        self.first_start: float | None = None
        self.full_at: tuple[float, int] | None = None  # (time, jobs started) at the first peak

    def enter(self, slots: int) -> None:
        with self.lock:
            now = time.monotonic()
            self.current += 1
            self.started += 1
            if self.first_start is None:
                self.first_start = now
            self.peak = max(self.peak, self.current)
            if self.current == slots and self.full_at is None:
                self.full_at = (now, self.started)

    def leave(self) -> None:
        with self.lock:
            self.current -= 1


def test_a_backlog_wakes_every_idle_slot_at_once_and_drains(db: TestDatabase) -> None:
    conn = db.connect()
    seen = _Concurrency()
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="backlog")
        def work() -> None:
            seen.enter(20)
            try:
                time.sleep(0.02)
            finally:
                seen.leave()

        worker = Worker(app, concurrency=20, poll_interval=30)
        lt.start(worker)
        app.client.enqueue_many([work.request() for _ in range(1000)])
        wait_until(lambda: counts(conn, "backlog")["done"] == 1000, 60, "the backlog to drain")

    assert seen.peak == 20
    assert seen.full_at is not None
    assert seen.first_start is not None
    # the first claim takes a batch for all 20 slots: they all run within the first
    # batch, not after a ramp-up
    full_after, started_by_then = seen.full_at[0] - seen.first_start, seen.full_at[1]
    assert full_after < 0.2, full_after
    assert started_by_then <= 25, started_by_then
    assert counts(conn, "backlog") == {"pending": 0, "scheduled": 0, "claimed": 0,
                                       "done": 1000, "dead": 0, "cancelled": 0}


def test_a_job_scheduled_300ms_ahead_starts_at_its_run_at_not_at_a_poll(db: TestDatabase) -> None:
    starts: list[tuple[float, float]] = []
    got = threading.Event()
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="timer", pass_context=True)
        async def timed(ctx: JobContext) -> None:
            starts.append((time.time(), ctx.job.run_at.timestamp()))
            got.set()

        worker = Worker(app, concurrency=1, poll_interval=10)
        lt.start(worker)
        run_at = datetime.now(UTC) + timedelta(milliseconds=300)
        timed.enqueue(run_at=run_at)
        assert got.wait(5), "the scheduled job did not start"

    started, claimed_run_at = starts[0]
    assert claimed_run_at == pytest.approx(run_at.timestamp(), abs=1e-5)
    lateness = started - run_at.timestamp()
    assert -0.005 <= lateness < TIMER_SLACK, f"started {lateness * 1000:.1f} ms after run_at"


def test_jobs_scheduled_at_different_times_each_start_at_their_run_at_not_at_a_poll(
        db: TestDatabase) -> None:
    starts: dict[int, tuple[float, float]] = {}
    lock = threading.Lock()
    all_started = threading.Event()
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="timers", pass_context=True)
        async def timed(ctx: JobContext, n: int) -> None:
            with lock:
                starts[n] = (time.time(), ctx.job.run_at.timestamp())
                if len(starts) == 3:
                    all_started.set()

        # maintenance's due-job announcements (announce_due) must not be what wakes them
        worker = Worker(app, concurrency=2, poll_interval=30,
                        maintenance_config=MaintenanceConfig(interval=30))
        lt.start(worker)
        now = datetime.now(UTC)
        # the listener is told of each due time while an earlier timer is armed
        for n, ms in enumerate((300, 700, 500)):
            timed.enqueue({"n": n}, run_at=now + timedelta(milliseconds=ms))
        assert all_started.wait(5), f"only {sorted(starts)} started"

    for n, (started, run_at) in sorted(starts.items()):
        lateness = started - run_at
        assert -0.005 <= lateness < TIMER_SLACK, f"job {n} started {lateness * 1000:.1f} ms late"


def test_a_retry_after_a_failure_starts_at_its_backoff_time_not_at_a_poll(
        db: TestDatabase) -> None:
    starts: list[tuple[int, float, float]] = []
    got = threading.Event()
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="retry-timer", pass_context=True, backoff_base=0.3, max_attempts=3)
        async def flaky(ctx: JobContext) -> None:
            starts.append((ctx.attempt, time.time(), ctx.job.run_at.timestamp()))
            if ctx.attempt == 1:
                raise RuntimeError("first attempt fails")
            got.set()

        worker = Worker(app, concurrency=1, poll_interval=10)
        lt.start(worker)
        flaky.defer()
        assert got.wait(5), "the retry did not start"

    (a1, t1, _), (a2, t2, retry_at) = starts
    assert (a1, a2) == (1, 2)
    # backoff(1, 0.3 s) is in [0.15 s, 0.3 s]: the retry was scheduled, not immediate
    assert retry_at - t1 >= 0.1
    lateness = t2 - retry_at
    assert -0.005 <= lateness < TIMER_SLACK, f"retry started {lateness * 1000:.1f} ms after run_at"


def _terminate_listener(conn: Any) -> int:
    pids = wait_until(lambda: backend_pids(conn, "pgbatch-listener"), 10,
                      "a pgbatch-listener backend")
    assert len(pids) == 1, pids
    (pid,) = pids
    assert scalar(conn, "select pg_terminate_backend(%s)", [pid]) is True
    return pid


def test_after_the_listen_connection_is_terminated_enqueues_still_wake_a_waiter_promptly(
        db: TestDatabase) -> None:
    conn = db.connect()
    starts: dict[str, float] = {}
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="relisten")
        def mark(name: str) -> None:
            starts[name] = time.time()

        worker = Worker(app, concurrency=2, poll_interval=30)
        lt.start(worker)
        listener = worker.listener
        assert listener is not None

        # 1. the listener comes back by itself; a later enqueue wakes a waiter at once
        old = _terminate_listener(conn)
        wait_until(lambda: bool(backend_pids(conn, "pgbatch-listener") - {old})
                   and lt.call(listener.connected.is_set), 10,
                   "a new pgbatch-listener backend")
        assert lt.call(lambda: listener.reconnects) == 1
        t0 = time.time()
        mark.defer(name="after")
        wait_until(lambda: "after" in starts, 5, "the job enqueued after the reconnect")
        assert starts["after"] - t0 < 2.0

        # 2. a job whose notification was lost (notify switched off for the enqueue) is
        # found by the catch-up claim the listener makes when it reconnects
        conn.execute("select pgbatch.set_queue_notify('relisten', false)")  # an admin call
        (jid,) = enqueue_jobs(conn, "relisten", mark.name, {"name": "missed"})
        row = job_row(conn, jid)
        assert row is not None
        assert row["state"] == "pending"
        t0 = time.time()
        _terminate_listener(conn)
        wait_until(lambda: "missed" in starts, 5, "the catch-up claim after the reconnect")
        assert starts["missed"] - t0 < 2.0
        assert lt.call(lambda: listener.reconnects) == 2
        conn.execute("select pgbatch.set_queue_notify('relisten', true)")


def test_an_enqueue_in_a_rolled_back_transaction_leaves_no_job_and_wakes_nobody(
        db: TestDatabase) -> None:
    conn = db.connect()
    watcher = db.connect()
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="rollback")
        def job(n: int) -> None:
            return None

        channel = app.client.channel_name("rollback")
        watcher.execute(f'listen "{channel}"')
        watcher.execute("listen pgbatch_test_marker")
        worker = Worker(app, concurrency=2, poll_interval=30, maintenance=False)
        lt.start(worker)
        claims0 = lt.call(lambda: worker.stats.claim_calls)

        tx = db.connect(autocommit=False)
        ghost = job.enqueue({"n": 1}, conn=tx)
        tx.rollback()
        # a committed enqueue afterwards: notifications arrive in commit order, so
        # once this one is handled, a notification of the ghost would have been too
        job.defer(n=2)
        wait_until(lambda: counts(conn, "rollback")["done"] == 1, 10, "the committed job")
        wait_until(lambda: lt.idle(worker), 10, "the worker to be idle again")
        assert lt.call(lambda: worker.stats.claim_calls) - claims0 == 1

    assert job_row(conn, ghost) is None
    assert scalar(conn, "select count(*) from pgbatch.job_archive where id = %s", [ghost]) == 0
    conn.execute("select pg_notify('pgbatch_test_marker', 'end')")
    payloads = []
    for note in watcher.notifies(timeout=10):
        if note.channel == "pgbatch_test_marker":
            break
        payloads.append(note.payload)
    assert payloads == ["1"]  # the committed job's announcement only


def test_without_listen_a_job_is_found_by_the_poll_safety_net(db: TestDatabase) -> None:
    conn = db.connect()
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="polled")
        def job() -> None:
            return None

        worker = Worker(app, concurrency=4, poll_interval=0.2, listen=False, maintenance=False)
        lt.start(worker)
        claims0 = lt.call(lambda: worker.stats.claim_calls)
        job.defer()
        wait_until(lambda: counts(conn, "polled")["done"] == 1, 5, "a poll to find the job")
        # one process polls a queue once per interval, not once per idle slot
        polls = lt.call(lambda: worker.stats.claim_calls) - claims0
        assert polls <= 1 + 5 / 0.2, polls


def test_idle_slots_do_not_spin_while_a_claim_is_stuck(db: TestDatabase) -> None:
    admin = db.connect()
    blocker = db.connect(autocommit=False)
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="stuck")
        def job() -> None:
            return None

        worker = Worker(app, concurrency=50, poll_interval=0.1, maintenance=False)
        lt.start(worker)
        # the next poll claim blocks on the table lock and stays in flight
        blocker.execute("lock table pgbatch.job in access exclusive mode")
        wait_until(lambda: scalar(admin, "select count(*) from pg_stat_activity"
                                         " where datname = current_database()"
                                         " and wait_event_type = 'Lock'"), 10,
                   "a claim to wait for the lock")
        # measure this process's CPU over a window (a measurement, not a wait for
        # something): 49 idle slots must stay parked, not wake every millisecond
        cpu0, t0 = time.process_time(), time.monotonic()
        threading.Event().wait(1.0)
        share = (time.process_time() - cpu0) / (time.monotonic() - t0)
        blocker.rollback()
        wait_until(lambda: lt.idle(worker), 10, "the claim to return")
    assert share < 0.10, f"{share:.0%} of a core while idle"
