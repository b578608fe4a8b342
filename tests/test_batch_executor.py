"""The batch step executor end to end: a real worker runs a tasklet step and a
chunk step of a launched job through the executor seam; a failing chunk step is
restarted from its checkpoint and every item is written exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from pgbatch import Worker
from pgbatch.batch import BATCH_KIND, BatchExecutor, ChunkStep, Job, TaskletStep, register_jobs
from tests.batch_helpers import assert_invariants, events, execution, steps
from tests.conftest import TestDatabase
from tests.helpers import scalar
from tests.worker_harness import LoopThread, app_on, wait_until

Conn = psycopg.Connection[Any]
ITEMS = 23


def write_out(conn: Conn, items: Sequence[Any]) -> None:
    """The same-database sink: a duplicate item is a unique violation."""
    with conn.cursor() as cur:
        cur.executemany("insert into public.out (item_id) values (%s)", [[i] for i in items])


def launch(conn: Conn, params: dict[str, Any]) -> int:
    return int(scalar(conn, "select pgbatch.launch_job('load-items', %s)", [Jsonb(params)]))


def wait_status(conn: Conn, execution_id: int, status: str) -> None:
    wait_until(lambda: execution(conn, execution_id)["status"] == status, 30,
               f"execution {execution_id} to be {status}")


def test_a_worker_runs_a_tasklet_and_a_chunk_step(db: TestDatabase, conn: Conn) -> None:
    conn.execute("create table public.out (item_id int primary key)")
    prepared = threading.Event()
    fail_at: list[int] = [15]

    def read(start: int) -> Iterable[int]:
        for i in range(start, ITEMS):
            if fail_at and i == fail_at[0]:
                raise RuntimeError(f"item {i} is unreadable")
            yield i

    job = Job("load-items", [TaskletStep("prepare", prepared.set),
                             ChunkStep("load", read, write_out, chunk_size=5)])
    register_jobs(conn, [job])
    first = launch(conn, {"day": "2026-12-01"})
    with app_on(db.dsn) as app, LoopThread() as lt:
        app.register_executor(BATCH_KIND, BatchExecutor([job]))
        assert app.queues() == ["batch"]
        lt.start(Worker(app, concurrency=1, poll_interval=0.2, maintenance=False))
        wait_status(conn, first, "FAILED")
        assert prepared.is_set()
        # three chunks committed before the unreadable item; the fourth rolled back
        load = steps(conn, first)[1]
        assert (load["status"], load["chunk_seq"], load["read_count"]) == ("FAILED", 3, 15)
        assert load["context"] == {"read": 15}
        assert "unreadable" in execution(conn, first)["exit_message"]
        assert scalar(conn, "select count(*) from public.out") == 15

        fail_at.clear()
        second = int(scalar(conn, "select pgbatch.restart_execution(%s)", [first]))
        wait_status(conn, second, "COMPLETED")

    # the restart skipped the completed tasklet and read on from item 15
    assert [(s["step_name"], s["read_count"]) for s in steps(conn, second)] == [("load", 8)]
    written = scalar(conn, "select array_agg(item_id order by item_id) from public.out")
    assert written == list(range(ITEMS))
    assert events(conn, second) == ["launched", "claimed", "step_started", "completed"]
    assert scalar(conn, "select count(*) from pgbatch.job") == 0
    assert_invariants(conn)
