"""CPU time and memory of processes, read from /proc (Linux; None elsewhere).

``cpu_seconds`` and ``rss_mb`` of one process; ``ServerCpuSampler`` sums the
CPU of every PostgreSQL process while a scenario runs.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def read_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state is index 0)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads), from /proc."""
    fields = read_stat(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    m = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(m.group(1)) / 1024 if m else None


class ServerCpuSampler:
    """CPU seconds used by the server's processes over a window, short-lived ones included.

    A thread samples the postmaster's children every ``interval`` seconds; a process's
    CPU counts from its first sample (from zero when it was born inside the window), so
    a backend that exits inside the window (pgbench's, autovacuum's) loses at most one
    interval of its time. ``None`` when the server's processes are not visible.
    """

    def __init__(self, postmaster: int | None, interval: float = 0.02) -> None:
        self.postmaster = postmaster
        self.interval = interval
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self, *, initial: bool = False) -> None:
        assert self.postmaster is not None
        pids = [self.postmaster]
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                fields = read_stat(int(entry.name))
                if fields is not None and fields[1] == str(self.postmaster):
                    pids.append(int(entry.name))
        for pid in pids:
            cpu = cpu_seconds(pid)
            if cpu is None:
                continue
            if pid not in self._first:
                self._first[pid] = cpu if initial else 0.0
            self._last[pid] = cpu

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            self._sample()

    def __enter__(self) -> ServerCpuSampler:
        self.start()
        return self

    def start(self) -> None:
        """Begin the window."""
        if self.postmaster is not None and cpu_seconds(self.postmaster) is not None:
            self._sample(initial=True)
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="bench-cpu-sampler")
            self._thread.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> float | None:
        """End the window; the CPU seconds used in it (None when not measurable)."""
        if self._thread is None:
            return None
        if not self._halt.is_set():
            self._halt.set()
            self._thread.join()
            self._sample()
        return sum(self._last[p] - self._first[p] for p in self._last)


