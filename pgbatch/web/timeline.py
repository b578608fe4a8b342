"""A run's events as a readable timeline: repeated cycles folded into one line.

``execution_events()`` returns every state change of an execution, oldest
first; a run paused and resumed 500 times has a thousand of them. The
timeline keeps the order and folds each stretch where the same short
sequence of kinds repeats back to back (``paused``, ``resumed``, …) into one
entry with a count (``paused → resumed``, 500 times), with the first and
last time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pgbatch.batch.records import ExecutionEvent

#: The longest repeating sequence of event kinds that is folded.
MAX_PERIOD: Final = 4
#: The sign before a count.
TIMES: Final = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class TimelineEntry:
    """One line of the timeline: ``kinds`` happened ``count`` times in a row, from
    ``first_at`` to ``last_at``; ``to_status`` is the status the last one left."""

    kinds: tuple[str, ...]
    count: int
    first_at: datetime
    last_at: datetime
    to_status: str | None
    actor: str | None

    @property
    def label(self) -> str:
        """``launched``, or ``paused → resumed`` with the count (times sign, 500)."""
        text = " → ".join(self.kinds)
        return text if self.count == 1 else f"{text} {TIMES}{self.count}"


def _repeats(kinds: Sequence[str], start: int, period: int) -> int:
    """How many times ``kinds[start:start+period]`` repeats back to back from ``start``."""
    unit = kinds[start:start + period]
    reps = 1
    while kinds[start + reps * period:start + (reps + 1) * period] == unit:
        reps += 1
    return reps


def timeline(events: Sequence[ExecutionEvent]) -> list[TimelineEntry]:
    """``events`` (oldest first) with back-to-back repeats folded (see the module)."""
    kinds = [e.kind for e in events]
    entries: list[TimelineEntry] = []
    i = 0
    while i < len(kinds):
        period, reps = 1, 1
        for p in range(1, MAX_PERIOD + 1):
            if i + 2 * p > len(kinds):
                break
            r = _repeats(kinds, i, p)
            if r >= 2 and r * p > period * reps:
                period, reps = p, r
        last = events[i + period * reps - 1]
        entries.append(TimelineEntry(tuple(kinds[i:i + period]), reps, events[i].at, last.at,
                                     last.to_status, last.actor))
        i += period * reps
    return entries
