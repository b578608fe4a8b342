"""The adaptive prefetch limit: the policy (pure logic) and what a real worker holds.

The buffer holds what the slots would run in ``PREFETCH_WINDOW`` at the recent
average run time, capped at ``PREFETCH_CAP * concurrency``, and nothing while
jobs are long or before any job ran.
"""

from __future__ import annotations

import threading
import time

import pytest

from pgbatch import App, JobContext, Worker
from pgbatch.worker.prefetch import PrefetchPolicy
from tests.conftest import TestDatabase
from tests.helpers import archive_row, counts, scalar
from tests.worker_harness import LoopThread, app_on, wait_until


def _policy(concurrency: int, avg_runtime: float, started: int = 1,
            prefetch: int | None = None) -> PrefetchPolicy:
    policy = Worker(App("host=unused"), ["q"], concurrency=concurrency,
                    prefetch=prefetch).prefetch
    for _ in range(started):
        policy.observe(avg_runtime)
    return policy


@pytest.mark.parametrize(("concurrency", "avg", "limit"), [
    (10, 0.00003, 200),   # no-op jobs: the cap
    (10, 0.0005, 200),    # 0.5 ms: still the cap (2,000 would fit the window)
    (10, 0.005, 200),     # 5 ms: exactly the window
    (10, 0.02, 50),       # 20 ms: 0.1 s of work for 10 slots
    (1, 0.02, 5),
    (10, 0.049, 20),
    (10, 0.05, 0),        # long jobs: no prefetch
    (10, 3.0, 0),
])
def test_prefetch_limit_follows_the_time_window(concurrency: int, avg: float,
                                                limit: int) -> None:
    policy = _policy(concurrency, avg)
    assert policy.limit() == limit
    # whatever the limit, the buffered work fits the window (or is the cap)
    assert limit * avg <= concurrency * Worker.PREFETCH_WINDOW + 1e-9


def test_no_prefetch_before_the_first_job_and_a_fixed_prefetch_wins() -> None:
    assert _policy(10, 0.0, started=0).limit() == 0
    assert _policy(10, 3.0, prefetch=7).limit() == 7


def test_the_first_run_sets_the_average_so_slow_jobs_never_prefetch() -> None:
    # an average that started at 0 would take many slow runs to reach SHORT_JOB,
    # prefetching all the while
    policy = PrefetchPolicy(4)
    for seconds in (0.05, 0.2, 0.12, 0.07):
        policy.observe(seconds)
        assert policy.limit() == 0
    assert 0.05 <= policy.average <= 0.2


# -- defect: transactional tasks defeated the prefetch limit ----------------------------

def test_transactional_tasks_do_not_defeat_the_prefetch_limit(db: TestDatabase) -> None:
    """Transactional tasks of 50-200 ms: claims held never exceed the slots.

    Their ack is made inside the task's transaction; the run time of those jobs
    must feed the average too, or the prefetch buffer fills to its cap (20 x
    concurrency). The database records, at the end of every statement that
    changes a job row (each claim among them), how many claims the worker holds.
    """
    conn = db.connect()
    conn.execute("create table prefetch_done (n int primary key)")
    conn.execute("create table claims_seen (held int not null)")
    conn.execute("""
        create function record_claims_held() returns trigger language plpgsql as $$
        begin
            -- SECURITY DEFINER functions run with a pinned search_path: qualify
            insert into public.claims_seen select count(*) from pgbatch.job
             where state = 'claimed' and claimed_by = 'prefetch-node';
            return null;
        end $$""")
    conn.execute("create trigger record_claims_held after update on pgbatch.job"
                 " for each statement execute function record_claims_held()")
    concurrency, total = 4, 32
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="tx-prefetch", transactional=True)
        def write(ctx: JobContext, n: int) -> None:
            time.sleep(0.05 + (n % 4) * 0.05)  # 50, 100, 150, 200 ms
            ctx.conn.execute("insert into prefetch_done values (%s)", (n,))

        worker = lt.start(Worker(app, concurrency=concurrency, node_id="prefetch-node",
                                 poll_interval=30, maintenance=False))
        app.client.enqueue_many([write.request({"n": n}) for n in range(total)])
        wait_until(lambda: counts(conn, "tx-prefetch")["done"] == total, 60,
                   "every job to be done")
        average, limit = lt.call(lambda: (worker.prefetch.average, worker.prefetch.limit()))
        settler = worker.settler
        assert settler is not None
        # each in-transaction ack is counted on the worker's loop after its commit
        wait_until(lambda: lt.call(lambda: settler.stats.acked_in_transaction) == total, 10,
                   "every in-transaction ack to be counted")
        acked = lt.call(lambda: settler.stats.acked_in_transaction)

    assert scalar(conn, "select count(*) from prefetch_done") == total
    assert acked == total
    held = [r[0] for r in conn.execute("select held from claims_seen").fetchall()]
    assert held, "no claim was recorded"
    # what the README promises: no prefetch for jobs of 50 ms or more
    assert max(held) <= concurrency, sorted(held)[-5:]
    assert average >= Worker.SHORT_JOB
    assert limit == 0


def test_a_buffered_job_that_is_cancelled_is_released_and_ends_cancelled(
        db: TestDatabase) -> None:
    """The lease keeper renews buffered claims too; a renewal that finds one cancelled
    makes the claimer give it back at once instead of running it."""
    conn = db.connect()
    entered, go = threading.Event(), threading.Event()
    ran: list[int] = []
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="buffered", lease=1)  # renewed every 1/3 s
        def job(n: int) -> None:
            ran.append(n)
            if n == 0:
                entered.set()
                assert go.wait(30)

        # enqueued before the worker starts: its first claim takes them all
        first, *ids = app.client.enqueue_many([job.request({"n": n}) for n in range(4)])
        worker = lt.start(Worker(app, concurrency=1, prefetch=5, poll_interval=30,
                                 maintenance=False), idle=False)
        assert entered.wait(10)
        claimer = worker.claimer
        assert claimer is not None
        wait_until(lambda: lt.call(lambda: claimer.buffered) == 3, 10,
                   "the three jobs to be buffered")
        assert scalar(conn, "select pgbatch.cancel_job(%s)", [ids[1]]) == "cancel_requested"
        wait_until(lambda: archive_row(conn, ids[1]), 10, "the cancelled job to end")
        buffered = lt.call(lambda: claimer.buffered)
        go.set()
        wait_until(lambda: counts(conn, "buffered")["done"] == 3, 10, "the others to run")

    cancelled = archive_row(conn, ids[1])
    assert cancelled is not None
    assert (cancelled["state"], cancelled["attempt"]) == ("cancelled", 0)
    assert buffered == 2
    assert sorted(ran) == [0, 1, 3]
    done = archive_row(conn, first)
    assert done is not None
    assert done["state"] == "done"
