"""Worker subprocesses seen from the benchmark: start, synchronise, query, stop."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from pgbatch.bench._cpu import cpu_seconds, rss_mb


class WorkerProcessError(RuntimeError):
    """A benchmark worker process failed or did not answer in time."""


class WorkerProcess:
    """One ``python -m pgbatch.bench.worker_proc`` process and its line protocol."""

    def __init__(self, dsn: str, *, queue_name: str = "bench", concurrency: int = 10,
                 poll_interval: float = 2.0, log_dir: Path, name: str,
                 extra: Sequence[str] = ()) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        cmd = [sys.executable, "-m", "pgbatch.bench.worker_proc", "--dsn", dsn,
               "--queue", queue_name, "--concurrency", str(concurrency),
               "--poll-interval", str(poll_interval), *extra]
        self._log: IO[str] = self.log_path.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            text=True, bufsize=1)
        self.ready = threading.Event()
        self.stamps: queue.SimpleQueue[tuple[int, float, float | None]] = queue.SimpleQueue()
        self._stats: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.final: dict[str, Any] | None = None
        self.error: str | None = None
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"read-{name}")
        self._reader.start()

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.rstrip("\n")
            kind, _, rest = line.partition(" ")
            if kind == "T":
                parts = rest.split()
                ready = float(parts[2]) if len(parts) > 2 and parts[2] != "None" else None
                self.stamps.put((int(parts[0]), float(parts[1]), ready))
            elif kind == "READY":
                self.ready.set()
            elif kind == "STATS":
                self._stats.put(json.loads(rest))
            elif kind == "FINAL":
                self.final = json.loads(rest)
            elif kind == "ERROR":
                self.error = rest
        self.ready.set()  # end of output: unblock waiters (they check alive())

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the process's stderr."""
        with contextlib.suppress(OSError):
            self._log.flush()
            return "\n".join(self.log_path.read_text(encoding="utf-8",
                                                     errors="replace").splitlines()[-lines:])
        return ""

    def _fail(self, what: str) -> WorkerProcessError:
        return WorkerProcessError(
            f"worker {self.name} (pid {self.pid}) {what}; error: {self.error}; "
            f"stderr tail:\n{self.log_tail()}")

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait for ``READY``."""
        if not self.ready.wait(timeout) or not self.alive() or self.error:
            raise self._fail("did not become ready")

    def stats(self, timeout: float = 10.0) -> dict[str, Any]:
        """Ask for a counters snapshot."""
        self._send("stats")
        try:
            return self._stats.get(timeout=timeout)
        except queue.Empty:
            raise self._fail("did not answer 'stats'") from None

    def _send(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(cmd + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise self._fail(f"cannot receive commands ({exc})") from exc

    def cpu(self) -> float:
        """CPU seconds used so far (user + system, all threads)."""
        value = cpu_seconds(self.pid)
        if value is None:
            raise self._fail("has no /proc entry")
        return value

    def rss_mb(self) -> float | None:
        """Resident memory in MB."""
        return rss_mb(self.pid)

    def stop(self, timeout: float = 30.0) -> dict[str, Any] | None:
        """Stop gracefully (then forcibly); return the final counters."""
        if self.alive():
            with contextlib.suppress(WorkerProcessError):
                self._send("stop")
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        self._reader.join(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        self._log.close()
        return self.final


class WorkerGroup:
    """Several worker processes started together; stopped together on exit."""

    def __init__(self, dsn: str, concurrencies: Sequence[int], *, log_dir: Path,
                 label: str, queue_name: str = "bench", poll_interval: float = 2.0,
                 extra: Sequence[str] = ()) -> None:
        self.procs: list[WorkerProcess] = []
        try:
            for i, c in enumerate(concurrencies):
                self.procs.append(WorkerProcess(
                    dsn, queue_name=queue_name, concurrency=c, poll_interval=poll_interval,
                    log_dir=log_dir, name=f"{label}-{i}", extra=extra))
            deadline = time.monotonic() + 90
            for p in self.procs:
                p.wait_ready(max(deadline - time.monotonic(), 1.0))
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> WorkerGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def cpu(self) -> float:
        """Total CPU seconds of the group."""
        return sum(p.cpu() for p in self.procs)

    def stats(self) -> list[dict[str, Any]]:
        """A counters snapshot of every process."""
        return [p.stats() for p in self.procs]

    def check_alive(self) -> None:
        """Raise if a process has died."""
        for p in self.procs:
            if not p.alive():
                raise p._fail("exited early")

    def stop(self) -> list[dict[str, Any] | None]:
        """Stop every process (in parallel); return their final counters."""
        for p in self.procs:
            if p.alive():
                with contextlib.suppress(WorkerProcessError):
                    p._send("stop")
        return [p.stop() for p in self.procs]
