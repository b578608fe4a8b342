"""How many claimed jobs a worker may keep buffered beyond its free slots.

The buffer holds at most what the slots run in ``WINDOW`` seconds at the
recent average run time (``concurrency * WINDOW / average``), capped at
``CAP * concurrency``, and nothing while jobs average ``SHORT_JOB`` seconds
or more (or before the first job finished), so a slow job never sits on
claims another worker could run. The average is an exponential moving
average of every finished run (acked in the worker, acked inside the job's
own transaction, or failed); the first run sets it.
"""

from __future__ import annotations


class PrefetchPolicy:
    """The prefetch limit from the run times observed so far (or a fixed one)."""

    SHORT_JOB = 0.05
    WINDOW = 0.1
    CAP = 20

    def __init__(self, concurrency: int, fixed: int | None = None) -> None:
        self.concurrency = concurrency
        self.fixed = fixed
        self.average = 0.0
        self.samples = 0

    def observe(self, seconds: float) -> None:
        """A job ran for ``seconds``."""
        if self.samples == 0:
            self.average = seconds
        else:
            self.average = 0.9 * self.average + 0.1 * seconds
        self.samples += 1

    def limit(self) -> int:
        """Jobs the buffer may hold now."""
        if self.fixed is not None:
            return self.fixed
        avg = self.average
        if self.samples == 0 or avg >= self.SHORT_JOB:
            return 0
        cap = self.CAP * self.concurrency
        if avg * cap <= self.concurrency * self.WINDOW:
            return cap
        return int(self.concurrency * self.WINDOW / avg)
