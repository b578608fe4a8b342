"""B7: the scheduler — 10,000 cron schedules due at once, 4 worker processes booting together.

In a fresh database, N cron schedules (10,000; 1,000 with ``--quick``) ``*/5 * * * *``
with a catch-up window of a day are created, then made due as after an hour of
downtime of every node (``effective_from`` and ``next_due_at`` an hour back: each
has twelve missed occurrences, of which the latest fires and the others are
coalesced). Four ``pgbatch.bench.worker_proc`` processes are then started at the
same moment; each ticks at boot (``tick_schedules``, 100 schedules a call, repeated
while full: the scheduler's maintenance service on every node). Their queue is
another one than the schedules', so the fired jobs wait and only the deciding is
measured.

Figures: seconds from the processes' start until every schedule is decided (their
boot included), seconds from the first decision to the last (database time:
``decided_at`` of the ledger), the server CPU time per decision (user + system time
of the workers' backends, from ``/proc``, read when the last schedule is decided:
their boot included; robust to other load on the machine, which the seconds are not;
absent when the server's processes are not visible), and the fires. Bars: decided in
under 10 s; fires = schedules (one ``fired`` ledger row and one queue job each).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psycopg

from pgbatch.bench._harness import Context
from pgbatch.bench._model import Bar, Figure, ScenarioResult
from pgbatch.bench._procs import WorkerProcess

PROCESSES = 4
POLL = 0.02
TIMEOUT = 600.0
#: The queue of the fired jobs; the workers serve another one.
FIRE_QUEUE = "b7"


def _seed(dsn: str, schedules: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select count(pgbatch.create_schedule('b7-' || i, 'cron',"
                     " cron_expr => '*/5 * * * *', queue => %s, payload => '{}',"
                     " catchup_window => '1 day')) from generate_series(1, %s) i",
                     [FIRE_QUEUE, schedules])
        conn.execute("update pgbatch.schedule set effective_from = now() - interval '1 hour',"
                     " next_due_at = pgbatch.cron_next(cron_expr, tz, now() - interval '1 hour')")
        conn.execute("vacuum analyze pgbatch.schedule")
        conn.execute("checkpoint")


def _backends_cpu_s(conn: psycopg.Connection[Any]) -> float | None:
    """User + system CPU seconds of the other client backends of this database so far.

    None when a backend's ``/proc/<pid>/stat`` cannot be read (a server on another host).
    """
    pids = [int(r[0]) for r in conn.execute(
        "select pid from pg_stat_activity where datname = current_database()"
        " and backend_type = 'client backend' and pid <> pg_backend_pid()")]
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += int(fields[11]) + int(fields[12])     # utime, stime
    return total / ticks


def measure(ctx: Context, dsn: str, schedules: int) -> dict[str, Any]:
    """One run: seed, start the processes together, wait until all are decided."""
    _seed(dsn, schedules)
    with psycopg.connect(dsn, autocommit=True) as conn:
        t0 = time.perf_counter()
        procs = [WorkerProcess(dsn, queue_name="b7-idle", concurrency=1, poll_interval=60.0,
                               log_dir=ctx.workdir, name=f"b7-{i}") for i in range(PROCESSES)]
        try:
            decided = 0
            while decided < schedules:
                if time.perf_counter() - t0 > TIMEOUT:
                    raise RuntimeError(f"B7: {decided} of {schedules} schedules decided "
                                       f"after {TIMEOUT:.0f} s")
                dead = [p for p in procs if not p.alive()]
                if dead:
                    raise RuntimeError(f"B7 worker {dead[0].name} died: {dead[0].log_tail()}")
                time.sleep(POLL)
                row = conn.execute("select count(*) from pgbatch.schedule_fire").fetchone()
                decided = int(row[0]) if row else 0
            elapsed = time.perf_counter() - t0
            cpu_s = _backends_cpu_s(conn)
        finally:
            for p in procs:
                p.stop()
        row = conn.execute("""
            select count(*) filter (where f.outcome = 'fired'),
                   count(distinct f.schedule_id),
                   extract(epoch from max(f.decided_at) - min(f.decided_at)),
                   count(distinct f.node_id),
                   (select count(*) from pgbatch.job j where j.queue = %s),
                   sum(f.coalesced_count)
              from pgbatch.schedule_fire f""", [FIRE_QUEUE]).fetchone()
    assert row is not None
    fired, distinct, span, nodes, jobs, coalesced = row
    return {"seconds": elapsed, "decide_span_s": float(span or 0.0), "fired": int(fired),
            "distinct": int(distinct), "nodes": int(nodes), "jobs": int(jobs),
            "coalesced": int(coalesced or 0),
            "cpu_ms_per_decision": None if cpu_s is None else 1000.0 * cpu_s / schedules}


def run(ctx: Context, res: ScenarioResult) -> None:
    """Seconds to decide every schedule, and fires against schedules."""
    n = ctx.sizes.schedules
    what = f"{n:,} cron schedules due, {PROCESSES} processes booting together"
    total = res.add(Figure("B7.seconds", "B7", f"start to all decided (boot included), {what}",
                           "s", bars=[Bar("<=", "< 10 s", value=10.0)]))
    span = res.add(Figure("B7.decide_span_s", "B7", "first decision to last (database time)",
                          "s"))
    cpu = res.add(Figure("B7.server_cpu_ms_per_decision", "B7",
                         "server CPU per decision (the workers' backends, boot included)", "ms"))
    fires = res.add(Figure("B7.fires_per_schedule", "B7",
                           "fires / schedules (one fired row and one job each)", "ratio",
                           bars=[Bar("==", "fires = schedules", value=1.0)]))
    for r in range(ctx.sizes.runs):
        ctx.log(f"B7 {what} run {r + 1}")
        with ctx.server.fresh_db() as dsn:
            m = measure(ctx, dsn, n)
        total.runs.append(m["seconds"])
        span.runs.append(m["decide_span_s"])
        if m["cpu_ms_per_decision"] is not None:
            cpu.runs.append(m["cpu_ms_per_decision"])
        ok = m["fired"] == m["distinct"] == m["jobs"] == n
        fires.runs.append(m["fired"] / n if ok else min(m["fired"], m["jobs"]) / n)
        for key in ("fired", "jobs", "nodes", "coalesced"):
            fires.details.setdefault(key, []).append(m[key])
