"""Helpers of the scheduler tests (tests/test_schedule_*.py): creating
schedules, ticking as a node, reading the ledger, the I8 invariant check and
a digest of the scheduler's state (bad input must leave it unchanged)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tests.conftest import TestDatabase
from tests.helpers import set_clock
from tests.worker_harness import ROOT, ProcGroup, WorkerProcess

Conn = psycopg.Connection[Any]
Row = dict[str, Any]

#: A Monday noon, far from any DST transition.
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def create(conn: Conn, name: str, kind: str = "cron", **args: Any) -> Row:
    """create_schedule with named arguments (queue 'q' unless a target is given)."""
    if "queue" not in args and "job_name" not in args:
        args["queue"] = "q"
    for key in ("payload", "params"):
        if key in args and args[key] is not None:
            args[key] = Jsonb(args[key])
    names = ["schedule_id", "kind", *args]
    values = [name, kind, *args.values()]
    query = ("select * from pgbatch.create_schedule("
             + ", ".join(f"{n} => %s" for n in names) + ")")
    row = conn.cursor(row_factory=dict_row).execute(query, values).fetchone()
    assert row is not None
    return row


def tick(conn: Conn, node: str | None = None, at: datetime | None = None) -> list[Row]:
    """tick_schedules as node ``node``; with ``at``, at that database time first."""
    if at is not None:
        set_clock(conn, at)
    return conn.cursor(row_factory=dict_row).execute(
        "select * from pgbatch.tick_schedules(node_id => %s)", [node]).fetchall()


def schedule(conn: Conn, name: str) -> Row:
    """The schedule's table row."""
    row = conn.cursor(row_factory=dict_row).execute(
        "select * from pgbatch.schedule where id = %s", [name]).fetchone()
    assert row is not None, f"no schedule {name}"
    return row


def fires(conn: Conn, name: str, source: str | None = None) -> list[Row]:
    """The schedule's ledger rows, oldest occurrence first."""
    return conn.cursor(row_factory=dict_row).execute(
        "select * from pgbatch.schedule_fire where schedule_id = %s"
        " and (%s::text is null or source = %s) order by fire_at", [name, source, source]
    ).fetchall()


def fired_at(conn: Conn, name: str) -> list[datetime]:
    """The occurrences of source 'schedule' that fired."""
    return [f["fire_at"] for f in fires(conn, name, "schedule") if f["outcome"] == "fired"]


def jobs_of(conn: Conn, name: str) -> int:
    """Queue jobs (live or archived) whose payload names the schedule."""
    row = conn.execute(
        "select (select count(*) from pgbatch.job where payload -> 'schedule' ->> 'id' = %s)"
        " + (select count(*) from pgbatch.job_archive where payload -> 'schedule' ->> 'id' = %s)",
        [name, name]).fetchone()
    assert row is not None
    return int(row[0])


def i8_violations(conn: Conn) -> list[str]:
    """The rows of pgbatch._schedule_invariant_violations() (BATCH.md I8), as text."""
    return [f"{inv}: {detail}" for inv, detail in conn.execute(
        "select invariant, detail from pgbatch._schedule_invariant_violations()").fetchall()]


def assert_i8(conn: Conn) -> None:
    """Fail with the I8 violations, if any."""
    assert i8_violations(conn) == []


@pytest.fixture
def i8_checked(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the test, I8 holds on its database: on ``tx`` inside the test's
    transaction for ``in_tx`` tests, else on a new connection to ``db`` (when the
    test uses it). Every
    tests/test_schedule_*.py uses it through
    ``pytestmark = pytest.mark.usefixtures("i8_checked")``."""
    if request.node.get_closest_marker("in_tx") is not None:
        tx: Conn = request.getfixturevalue("tx")
        yield
        if not tx.closed and tx.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            assert_i8(tx)
        return
    if "db" not in request.fixturenames:  # a test of pure functions or of a module's database
        yield
        return
    database: TestDatabase = request.getfixturevalue("db")
    yield
    with database.connect() as c:
        assert_i8(c)


#: Where Debian's libfaketime (package ``faketime``) puts the preload library.
FAKETIME_LIBRARIES = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                      "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
                      "/usr/lib/faketime/libfaketime.so.1")


def faketime_library() -> str | None:
    """The path of libfaketime's preload library, or None when it is not installed."""
    return next((path for path in FAKETIME_LIBRARIES if os.path.exists(path)), None)


class ScheduleWorkerProcess(WorkerProcess):
    """``tests/schedule_worker_proc.py`` in a subprocess: a worker whose App defines
    the schedules given as ``schedules`` (a list of ``App.schedule`` keyword
    arguments, durations in seconds). ``env`` is added to the process's environment
    (``ScheduleProcs.spawn`` puts libfaketime there for a node with a skewed clock)."""

    env: dict[str, str] | None = None

    def start(self) -> ScheduleWorkerProcess:
        """Start the process (returns at once; see ``wait_event``)."""
        args = [sys.executable, "-m", "tests.schedule_worker_proc", "--dsn", self.dsn]
        for key, value in self.options.items():
            text = json.dumps(value, default=str) if key == "schedules" else str(value)
            if value is not None and value is not False:
                args += ["--" + key.replace("_", "-"), text]
        env = {**os.environ, "PYTHONPATH": str(ROOT), **(self.env or {})}
        self.events = []
        with self.stderr_path.open("a") as err:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                         stderr=err, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, args=(self.proc,),
                                        name=f"pgb-test-{self.name}", daemon=True)
        self._reader.start()
        return self


class ScheduleProcs(ProcGroup):
    """Schedule worker subprocesses of one test; every one still running is killed on exit."""

    def spawn(self, name: str, *, clock_offset: str | None = None, superuser: bool = False,
              **options: Any) -> WorkerProcess:
        """Start a schedule_worker_proc with ``options`` (flag names with underscores).

        ``clock_offset`` (libfaketime's relative FAKETIME, e.g. ``"-5m"``) runs the process
        with its system clock moved by that much (the monotonic clock is left alone);
        ``superuser`` connects it as the session's superuser instead of the worker
        member role (so that a database-wide ``pgbatch.fake_now`` applies to it)."""
        wp = ScheduleWorkerProcess(self.dsn, self.log_dir, name, **options)
        if superuser:
            wp.dsn = self.dsn
        if clock_offset is not None:
            library = faketime_library()
            if library is None:
                raise RuntimeError("libfaketime is not installed (apt-get install faketime)")
            wp.env = {"LD_PRELOAD": library, "FAKETIME": clock_offset,
                      "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
        wp.start()
        self.procs.append(wp)
        return wp


def digest(conn: Conn) -> str:
    """A digest of the scheduler's tables and the work they start (queue jobs,
    batch executions): equal before and after a refused call."""
    row = conn.execute("""
        select md5(concat_ws('|',
            (select string_agg(s::text, ',' order by s.id) from pgbatch.schedule s),
            (select string_agg(f::text, ',' order by f.schedule_id, f.source, f.fire_at)
               from pgbatch.schedule_fire f),
            (select string_agg(j.id::text || j.payload::text, ',' order by j.id)
               from pgbatch.job j),
            (select string_agg(x.id::text || x.status, ',' order by x.id)
               from pgbatch.job_execution x)))
    """).fetchone()
    assert row is not None
    return str(row[0])
