"""B6: the batch engine — a chunk step copies a table, against a plain INSERT … SELECT.

``src(id bigint primary key, name text, amount numeric)`` holds N rows (1,000,000;
100,000 with ``--quick``). In the same fresh database, one after the other:

- plain: ``insert into dst_plain select * from src`` (one statement, one commit):
  the ceiling of moving those rows inside the database.
- batch (run in the server): a job with one chunk step (chunk size 1,000) whose
  reader is the SQL reader (``SqlReader(..., same_database=True)``, keyset on
  ``id``) and whose writer is the table writer (``TableWriter`` into
  ``dst_batch``), with no processor: the step runs in the server
  (``pgbatch.batch.pushdown``), each chunk ONE statement that selects the next
  1,000 rows after the cursor, inserts them, and commits the new cursor, the
  counters and the fence (``commit_chunk``), its chunk loop in the database
  (``pgbatch.run_server_chunks``, one call per second of chunks, each chunk its
  own durable commit: ``pgbatch.batch.server_loop``). A worker of this process
  (concurrency 1) runs it; the time runs from the launch until the execution
  is COMPLETED, in database time (the execution's ``end_time`` minus its
  ``create_time``; the status is polled every 0.1 s, so the polling neither
  adds to the figure nor competes with the worker), so it includes the claim,
  the step start, N / 1,000 fenced chunk commits (each durable:
  synchronous_commit on), the empty chunk that ends the input, and the end.
- python: the same step with a processor (the identity), so every row goes
  through Python: the reader reads tuples in keyset pages of 1,000 on its own
  connection, read ahead, and the writer (``method="unnest"``) folds each
  chunk's rows into the chunk's commit statement, into ``dst_python``. No bar:
  it shows what a step that touches each item costs.

Figures: items/s of each, and the ratios; bar: batch (in the server) ≥ 50% of
plain. Details: the CPU
seconds of the server (``*_server_cpu_s``, all its processes, sampled every
second: a sample scans /proc in this process, about 15 ms of CPU on a busy
machine, so sampling more often would slow the worker it measures) during
each, and of this process (``batch_worker_cpu_s``: the worker runs in it, and
so does the sampler) during the chunk step, and ``cpu_ratio`` (plain's server CPU over
the step's server + worker CPU), so a busy machine shows in where the time went.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg

from pgbatch import App, Worker
from pgbatch.batch import (
    BATCH_KIND,
    BatchExecutor,
    ChunkStep,
    Job,
    SqlReader,
    TableWriter,
    register_jobs,
)
from pgbatch.batch.writers import WriteMethod
from pgbatch.bench._cpu import ServerCpuSampler
from pgbatch.bench._harness import Context
from pgbatch.bench._model import Bar, Figure, ScenarioResult

CHUNK = 1_000
#: Seconds between polls of the execution's status (the figure is in database time).
POLL = 0.1
#: Seconds between samples of the server's CPU (each scans /proc in this process).
SAMPLE_EVERY = 1.0
TIMEOUT = 3600.0
COLUMNS = ("id", "name", "amount")
METHOD: WriteMethod = "unnest"


def _load(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table src (id bigint primary key, name text not null,"
                     " amount numeric not null)")
        conn.execute("insert into src select i, 'item ' || i, i / 100.0"
                     " from generate_series(1, %s) i", [rows])
        for table in ("dst_plain", "dst_batch", "dst_python"):
            conn.execute(f"create table {table} (id bigint primary key, name text not null,"
                         " amount numeric not null)")
        conn.execute("vacuum analyze src")
        conn.execute("checkpoint")


def plain_seconds(dsn: str) -> float:
    """Seconds of ``insert into dst_plain select * from src`` and its commit."""
    with psycopg.connect(dsn) as conn:
        t0 = time.perf_counter()
        conn.execute("insert into dst_plain select * from src")
        conn.commit()
        return time.perf_counter() - t0


def _cpu_window(postmaster: int | None) -> tuple[ServerCpuSampler, float]:
    sampler = ServerCpuSampler(postmaster, interval=SAMPLE_EVERY)
    sampler.start()
    return sampler, time.process_time()


def _identity(item: Any) -> Any:
    """The processor of the Python-path job: every item passes through Python."""
    return item


def copy_job(dsn: str) -> Job:
    """The B6 job: one chunk step, SQL reader -> table writer, chunks of 1,000, no
    processor, the same database: it runs in the server."""
    reader = SqlReader(dsn, "select id, name, amount from src", "id", page_size=CHUNK,
                       rows="tuple", name="src", same_database=True)
    writer = TableWriter("dst_batch", list(COLUMNS))
    return Job("bench-b6-copy", [ChunkStep("copy", reader, writer, chunk_size=CHUNK)])


def python_job(dsn: str) -> Job:
    """The same copy with a processor (the identity) into ``dst_python``: the Python path."""
    reader = SqlReader(dsn, "select id, name, amount from src", "id", page_size=CHUNK,
                       rows="tuple", name="src")
    writer = TableWriter("dst_python", list(COLUMNS), method=METHOD)
    return Job("bench-b6-python", [ChunkStep("copy", reader, writer, processor=_identity,
                                             chunk_size=CHUNK)])


async def _batch_seconds(dsn: str, job: Job) -> float:
    app = App(dsn, pool_size=4)
    app.register_executor(BATCH_KIND, BatchExecutor([job]))
    worker = Worker(app, concurrency=1, poll_interval=0.2, maintenance=False)
    run = asyncio.create_task(worker.run())
    try:
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        try:
            t0 = time.perf_counter()
            cur = await conn.execute("select pgbatch.launch_job(%s, '{}')", [job.name])
            row = await cur.fetchone()
            assert row is not None
            execution_id = int(row[0])
            deadline = t0 + TIMEOUT
            while True:
                cur = await conn.execute(
                    "select status, exit_message, extract(epoch from end_time - create_time)"
                    " from pgbatch.job_execution where id = %s", [execution_id])
                status, message, seconds = await cur.fetchone() or ("?", None, None)
                if status == "COMPLETED":
                    return float(seconds)
                if status in ("FAILED", "STOPPED", "ABANDONED"):
                    raise RuntimeError(f"B6 execution ended {status}: {message}")
                if time.perf_counter() > deadline or run.done():
                    raise RuntimeError(f"B6 execution still {status} (worker done: {run.done()})")
                await asyncio.sleep(POLL)
        finally:
            await conn.close()
    finally:
        worker.stop()
        await run
        app.close()


def measure(dsn: str, rows: int, postmaster: int | None = None) -> dict[str, Any]:
    """One run in a fresh database: plain INSERT … SELECT, the chunk step run in
    the server, then the chunk step with a processor (the Python path).

    Also the CPU seconds each used: the server's (every PostgreSQL process,
    sampled) and this process's (the worker runs in it; None for plain).
    """
    _load(dsn, rows)
    sampler, _ = _cpu_window(postmaster)
    plain = plain_seconds(dsn)
    plain_server = sampler.stop()
    out: dict[str, Any] = {"plain_s": plain, "plain_server_cpu_s": plain_server}
    for key, job, table in (("batch", copy_job(dsn), "dst_batch"),
                            ("python", python_job(dsn), "dst_python")):
        with psycopg.connect(dsn, autocommit=True) as conn:
            register_jobs(conn, [job])
        sampler, own0 = _cpu_window(postmaster)
        out[f"{key}_s"] = asyncio.run(_batch_seconds(dsn, job))
        out[f"{key}_server_cpu_s"] = sampler.stop()
        out[f"{key}_worker_cpu_s"] = time.process_time() - own0
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(f"select count(*), count(*) filter (where s.name = d.name)"
                               f" from src s left join {table} d using (id)").fetchone()
        assert row is not None
        if row[0] != rows or row[1] != rows:
            raise RuntimeError(f"B6 ({key}) copied {row[1]} of {rows} rows")
    return out


def run(ctx: Context, res: ScenarioResult) -> None:
    """Items/s of the chunk step and of the plain INSERT … SELECT, and their ratio."""
    rows = ctx.sizes.batch_rows
    what = f"{rows:,} rows, chunk {CHUNK:,}"
    batch = res.add(Figure("B6.batch.items_per_s", "B6",
                           f"chunk step run in the server (SQL reader -> table writer, no"
                           f" processor, same database), {what}", "items/s",
                           bars=[Bar(">=", "≥ 50% of plain INSERT … SELECT",
                                     ref="B6.plain.items_per_s", factor=0.5)]))
    plain = res.add(Figure("B6.plain.items_per_s", "B6",
                           f"plain INSERT … SELECT, {rows:,} rows", "items/s"))
    ratio = res.add(Figure("B6.ratio", "B6", "chunk step run in the server / plain"
                           " INSERT … SELECT", "ratio", bars=[Bar(">=", "≥ 0.5", value=0.5)]))
    python = res.add(Figure("B6.python.items_per_s", "B6",
                            f"chunk step in Python (SQL reader -> processor -> table writer"
                            f" unnest), {what}", "items/s"))
    python_ratio = res.add(Figure("B6.python.ratio", "B6", "chunk step in Python / plain"
                                  " INSERT … SELECT", "ratio"))
    for r in range(ctx.sizes.runs):
        ctx.log(f"B6 {what} run {r + 1}")
        with ctx.server.fresh_db() as dsn:
            m = measure(dsn, rows, ctx.server.postmaster_pid())
        batch.runs.append(rows / m["batch_s"])
        plain.runs.append(rows / m["plain_s"])
        ratio.runs.append(m["plain_s"] / m["batch_s"])
        python.runs.append(rows / m["python_s"])
        python_ratio.runs.append(m["plain_s"] / m["python_s"])
        batch.details.setdefault("seconds", []).append(round(m["batch_s"], 3))
        plain.details.setdefault("seconds", []).append(round(m["plain_s"], 3))
        python.details.setdefault("seconds", []).append(round(m["python_s"], 3))
        for key, figure in (("plain_server_cpu_s", plain), ("batch_server_cpu_s", batch),
                            ("batch_worker_cpu_s", batch), ("python_server_cpu_s", python),
                            ("python_worker_cpu_s", python)):
            if m[key] is not None:
                figure.details.setdefault(key, []).append(round(m[key], 3))
        if m["plain_server_cpu_s"] and m["batch_server_cpu_s"] is not None:
            ratio.details.setdefault("cpu_ratio", []).append(round(
                m["plain_server_cpu_s"] / (m["batch_server_cpu_s"] + m["batch_worker_cpu_s"]), 3))
    batch.details["executor"] = ("pgbatch.batch.executor.BatchExecutor (SqlReader"
                                 " same_database=True, TableWriter, no processor: run in the"
                                 " server, pgbatch.batch.pushdown)")
    python.details["executor"] = ("pgbatch.batch.executor.BatchExecutor (SqlReader, identity"
                                  " processor, TableWriter method='unnest': the Python path)")
