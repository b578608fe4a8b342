"""B2: process pre-loaded no-op jobs until the queue is empty.

Per run, in a fresh database: ``N`` no-op jobs are pre-loaded on a paused queue, the
worker processes (``python -m pgbatch.bench.worker_proc``, concurrency 10 each) are
started and wait until each prints ``READY``; then ``resume_queue`` releases them all at
once (it NOTIFYs the pending count to every listener). The window ends at the last
settlement (the latest ``finished_at`` in the archive, database time, like the release
time) once ``queue_stats`` shows 0 pending, 0 claimed and ``done == N``.

Figures: jobs/s; worker CPU ms/job (user + system of the worker processes, from
/proc); transactions/job (``pg_stat_database.xact_commit`` delta of the database, read
after the workers disconnected so that their counters are flushed, minus the
benchmark's own statements); WAL bytes/job (``pg_current_wal_insert_lsn`` delta); and
server CPU ms/job (all PostgreSQL processes), to see where the time goes.

Raw SQL on purpose: the measurement reads server statistics
(``pg_stat_database``, ``pg_stat_activity``, the WAL position) and the archive's
timestamps, and prepares the store (VACUUM ANALYZE), not the queue's API.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from pgbatch.bench._cpu import ServerCpuSampler
from pgbatch.bench._harness import (
    Context,
    checkpoint,
    connect,
    preload,
)
from pgbatch.bench._model import ANCHORS, Bar, Figure, ScenarioResult
from pgbatch.bench._peer_bars import peer_bar
from pgbatch.bench._procs import WorkerGroup

POLL_EVERY = 0.05
WAL_LSN = "select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint"
CONFIGS = ((1, 10), (2, 10))  # (processes, concurrency)


@dataclass
class Drain:
    """One measured drain."""

    jobs_per_s: float
    seconds: float
    worker_cpu_ms_per_job: float
    server_cpu_ms_per_job: float | None
    xacts_per_job: float
    wal_bytes_per_job: float
    claim_calls: int
    empty_claims: int
    ack_batches: int


class _Counted:
    """An autocommit connection that counts the statements (transactions) it runs.

    The benchmark's own statements in the measured database are subtracted from the
    ``xact_commit`` delta: ``xact()`` flushes this backend's counters (so the value read
    includes every statement up to the flush) and the counter restarts after it.
    """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.statements = 0

    def one(self, query: str, params: tuple[Any, ...] | None = None) -> tuple[Any, ...]:
        self.statements += 1
        row = self.conn.execute(query, params).fetchone()
        if row is None:
            raise RuntimeError(f"no row from {query!r}")
        return tuple(row)

    def xact(self) -> tuple[int, int]:
        """(xact_commit of this database, own statements since the previous call)."""
        self.one("select pg_stat_force_next_flush()")
        own, self.statements = self.statements, 0
        (value,) = self.one("select xact_commit from pg_stat_database"
                            " where datname = current_database()")
        return int(value), own

    def wait_others_gone(self, timeout: float = 10.0) -> None:
        """Wait until no other session uses this database (their counters are flushed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            (others,) = self.one("select count(*) from pg_stat_activity"
                                 " where datname = current_database() and pid <> pg_backend_pid()")
            if int(others) == 0:
                return
            time.sleep(0.05)


def drain(ctx: Context, dsn: str, *, processes: int, concurrency: int, n: int,
          task: str = "noop", label: str = "b2", worker_args: Sequence[str] = ()) -> Drain:
    """Pre-load ``n`` jobs in the fresh database ``dsn`` and time their processing."""
    postmaster = ctx.server.postmaster_pid()
    with connect(dsn) as admin:
        admin.execute("select pgbatch.pause_queue('bench')")
        preload(admin, "bench", n, {"task": task, "kwargs": {}})
        admin.execute("vacuum analyze pgbatch.job")
        group = WorkerGroup(dsn, [concurrency] * processes, log_dir=ctx.workdir,
                            label=f"{label}-p{processes}", extra=worker_args)
        c = _Counted(admin)
        sampler = ServerCpuSampler(postmaster)
        try:
            time.sleep(0.3)  # let startup claims (paused queue: empty) and registration settle
            checkpoint(admin)
            xact0, _ = c.xact()
            (lsn0,) = c.one(WAL_LSN)
            wcpu0 = group.cpu()
            sampler.start()
            (t_release,) = c.one("select extract(epoch from clock_timestamp())::float8"
                                 " from pgbatch.resume_queue('bench')")
            deadline = time.monotonic() + max(120.0, n / 200)
            while True:
                time.sleep(POLL_EVERY)
                (left,) = c.one("select exists (select 1 from pgbatch.job)")
                if not left:
                    pending, claimed, done = c.one(
                        "select pending, claimed, done from pgbatch.queue_stats('bench')")
                    if pending == 0 and claimed == 0 and done == n:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{n} jobs were not processed in time")
                group.check_alive()
            wcpu1 = group.cpu()
            server_cpu = sampler.stop()
            (lsn1,) = c.one(WAL_LSN)
            (t_end,) = c.one("select extract(epoch from max(finished_at))::float8"
                             " from pgbatch.job_archive")
        finally:
            sampler.stop()
            finals = group.stop()
        c.wait_others_gone()
        xact1, own = c.xact()
    seconds = float(t_end) - float(t_release)
    claim_calls = sum(int(f["worker"]["claim_calls"]) for f in finals if f)
    empty = sum(int(f["worker"]["empty_claims"]) for f in finals if f)
    batches = sum(int(f.get("settle", {}).get("batches", 0)) for f in finals if f)
    return Drain(
        jobs_per_s=n / seconds,
        seconds=seconds,
        worker_cpu_ms_per_job=(wcpu1 - wcpu0) * 1000 / n,
        server_cpu_ms_per_job=None if server_cpu is None else server_cpu * 1000 / n,
        xacts_per_job=(xact1 - xact0 - own) / n,
        wal_bytes_per_job=(int(lsn1) - int(lsn0)) / n,
        claim_calls=claim_calls,
        empty_claims=empty,
        ack_batches=batches,
    )


def run(ctx: Context, res: ScenarioResult) -> None:
    """Drain the pre-loaded queue with 1 and 2 worker processes."""
    sz = ctx.sizes
    n = sz.process_jobs
    task = "noop_sync" if sz.sync_tasks else "noop"
    res.notes.append(
        f"{n:,} no-op jobs ({'sync' if sz.sync_tasks else 'async'} task), default worker "
        "settings (adaptive prefetch, maintenance on); CHECKPOINT before each window.")
    figs: dict[int, dict[str, Figure]] = {}
    for procs, conc in CONFIGS:
        anchor = ANCHORS[f"pgqueuer_jobs_per_s_{procs}proc"]
        label = f"{procs} process{'es' * (procs > 1)} x {conc}"
        figs[procs] = {
            "rate": res.add(Figure(
                f"B2.p{procs}.jobs_per_s", "B2", f"process {n:,} jobs, {label}", "jobs/s",
                bars=[peer_bar(ctx.results, f"p{procs}", ">=", 4.0, anchor,
                               f"processing rate, {label}"),
                      Bar(">=", f"≥ 70% of the B0 SQL core ceiling with as many clients "
                                f"as processes ({procs})",
                          ref=f"B0.core.max.c{procs}", factor=0.7)])),
            "cpu": res.add(Figure(f"B2.p{procs}.worker_cpu_ms_per_job", "B2",
                                  f"worker CPU per job, {label}", "ms/job")),
            "xact": res.add(Figure(f"B2.p{procs}.xacts_per_job", "B2",
                                   f"transactions per job, {label}", "xact/job")),
            "wal": res.add(Figure(f"B2.p{procs}.wal_bytes_per_job", "B2",
                                  f"WAL per job, {label}", "bytes/job")),
            "scpu": res.add(Figure(f"B2.p{procs}.server_cpu_ms_per_job", "B2",
                                   f"PostgreSQL CPU per job, {label}", "ms/job")),
        }
    for r in range(sz.runs):
        for procs, conc in CONFIGS:
            ctx.log(f"B2 {procs}x{conc} run {r + 1}")
            with ctx.server.fresh_db() as dsn:
                d = drain(ctx, dsn, processes=procs, concurrency=conc, n=n, task=task)
            f = figs[procs]
            f["rate"].runs.append(d.jobs_per_s)
            f["cpu"].runs.append(d.worker_cpu_ms_per_job)
            f["xact"].runs.append(d.xacts_per_job)
            f["wal"].runs.append(d.wal_bytes_per_job)
            if d.server_cpu_ms_per_job is not None:
                f["scpu"].runs.append(d.server_cpu_ms_per_job)
            det = f["rate"].details
            det.setdefault("seconds", []).append(d.seconds)
            det.setdefault("claim_calls", []).append(d.claim_calls)
            det.setdefault("empty_claims", []).append(d.empty_claims)
            det.setdefault("ack_batches", []).append(d.ack_batches)
            det.setdefault("jobs_per_claim", []).append(
                n / max(d.claim_calls - d.empty_claims, 1))
            det.setdefault("jobs_per_ack_batch", []).append(n / max(d.ack_batches, 1))
    for procs in figs:
        if not figs[procs]["scpu"].runs:
            res.figures.remove(figs[procs]["scpu"])
