"""Helpers of the batch SQL tests: job definitions, claiming work items, invariants."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pgbatch.batch import register_job
from tests.batch_worker_proc import TABLES_DDL, build_job
from tests.conftest import TestDatabase
from tests.worker_harness import ROOT, ProcGroup, WorkerProcess, wait_until

Conn = psycopg.Connection[Any]
Row = dict[str, Any]

#: A two-step job: a tasklet, then a chunk step.
TWO_STEPS: list[dict[str, Any]] = [
    {"name": "prepare", "kind": "tasklet"},
    {"name": "load", "kind": "chunk", "reader": "r.Reader", "writer": "w.Writer", "chunk_size": 10},
]


@dataclass(frozen=True)
class WorkItem:
    """A claimed batch work item: the queue job and the execution it belongs to."""

    job_id: UUID
    claim_token: UUID
    execution_id: int
    step: str


def register(
    conn: Conn, job_name: str = "j", steps: list[dict[str, Any]] | None = None, **options: Any
) -> str:
    """Register a job definition; return its fingerprint."""
    definition = {"steps": TWO_STEPS if steps is None else steps, **options}
    row = conn.execute(
        "select pgbatch.register_job(%s, %s)", [job_name, Jsonb(definition)]
    ).fetchone()
    assert row is not None
    return str(row[0])


def launch(
    conn: Conn, job_name: str = "j", params: Any = None, request_id: str | None = None
) -> int:
    """launch_job; return the execution id."""
    row = conn.execute(
        "select pgbatch.launch_job(%s, %s, %s)",
        [job_name, Jsonb({} if params is None else params), request_id],
    ).fetchone()
    assert row is not None
    return int(row[0])


def claim_item(conn: Conn, queue: str = "batch") -> WorkItem:
    """Claim the one claimable batch work item of ``queue``."""
    rows = conn.execute(
        "select id, claim_token, payload from pgbatch.claim(%s, 10)", [queue]
    ).fetchall()
    assert len(rows) == 1, f"expected one work item, got {rows}"
    job_id, token, payload = rows[0]
    assert payload["kind"] == "batch_step"
    return WorkItem(job_id, token, int(payload["execution_id"]), str(payload["step"]))


def start(conn: Conn, item: WorkItem) -> Row:
    """start_execution for a claimed work item."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "select * from pgbatch.start_execution(%s, %s, %s)",
            [item.execution_id, item.job_id, item.claim_token],
        ).fetchone()
    assert row is not None
    return row


def start_step(conn: Conn, item: WorkItem, step: str | None = None) -> Row:
    """start_step of ``step`` (default: the item's step)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "select * from pgbatch.start_step(%s, %s, %s, %s)",
            [item.execution_id, step or item.step, item.job_id, item.claim_token],
        ).fetchone()
    assert row is not None
    return row


def commit_chunk(
    conn: Conn,
    item: WorkItem,
    step_execution_id: int,
    expected_seq: int,
    context: dict[str, Any],
    **counters: int,
) -> Row:
    """commit_chunk with the given counters."""
    names = ", ".join(f"{k} => %s" for k in counters)
    query = (
        "select * from pgbatch.commit_chunk(%s, %s, %s, %s, %s"
        + (", " + names if names else "")
        + ")"
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            query,
            [
                step_execution_id,
                item.job_id,
                item.claim_token,
                expected_seq,
                Jsonb(context),
                *counters.values(),
            ],
        ).fetchone()
    assert row is not None
    return row


def end_step(
    conn: Conn,
    item: WorkItem,
    step_execution_id: int,
    status: str = "COMPLETED",
    exit_code: str | None = None,
) -> Row:
    """end_step; return (job_status, next_step, next_job_id)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "select * from pgbatch.end_step(%s, %s, %s, %s, %s)",
            [step_execution_id, item.job_id, item.claim_token, status, exit_code],
        ).fetchone()
    assert row is not None
    return row


def execution(conn: Conn, execution_id: int) -> Row:
    """The job_execution row."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "select * from pgbatch.job_execution where id = %s", [execution_id]
        ).fetchone()
    assert row is not None
    return row


def steps(conn: Conn, execution_id: int) -> list[Row]:
    """The step_execution rows of an execution with their checkpoints, in step order."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "select s.*, c.context, c.chunk_seq from pgbatch.step_execution s"
            " join pgbatch.step_execution_context c on c.step_execution_id = s.id"
            " where s.job_execution_id = %s order by s.step_index",
            [execution_id],
        ).fetchall()


def events(conn: Conn, execution_id: int) -> list[str]:
    """The kinds of an execution's events, in order."""
    return [
        r[0]
        for r in conn.execute(
            "select kind from pgbatch.execution_event where job_execution_id = %s order by id",
            [execution_id],
        ).fetchall()
    ]


def run_to_end(conn: Conn, execution_id: int, chunks: int = 2) -> str:
    """Run every step of a claimable execution to COMPLETED (chunk steps commit ``chunks``
    chunks of 10 items); return the final status."""
    status = "STARTING"
    while status == "STARTING":
        item = claim_item(conn)
        assert item.execution_id == execution_id
        assert start(conn, item)["status"] == "STARTED"
        step = item.step
        while True:
            s = start_step(conn, item, step)
            if s["action"] == "skip":
                nxt = next_step_name(conn, execution_id, step)
                if nxt is None:
                    raise AssertionError("a skipped last step is not handled by this helper")
                step = nxt
                continue
            assert s["action"] == "run", s
            seq = int(s["chunk_seq"])
            done = int(s["context"].get("done", 0))
            for _ in range(chunks):
                done += 10
                commit_chunk(
                    conn,
                    item,
                    s["step_execution_id"],
                    seq,
                    {"done": done},
                    read_count=10,
                    write_count=10,
                )
                seq += 1
            status = str(end_step(conn, item, s["step_execution_id"])["job_status"])
            break
    return status


def next_step_name(conn: Conn, execution_id: int, step: str) -> str | None:
    """The name of the step after ``step`` in the execution's definition."""
    row = conn.execute(
        "select d.definition -> 'steps' -> (s.ord::int) ->> 'name'"
        " from pgbatch.job_execution x join pgbatch.job_instance i on i.id = x.instance_id"
        " join pgbatch.job_definition d"
        "   on d.job_name = i.job_name and d.fingerprint = x.definition_fp"
        " cross join lateral"
        "   jsonb_array_elements(d.definition -> 'steps') with ordinality s(v, ord)"
        " where x.id = %s and s.v ->> 'name' = %s",
        [execution_id, step],
    ).fetchone()
    return None if row is None else row[0]


def invariant_violations(conn: Conn) -> list[tuple[str, str]]:
    """The rows of pgbatch._batch_invariant_violations()."""
    return [
        (r[0], r[1])
        for r in conn.execute("select * from pgbatch._batch_invariant_violations()").fetchall()
    ]


#: The pause checks of I6/I7 (parked executions, BATCH.md §3, §4.3) as (name, query): each
#: query returns one detail text per violation.
PAUSE_CHECKS: tuple[tuple[str, str], ...] = (
    ("I6", "select format('execution %s: resume_count %s, %s resumed events', x.id,"
           " x.resume_count, count(ev.id)) from pgbatch.job_execution x"
           " left join pgbatch.execution_event ev on ev.job_execution_id = x.id"
           "  and ev.kind = 'resumed' and ev.to_status = 'STARTING'"
           " group by x.id having count(ev.id) <> x.resume_count"),
    ("I6", "select format('execution %s is PAUSED but holds a lease (%s)', x.id, x.lease_owner)"
           " from pgbatch.job_execution x where x.status = 'PAUSED'"
           " and (x.lease_owner is not null or x.lease_expires_at is not null)"),
    ("I6", "select format('execution %s is PAUSED with a live work item %s', x.id, j.id)"
           " from pgbatch.job_execution x join pgbatch.job j"
           "  on (j.payload ->> 'execution_id')::bigint = x.id"
           " where x.status = 'PAUSED' and not j.cancel_requested"),
    ("I6", "select format('execution %s is PAUSED but step %s is STARTED', x.id, s.step_name)"
           " from pgbatch.job_execution x join pgbatch.step_execution s"
           "  on s.job_execution_id = x.id where x.status = 'PAUSED' and s.status = 'STARTED'"),
    ("I7", "select format('execution %s: %s events of kind %s for request %s',"
           " e.job_execution_id, count(*), e.kind, e.request_id) from pgbatch.execution_event e"
           " where e.request_id is not null group by e.job_execution_id, e.kind, e.request_id"
           " having count(*) > 1"),
)


def pause_violations(conn: Conn) -> list[tuple[str, str]]:
    """The rows of :data:`PAUSE_CHECKS`."""
    return [(name, str(row[0])) for name, query in PAUSE_CHECKS
            for row in conn.execute(query).fetchall()]


def assert_invariants(conn: Conn) -> None:
    """I1-I7 hold (BATCH.md §8), with the pause checks of I6/I7."""
    assert invariant_violations(conn) == []
    assert pause_violations(conn) == []


def batch_state(conn: Conn) -> dict[str, list[tuple[Any, ...]]]:
    """Every batch table's rows plus the live and archived queue jobs: to check that a
    refused call changed nothing."""
    tables = (
        "job_definition",
        "job_instance",
        "job_execution",
        "job_execution_context",
        "step_execution",
        "step_execution_context",
        "approval",
        "execution_event",
        "job",
        "job_archive",
    )
    return {t: conn.execute(f"select * from pgbatch.{t} order by 1").fetchall() for t in tables}


# -- invariants after every test, worker subprocesses -------------------------------------

@pytest.fixture
def invariants_checked(db: TestDatabase) -> Iterator[None]:
    """After the test, I1-I7 hold on its database (use with
    ``pytestmark = pytest.mark.usefixtures("invariants_checked")``)."""
    yield
    with db.connect() as c:
        assert_invariants(c)


class BatchWorkerProcess(WorkerProcess):
    """``tests/batch_worker_proc.py`` in a subprocess (options: its flags)."""

    def start(self) -> BatchWorkerProcess:
        """Start the process (returns at once; see ``wait_event``)."""
        args = [sys.executable, "-m", "tests.batch_worker_proc", "--dsn", self.dsn]
        for key, value in self.options.items():
            if value is not None and value is not False:
                args += ["--" + key.replace("_", "-"), str(value)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.events = []
        with self.stderr_path.open("a") as err:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                         stderr=err, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, args=(self.proc,),
                                        name=f"pgb-test-{self.name}", daemon=True)
        self._reader.start()
        return self


class BatchProcs(ProcGroup):
    """Batch worker subprocesses of one test; every one still running is killed on exit."""

    def spawn(self, name: str, **options: Any) -> WorkerProcess:
        """Start a batch_worker_proc with ``options`` (flag names with underscores)."""
        wp = BatchWorkerProcess(self.dsn, self.log_dir, name, **options).start()
        self.procs.append(wp)
        return wp


def seed_source(conn: Conn, items: int) -> None:
    """Create the tables of batch_worker_proc's job and fill ``src`` with 1..items."""
    conn.execute(TABLES_DDL)
    conn.execute("insert into public.src select generate_series(1, %s)", [items])


def register_etl(conn: Conn, steps_count: int = 1, chunk_size: int = 5,
                 policy: str = "ResumeForward", max_recoveries: int = 5,
                 on_shutdown: str = "handoff", pushdown: bool = False,
                 gate: str | None = None) -> str:
    """Register the definition of batch_worker_proc's job ``etl`` with these options."""
    ns = argparse.Namespace(dsn="", steps=steps_count, chunk_size=chunk_size, policy=policy,
                            max_recoveries=max_recoveries, on_shutdown=on_shutdown,
                            kill_on_item=None, item_delay=0.0, fold=0, pushdown=int(pushdown),
                            gate=gate)
    return register_job(conn, build_job(ns))


def wait_status(conn: Conn, execution_id: int, *statuses: str, timeout: float = 60.0,
                procs: Sequence[WorkerProcess] = ()) -> Row:
    """Wait until the execution is in one of ``statuses``; return its row."""
    def check() -> Row | None:
        row = execution(conn, execution_id)
        return row if row["status"] in statuses else None

    try:
        found = wait_until(check, timeout, f"execution {execution_id} in {statuses}", 0.05)
    except AssertionError as exc:
        detail = "\n".join(p.describe() for p in procs)
        raise AssertionError(f"{exc}; it is {execution(conn, execution_id)['status']}\n"
                             f"events {events(conn, execution_id)}\n{detail}") from None
    assert found is not None
    return found


def sink_counts(conn: Conn, step: str = "s1") -> tuple[int, int, int]:
    """(distinct items in out, the most writes of one item, rows in ext) for ``step``."""
    row = conn.execute(
        "select (select count(*) from public.out where step = %s),"
        " (select coalesce(max(writes), 0) from public.out where step = %s),"
        " (select count(*) from public.ext where step = %s)", [step, step, step]).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def event_count(conn: Conn, execution_id: int, kind: str) -> int:
    """How many events of ``kind`` the execution has."""
    row = conn.execute("select count(*) from pgbatch.execution_event"
                       " where job_execution_id = %s and kind = %s",
                       [execution_id, kind]).fetchone()
    assert row is not None
    return int(row[0])
