"""The adaptive prefetch limit (pure logic: no server needed).

The buffer holds what the slots would run in ``PREFETCH_WINDOW`` at the recent
average run time, capped at ``PREFETCH_CAP * concurrency``, and nothing while
jobs are long or before any job ran.
"""

from __future__ import annotations

import pytest

from pgbatch import App, Worker
from pgbatch.worker.prefetch import PrefetchPolicy


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
