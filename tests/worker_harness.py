"""Harness of the worker integration tests: workers in-process and in subprocesses.

- ``LoopThread``: an asyncio loop on its own thread running ``Worker`` objects,
  so a plain (sync) test can drive the database while workers run, read their
  counters through ``call`` and stop them.
- ``WorkerProcess`` / ``ProcGroup``: ``tests/worker_proc.py`` in a subprocess,
  with its JSON event lines collected by a reader thread; ``wait_event``
  blocks on them. A ``ProcGroup`` kills whatever is still running on exit.
- ``worker_dsn``: workers connect as ``pgbatch_test_worker``, a login role that
  is a member of ``pgbatch_worker`` and has no table privilege in schema
  ``pgbatch`` (``--worker-role=superuser`` turns that off); ``app_on`` and the
  subprocess workers use it. Test setup and checks keep superuser connections.
- ``wait_until``: poll a condition (rows, counters) with a deadline; the
  synchronisation primitive of these tests instead of sleeps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from pgbatch import App, Worker
from tests.conftest import TEST_WORKER_LOGIN

T = TypeVar("T")
Conn = psycopg.Connection[Any]
Event = dict[str, Any]

ROOT = Path(__file__).resolve().parent.parent

#: The table the ``record`` task of worker_proc writes in the ack's transaction.
DONE_TABLE_DDL = ("create table worker_test_done (job_id uuid primary key, attempt int not null,"
                  " node text)")
#: The table the ``record_run`` maintenance service of worker_proc writes, one row per run:
#: the node, the term it believed it held, whether the database agreed (holds_lead), when.
SERVICE_RUNS_DDL = ("create table worker_test_service_runs (id bigint generated always as identity"
                    " primary key, node text not null, term bigint, holds boolean not null,"
                    " at timestamptz not null default pgbatch.now())")


def wait_until(pred: Callable[[], T], timeout: float, what: str,
               interval: float = 0.01) -> T:
    """Poll ``pred`` until it returns a truthy value (returned); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# -- database helpers -------------------------------------------------------------------
# (counts, job_row, archive_row, scalar, expire_lease: tests/helpers.py)

def enqueue_jobs(conn: Conn, queue: str, task: str, kwargs: dict[str, Any] | None = None,
                 n: int = 1, **fields: Any) -> list[UUID]:
    """Enqueue ``n`` jobs of ``task`` (worker_proc payload shape) in one ``enqueue_many``."""
    req = {"queue": queue, "payload": {"task": task, "kwargs": kwargs or {}}, **fields}
    row = conn.execute("select pgbatch.enqueue_many(%s)", [Jsonb([req] * n)]).fetchone()
    assert row is not None
    return [UUID(str(x)) for x in row[0]]


def backend_pids(conn: Conn, application_name: str) -> set[int]:
    """Backends of this database with ``application_name``."""
    rows = conn.execute("select pid from pg_stat_activity where datname = current_database()"
                        " and application_name = %s", [application_name]).fetchall()
    return {int(r[0]) for r in rows}


def worker_dsn(dsn: str) -> str:
    """``dsn`` as the login role workers of these tests use (see the module docstring)."""
    if os.environ.get("PGBATCH_TEST_WORKER_ROLE", "member") == "superuser":
        return dsn
    return psycopg.conninfo.make_conninfo(dsn, user=TEST_WORKER_LOGIN)


# -- in-process workers -------------------------------------------------------------------

@contextlib.contextmanager
def app_on(dsn: str) -> Iterator[App]:
    """An App on ``dsn`` (as the workers' login role) whose pools are closed at the end."""
    app = App(worker_dsn(dsn), pool_size=4)
    try:
        yield app
    finally:
        app.close()


class LoopThread:
    """An event loop on a thread of its own, running workers for a sync test.

    Use as a context manager: on exit every worker still running is stopped
    (aborted if it does not stop within 10 s) and the thread is joined.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="pgb-test-loop",
                                        daemon=True)
        self._runs: dict[int, concurrent.futures.Future[None]] = {}
        self._workers: dict[int, Worker] = {}

    def __enter__(self) -> LoopThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for key, fut in list(self._runs.items()):
                if not fut.done():
                    worker = self._workers[key]
                    self.loop.call_soon_threadsafe(worker.stop)
                    try:
                        fut.result(10)
                    except concurrent.futures.TimeoutError:
                        self.loop.call_soon_threadsafe(worker.abort)
                        with contextlib.suppress(Exception):
                            fut.result(10)
                    except Exception:  # noqa: BLE001, S110 - the test reports its own failure
                        pass
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the loop and return its result."""
        return self.submit(coro).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Call ``fn()`` on the loop thread (to read worker state safely)."""
        async def wrapper() -> T:
            return fn()
        return self.run(wrapper(), timeout)

    def start(self, worker: Worker, timeout: float = 30.0, *, idle: bool = True) -> Worker:
        """Start ``worker.run()``; wait until it is ready (and, with ``idle``, fully parked)."""
        fut = self.submit(worker.run())
        self._runs[id(worker)] = fut
        self._workers[id(worker)] = worker

        def ready() -> bool:
            if fut.done():
                fut.result()  # raises the worker's error
                raise AssertionError("worker stopped before it was ready")
            return self.call(lambda: worker.ready.is_set() and (not idle or (
                worker.stats.claim_calls >= len(worker.queues)
                and worker.dispatcher.idle_count == worker.concurrency)))
        wait_until(ready, timeout, "the worker to be ready")
        return worker

    def idle(self, worker: Worker) -> bool:
        """Whether every slot of ``worker`` is parked."""
        return self.call(lambda: worker.dispatcher.idle_count == worker.concurrency)

    def stop(self, worker: Worker, timeout: float = 30.0) -> None:
        """Ask ``worker`` to stop and wait until ``run()`` returns (re-raising its error)."""
        self.loop.call_soon_threadsafe(worker.stop)
        self._runs[id(worker)].result(timeout)


# -- subprocess workers -------------------------------------------------------------------

class WorkerProcess:
    """``tests/worker_proc.py`` in a subprocess; its stdout events are collected."""

    def __init__(self, dsn: str, log_dir: Path, name: str, **options: Any) -> None:
        self.dsn = worker_dsn(dsn)
        self.name = name
        self.options = options
        self.stderr_path = log_dir / f"{name}.stderr"
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> WorkerProcess:
        """Start the process (returns at once; see ``wait_event``)."""
        args = [sys.executable, "-m", "tests.worker_proc", "--dsn", self.dsn]
        for key, value in self.options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value is not None and value is not False:
                args += [flag, str(value)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.events = []
        with self.stderr_path.open("a") as err:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                         stderr=err, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, args=(self.proc,),
                                        name=f"pgb-test-{self.name}", daemon=True)
        self._reader.start()
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "stdout", "line": line.rstrip("\n")}
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        proc.stdout.close()
        with self._cond:
            self.events.append({"event": "eof"})
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def describe(self) -> str:
        """Recent events and stderr, for failure messages."""
        err = self.stderr_path.read_text() if self.stderr_path.exists() else ""
        with self._cond:
            tail = self.events[-15:]
        return f"{self.name}: last events {tail}\nstderr tail:\n{err[-3000:]}"

    def wait_event(self, kind: str, timeout: float = 30.0,
                   pred: Callable[[Event], bool] | None = None, since: int = 0) -> Event:
        """The first event of ``kind`` (matching ``pred``) at index ``since`` or later."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[since:]:
                    if event.get("event") == kind and (pred is None or pred(event)):
                        return event
                if any(e.get("event") == "eof" for e in self.events[since:]):
                    raise AssertionError(f"{self.name} exited before a {kind!r} event\n"
                                         f"{self.describe()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {kind!r} event from {self.name} within "
                                         f"{timeout}s\n{self.describe()}")
                self._cond.wait(left)

    def events_of(self, kind: str) -> list[Event]:
        """Every event of ``kind`` so far."""
        with self._cond:
            return [e for e in self.events if e.get("event") == kind]

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit; returns its exit code."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout}s\n"
                                 f"{self.describe()}") from None
        if self._reader is not None:
            self._reader.join(10)
        return code

    def stop(self, timeout: float = 30.0) -> Event:
        """SIGTERM, wait for exit code 0, return the exit report."""
        self.signal(signal.SIGTERM)
        code = self.wait_exit(timeout)
        assert code == 0, f"{self.name} exited with {code}\n{self.describe()}"
        return self.exit_report()

    def exit_report(self) -> Event:
        """The ``exit`` event (the worker's counters)."""
        return self.wait_event("exit", timeout=5)

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(30)
        if self._reader is not None:
            self._reader.join(10)


class ProcGroup:
    """Worker subprocesses of one test: every one still running is killed on exit."""

    def __init__(self, dsn: str, log_dir: Path) -> None:
        self.dsn = dsn
        self.log_dir = log_dir
        self.procs: list[WorkerProcess] = []

    def spawn(self, name: str, **options: Any) -> WorkerProcess:
        """Start a worker_proc with ``options`` (flag names with underscores)."""
        wp = WorkerProcess(self.dsn, self.log_dir, name, **options).start()
        self.procs.append(wp)
        return wp

    def __enter__(self) -> ProcGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        for wp in self.procs:
            with contextlib.suppress(Exception):
                if wp.proc is not None and wp.proc.poll() is None:
                    # a stopped process (SIGSTOP) must be resumed to die cleanly
                    wp.proc.send_signal(signal.SIGCONT)
                wp.kill()
