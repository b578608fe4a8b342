"""B5: soak at the B2 rate with continuous enqueue.

One worker process (concurrency 10, default settings: maintenance on, retention keeps
done jobs for a day, so the archive grows — as it would in production) processes the
jobs of a producer thread that enqueues batches (``enqueue_many``) every 100 ms at a
fixed rate: ``--soak-rate`` jobs/s, by default 90% of this run's B2 rate with one
process (measured first, with a short B2 drain, when B2 is not part of the run).

The producer never lets the backlog (live jobs of the queue) exceed ``BACKLOG_CAP``
(as many jobs as B2 pre-loads): a tick whose jobs would pass it enqueues only up to
it and drops the rest. On 2 cores the producer takes CPU from the worker and the
server, so the worker cannot settle the B2 rate while jobs are being enqueued; without
the cap the backlog would grow without bound (about 1M jobs in 10 minutes), and the
soak would measure a table that grows by design rather than whether throughput holds
up over time. With the cap, each minute's rate is what the system sustains with
continuous enqueue; the rate achieved and the jobs dropped are reported.

Throughput is sampled per bucket (60 s, or a quarter of the soak when it is shorter
than 4 minutes): jobs settled per second (``queue_stats`` done delta), jobs enqueued,
and the backlog. The figure that must not decay is the last bucket's rate over the
first's. Table and index sizes are read at the end.

Raw SQL on purpose: table, index and database sizes and checkpoint/vacuum
counters are read from the server's statistics views.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from pgbatch import Client, EnqueueRequest
from pgbatch.bench._harness import NOOP_PAYLOAD, Context, connect, scalar
from pgbatch.bench._model import Bar, Figure, ScenarioResult
from pgbatch.bench._procs import WorkerGroup
from pgbatch.bench.b2_throughput import drain

TICK = 0.1
RATE_FRACTION = 0.9
BACKLOG_CAP = 20_000

_TABLE_STATS = ("select n_dead_tup, autovacuum_count from pg_stat_user_tables"
                " where relid = 'pgbatch.job'::regclass")


def _checkpoints(conn: psycopg.Connection[Any]) -> int | None:
    """Checkpoints so far (PostgreSQL 17+: pg_stat_checkpointer; before: pg_stat_bgwriter)."""
    for query in ("select num_timed + num_requested from pg_stat_checkpointer",
                  "select checkpoints_timed + checkpoints_req from pg_stat_bgwriter"):
        try:
            with conn.transaction():
                row = conn.execute(query).fetchone()
        except psycopg.Error:
            continue
        return int(row[0]) if row else None
    return None


class Producer(threading.Thread):
    """Enqueues ``rate`` jobs/s in one ``enqueue_many`` per tick, catching up when late.

    A tick enqueues only as many jobs as keep the queue's live jobs at most
    ``backlog_cap``; the rest of that tick is dropped (counted in ``dropped``).
    """

    def __init__(self, dsn: str, rate: float, backlog_cap: int = BACKLOG_CAP) -> None:
        super().__init__(daemon=True, name="bench-producer")
        self.dsn = dsn
        self.rate = rate
        self.backlog_cap = backlog_cap
        self.enqueued = 0
        self.dropped = 0
        self.capped_ticks = 0
        self.calls = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        client = Client.connect(self.dsn, min_size=1, max_size=1)
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                self._produce(client, conn)
        except BaseException as exc:  # noqa: BLE001 - reported by the scenario
            self.error = exc
        finally:
            client.close()

    def _produce(self, client: Client, conn: psycopg.Connection[Any]) -> None:
        t0 = time.monotonic()
        k = 0
        offered = 0
        while not self._halt.is_set():
            k += 1
            due = int(self.rate * k * TICK) - offered
            if due > 0:
                offered += due
                live = int(scalar(conn, "select count(*) from pgbatch.job where queue = 'bench'"))
                take = min(due, max(self.backlog_cap - live, 0))
                if take < due:
                    self.dropped += due - take
                    self.capped_ticks += 1
                if take > 0:
                    client.enqueue_many([EnqueueRequest("bench", NOOP_PAYLOAD)] * take)
                    self.enqueued += take
                    self.calls += 1
            delay = t0 + k * TICK - time.monotonic()
            if delay > 0:
                self._halt.wait(delay)

    def halt(self) -> None:
        """Stop after the current batch."""
        self._halt.set()
        self.join(30)


def _rate(ctx: Context, res: ScenarioResult) -> float:
    sz = ctx.sizes
    if sz.soak_rate:
        res.notes.append(f"rate {sz.soak_rate:,.0f} jobs/s (--soak-rate)")
        return sz.soak_rate
    b2 = ctx.results.get("B2")
    measured: float | None = None
    if b2 is not None:
        for f in b2.figures:
            if f.key == "B2.p1.jobs_per_s" and f.median:
                measured = float(f.median)
    if measured is None:
        ctx.log("B5 calibrating: one B2 drain with 1 process")
        with ctx.server.fresh_db() as dsn:
            measured = drain(ctx, dsn, processes=1, concurrency=10,
                             n=min(sz.process_jobs, 10_000), label="b5-cal").jobs_per_s
        res.notes.append(f"B2 rate calibrated in this scenario: {measured:,.0f} jobs/s")
    rate = RATE_FRACTION * measured
    res.notes.append(f"producer rate {rate:,.0f} jobs/s = {RATE_FRACTION:.0%} of the B2 "
                     f"1-process rate {measured:,.0f} jobs/s")
    return rate


def run(ctx: Context, res: ScenarioResult) -> None:
    """Soak for ``--soak-minutes`` and report throughput per bucket and sizes."""
    sz = ctx.sizes
    seconds = sz.soak_minutes * 60
    bucket = 60.0 if seconds >= 240 else seconds / 4
    rate = _rate(ctx, res)
    res.notes.append(f"soak {sz.soak_minutes:g} min, buckets of {bucket:g} s; one run "
                     "(the soak is not repeated).")
    buckets: list[dict[str, Any]] = []
    with ctx.server.fresh_db() as dsn, connect(dsn) as admin:
        with WorkerGroup(dsn, [10], log_dir=ctx.workdir, label="b5") as group:
            proc = group.procs[0]
            rss0 = proc.rss_mb()
            checkpoints0 = _checkpoints(admin)
            producer = Producer(dsn, rate)
            ctx.log(f"B5 soak: {sz.soak_minutes:g} min at {rate:,.0f} jobs/s")
            t0 = time.monotonic()
            producer.start()
            last_t, last_done, last_enq = t0, 0, 0
            for i in range(1, 1 + round(seconds / bucket)):
                time.sleep(max(t0 + i * bucket - time.monotonic(), 0.0))
                pending, claimed, done = admin.execute(
                    "select pending, claimed, done from pgbatch.queue_stats('bench')"
                ).fetchone() or (0, 0, 0)
                vac = admin.execute(_TABLE_STATS).fetchone() or (None, None)
                now, enq = time.monotonic(), producer.enqueued
                dt = now - last_t
                buckets.append({
                    "end_s": round(now - t0, 3),
                    "processed_per_s": (int(done) - last_done) / dt,
                    "enqueued_per_s": (enq - last_enq) / dt,
                    "pending": int(pending),
                    "claimed": int(claimed),
                    "job_dead_tuples": vac[0],
                    "job_autovacuums": vac[1],
                })
                last_t, last_done, last_enq = now, int(done), enq
                group.check_alive()
                if producer.error is not None:
                    raise RuntimeError(f"producer failed: {producer.error!r}")
            producer.halt()
            rss1 = proc.rss_mb()
            checkpoints1 = _checkpoints(admin)
        sizes = {
            name: int(scalar(admin, f"select {fn}(%s::regclass)", (rel,))) / 2**20
            for name, fn, rel in (
                ("job_total_mb", "pg_total_relation_size", "pgbatch.job"),
                ("job_heap_mb", "pg_relation_size", "pgbatch.job"),
                ("job_indexes_mb", "pg_indexes_size", "pgbatch.job"),
                ("archive_total_mb", "pg_total_relation_size", "pgbatch.job_archive"),
                ("archive_heap_mb", "pg_relation_size", "pgbatch.job_archive"),
                ("archive_indexes_mb", "pg_indexes_size", "pgbatch.job_archive"),
                ("queue_count_total_mb", "pg_total_relation_size", "pgbatch.queue_count"),
            )
        }
        sizes["database_mb"] = int(scalar(
            admin, "select pg_database_size(current_database())")) / 2**20
        indexes = {str(name): int(size) / 2**20 for name, size in admin.execute(
            "select indexrelid::regclass::text, pg_relation_size(indexrelid)"
            " from pg_index where indrelid in ('pgbatch.job'::regclass,"
            " 'pgbatch.job_archive'::regclass) order by 1").fetchall()}
    first, last = buckets[0]["processed_per_s"], buckets[-1]["processed_per_s"]
    unit = "minute" if bucket == 60 else f"{bucket:g} s"
    res.add(Figure("B5.first", "B5", f"throughput, first {unit}", "jobs/s", runs=[first]))
    res.add(Figure("B5.last", "B5", f"throughput, last {unit}", "jobs/s", runs=[last]))
    res.add(Figure("B5.ratio", "B5", "last / first throughput", "x", runs=[last / first],
                   bars=[Bar(">=", "≥ 0.9 (must not decay)", value=0.9)]))
    res.add(Figure("B5.enqueue_rate", "B5", "producer rate achieved", "jobs/s",
                   runs=[last_enq / float(buckets[-1]["end_s"])],
                   details={"target": rate}))
    res.add(Figure("B5.backlog_end", "B5", "backlog at the end (pending)", "jobs",
                   runs=[float(buckets[-1]["pending"])]))
    res.add(Figure("B5.dropped_share", "B5",
                   f"producer: share of the target rate dropped at the backlog cap "
                   f"({BACKLOG_CAP:,} live jobs)", "x",
                   runs=[producer.dropped / max(producer.dropped + producer.enqueued, 1)],
                   details={"dropped": producer.dropped, "capped_ticks": producer.capped_ticks,
                            "ticks_with_enqueue": producer.calls}))
    res.add(Figure("B5.job_mb", "B5", "pgbatch.job size at the end (heap + indexes)", "MB",
                   runs=[sizes["job_total_mb"]]))
    res.add(Figure("B5.archive_mb", "B5", "pgbatch.job_archive size at the end", "MB",
                   runs=[sizes["archive_total_mb"]],
                   details={"archived_jobs": last_done}))
    res.details.update({"buckets": buckets, "sizes_mb": sizes, "index_sizes_mb": indexes,
                        "worker_rss_mb": {"start": rss0, "end": rss1},
                        "bucket_seconds": bucket, "rate": rate,
                        "checkpoints": None if checkpoints0 is None or checkpoints1 is None
                        else checkpoints1 - checkpoints0})
