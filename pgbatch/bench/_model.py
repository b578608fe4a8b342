"""What a benchmark run produces: figures with their runs, bars and verdicts."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The anchors: peers' figures, measured with their own APIs on this kind of
#: machine (2 cores, PostgreSQL 15, fsync on) on another day. ``pgbatch bench --peers``
#: measures the peers side by side (scenario BP); bars use the anchors only without it.
ANCHORS: Mapping[str, float] = {
    "procrastinate_jobs_per_s_low": 250.0,
    "procrastinate_jobs_per_s_high": 320.0,
    "pgqueuer_jobs_per_s_1proc": 2600.0,
    "pgqueuer_jobs_per_s_2proc": 3500.0,
    # enqueue: PGQueuer 1.6 on asyncpg, PostgreSQL 18, measured side by side (issue 16)
    "pgqueuer_enqueue_batched_jobs_per_s": 73789.0,
    "pgqueuer_enqueue_single_jobs_per_s": 2843.0,
    "best_wakeup_p50_ms": 2.4,
    "best_wakeup_p99_ms": 5.0,
    "insert_commit_tps_1client": 2900.0,
    "insert_commit_tps_8clients": 7000.0,
}

ANCHOR_NOTE = (
    "Peer figures (Procrastinate 3.10, PGQueuer 1.6) are anchors measured earlier on "
    "the same kind of machine (2 cores, PostgreSQL 15, fsync on); they were not measured "
    "side by side in this run (pgbatch bench --peers does that). Bars that refer to B0 use "
    "this run's own B0 figures."
)

PEERS_NOTE = (
    "Peer figures (PGQueuer 1.6 on asyncpg and psycopg, Procrastinate 3.10) were measured "
    "side by side in this run (scenario BP, each with its own API, same server); the B1-B3 "
    "bars that name a BP figure compare with it, the others with the anchors "
    "(measured earlier on the same kind of machine). Bars that refer to B0 use this run's "
    "own B0 figures."
)

#: Scenarios of the benchmark that need features pgbatch does not have yet.
NOT_IMPLEMENTED: Mapping[str, tuple[str, str]] = {}


@dataclass(frozen=True)
class Bar:
    """A target for a figure's median: ``op`` (``>=``, ``<=``, ``==``) ``value``.

    When ``ref`` names another figure, the target is ``factor`` x that figure's median
    (resolved when the report is built; missing when that figure was not run).
    """

    op: str
    text: str
    value: float | None = None
    ref: str | None = None
    factor: float = 1.0

    def target(self, figures: Mapping[str, Figure]) -> float | None:
        """The numeric target, or None when it refers to a figure that was not run."""
        if self.ref is None:
            return self.value
        other = figures.get(self.ref)
        if other is None or other.median is None:
            return None
        return self.factor * other.median

    def check(self, value: float, target: float) -> bool:
        """Whether ``value`` meets ``target``."""
        if self.op == ">=":
            return value >= target
        if self.op == "<=":
            return value <= target
        if self.op == "==":
            return math.isclose(value, target, rel_tol=1e-9, abs_tol=1e-9)
        raise ValueError(f"unknown bar operator {self.op!r}")


@dataclass
class Figure:
    """One reported number: its value in each run, and the bars it must meet."""

    key: str
    scenario: str
    label: str
    unit: str
    runs: list[float] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    #: A stricter verdict decided by the scenario (e.g. every sample, not the median).
    check: tuple[bool, str] | None = None

    @property
    def median(self) -> float | None:
        """The median over runs (None without runs)."""
        return statistics.median(self.runs) if self.runs else None

    @property
    def low(self) -> float | None:
        """The smallest run."""
        return min(self.runs) if self.runs else None

    @property
    def high(self) -> float | None:
        """The largest run."""
        return max(self.runs) if self.runs else None

    def verdict(self, figures: Mapping[str, Figure]) -> tuple[bool | None, list[dict[str, Any]]]:
        """Pass/fail over every bar (None when there is no bar or a target is missing)."""
        results: list[dict[str, Any]] = []
        ok: bool | None = None if not self.bars and self.check is None else True
        median = self.median
        for bar in self.bars:
            target = bar.target(figures)
            passed = None if target is None or median is None else bar.check(median, target)
            results.append({"op": bar.op, "target": target, "text": bar.text, "ref": bar.ref,
                            "pass": passed})
            if passed is None:
                ok = None if ok is not False else False
            elif not passed:
                ok = False
        if self.check is not None:
            passed_check, why = self.check
            results.append({"op": "check", "target": None, "text": why, "ref": None,
                            "pass": passed_check})
            if not passed_check:
                ok = False
        return ok, results


@dataclass
class ScenarioResult:
    """The figures of one scenario, or why it has none."""

    id: str
    title: str
    status: str = "ok"  # ok | error | skipped
    seconds: float = 0.0
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    loadavg_start: tuple[float, float, float] | None = None

    def add(self, figure: Figure) -> Figure:
        """Append ``figure`` and return it."""
        self.figures.append(figure)
        return figure


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks."""
    if not values:
        raise ValueError("percentile of no values")
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)
