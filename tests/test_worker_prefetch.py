"""The adaptive prefetch limit (pure logic: no server needed).

The buffer holds what the slots would run in ``PREFETCH_WINDOW`` at the recent
average run time, capped at ``PREFETCH_CAP * concurrency``, and nothing while
jobs are long or before any job ran.
"""

from __future__ import annotations

import pytest

from pgbatch import App, Worker


def _worker(concurrency: int, avg_runtime: float, started: int = 1,
            prefetch: int | None = None) -> Worker:
    w = Worker(App("host=unused"), ["q"], concurrency=concurrency, prefetch=prefetch)
    w.stats.started = started
    w._avg_runtime = avg_runtime  # the input of the policy under test
    return w


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
    w = _worker(concurrency, avg)
    assert w._prefetch_limit() == limit
    # whatever the limit, the buffered work fits the window (or is the cap)
    assert limit * avg <= concurrency * Worker.PREFETCH_WINDOW + 1e-9


def test_no_prefetch_before_the_first_job_and_a_fixed_prefetch_wins() -> None:
    assert _worker(10, 0.0, started=0)._prefetch_limit() == 0
    assert _worker(10, 3.0, prefetch=7)._prefetch_limit() == 7
