"""B1: enqueue no-op jobs: one call per job, in batches of 1,000, and from 8 producers.

One call per job is ``Client.enqueue`` in a loop on one autocommit connection: one round
trip and one durable commit per job. Batched is ``Client.enqueue_many`` with 1,000
requests per call (``pgbatch.enqueue_arrays``). Single enqueue is measured twice, with
the queue's NOTIFY on (the default) and switched off (``set_queue_notify(queue,
false)``), because NOTIFY takes a database-wide lock at commit, which serialises
notifying commits. Many producers is 8 processes, each with its own ``Client`` (one
connection), enqueuing one by one the way web workers do, started together at a barrier;
the rate is all their jobs over the time from the first start to the last finish; it too
is measured with NOTIFY on and off. Each run uses a fresh database; the order of the
single on/off measurements alternates between runs.

CPU per job is reported next to every rate (the calling thread, or the producer
processes, for the client side; every PostgreSQL process for the server side), because
on a shared machine it moves much less than the rates do.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from functools import partial
from multiprocessing.synchronize import Barrier
from typing import Any

from pgbatch import Client, EnqueueRequest
from pgbatch.bench._cpu import ServerCpuSampler
from pgbatch.bench._harness import NOOP_PAYLOAD, Context, checkpoint, connect
from pgbatch.bench._model import ANCHORS, Bar, Figure, ScenarioResult
from pgbatch.bench._peer_bars import figure_key, measured, peer_bar

WARMUP = 20
PRODUCERS = 8
#: How often the server's processes are sampled for their CPU: rarely, because the
#: sampler thread runs in the benchmark's process, which is also the client here (one
#: scan of /proc every 20 ms, the default, takes the client's GIL and CPU noticeably).
#: The backends that do the work live through the whole window, so nothing is lost.
CPU_SAMPLE_INTERVAL = 1.0


def _timed(postmaster: int | None, n: int, body: Callable[[], None]) -> tuple[float, float,
                                                                             float | None]:
    """Run ``body``; the rate for ``n`` jobs, client and server CPU µs per job."""
    with ServerCpuSampler(postmaster, CPU_SAMPLE_INTERVAL) as sampler:
        c0 = time.thread_time()  # this thread: not the sampler's
        t0 = time.perf_counter()
        body()
        elapsed = time.perf_counter() - t0
        client_cpu = time.thread_time() - c0
        server_cpu = sampler.stop()
    return (n / elapsed, client_cpu * 1e6 / n,
            None if server_cpu is None else server_cpu * 1e6 / n)


def _one_by_one(client: Client, queue: str, n: int) -> None:
    for _ in range(n):
        client.enqueue(queue, NOOP_PAYLOAD)


def _in_batches(client: Client, requests: list[EnqueueRequest], size: int) -> None:
    for i in range(0, len(requests), size):
        client.enqueue_many(requests[i:i + size])


def _producer(dsn: str, queue: str, n: int, barrier: Barrier, out: Any) -> None:
    """One of the many producers (a process): enqueue ``n`` jobs one by one after the barrier."""
    client = Client.connect(dsn, min_size=1, max_size=1)
    try:
        for _ in range(WARMUP):
            client.enqueue("warmup", NOOP_PAYLOAD)
        barrier.wait()
        c0 = time.process_time()
        t0 = time.monotonic()
        for _ in range(n):
            client.enqueue(queue, NOOP_PAYLOAD)
        out.put((t0, time.monotonic(), time.process_time() - c0))
    finally:
        client.close()


def many_producers(dsn: str, queue: str, n: int, postmaster: int | None,
                   producers: int = PRODUCERS) -> tuple[float, float, float | None]:
    """Rate of ``producers`` processes enqueuing ``n`` jobs in all, one by one.

    Returns the rate, the producers' CPU µs per job and the server's.
    """
    spawn = mp.get_context("spawn")
    barrier = spawn.Barrier(producers + 1)
    out = spawn.Queue()
    each = max(1, n // producers)
    procs = [spawn.Process(target=_producer, args=(dsn, queue, each, barrier, out),
                           name=f"bench-producer-{i}") for i in range(producers)]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=120)
        with ServerCpuSampler(postmaster, CPU_SAMPLE_INTERVAL) as sampler:
            results = [out.get(timeout=600) for _ in procs]
            server_cpu = sampler.stop()
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    total = each * producers
    start = min(r[0] for r in results)
    end = max(r[1] for r in results)
    return (total / (end - start), sum(r[2] for r in results) * 1e6 / total,
            None if server_cpu is None else server_cpu * 1e6 / total)


def _cpu_figures(res: ScenarioResult, key: str, what: str) -> tuple[Figure, Figure]:
    return (res.add(Figure(f"{key}.client_cpu_us", "B1", f"{what}: client CPU per job", "µs/job")),
            res.add(Figure(f"{key}.server_cpu_us", "B1", f"{what}: PostgreSQL CPU per job",
                           "µs/job")))


def run(ctx: Context, res: ScenarioResult) -> None:
    """Measure single, batched and many-producer enqueue rates."""
    sz = ctx.sizes
    n = sz.enqueue_jobs
    single = res.add(Figure(
        "B1.single", "B1", f"enqueue one by one ({n:,} jobs, NOTIFY on)", "jobs/s",
        bars=[Bar(">=", "≥ 0.8x B0 INSERT+COMMIT from Python, 1 client", ref="B0.py_insert.c1",
                  factor=0.8),
              peer_bar(ctx.results, "enqueue_single", ">=", 1.0,
                       ANCHORS["pgqueuer_enqueue_single_jobs_per_s"],
                       "one-by-one enqueue", lib="pgqueuer-asyncpg")]))
    single_cpu = _cpu_figures(res, "B1.single", "enqueue one by one")
    quiet = res.add(Figure(
        "B1.single_nonotify", "B1", f"enqueue one by one ({n:,} jobs, NOTIFY off)", "jobs/s"))
    quiet_cpu = _cpu_figures(res, "B1.single_nonotify", "enqueue one by one, NOTIFY off")
    batched_anchor = ANCHORS["pgqueuer_enqueue_batched_jobs_per_s"]
    batched = res.add(Figure(
        "B1.batched", "B1", f"enqueue_many, batches of {sz.enqueue_batch:,} ({n:,} jobs)",
        "jobs/s",
        bars=[peer_bar(ctx.results, "enqueue_batched", ">=", 1.5, batched_anchor,
                       "batched enqueue", lib="pgqueuer-asyncpg")]))
    batched_cpu = _cpu_figures(res, "B1.batched", f"enqueue_many of {sz.enqueue_batch:,}")
    many = res.add(Figure(
        "B1.producers8", "B1", f"enqueue one by one from {PRODUCERS} producer processes "
        f"({n:,} jobs)", "jobs/s",
        bars=[Bar(">=", "≥ 0.5x B0 INSERT+COMMIT (pgbench), 8 clients", ref="B0.insert.c8",
                  factor=0.5)]))
    if measured(ctx.results, "pgqueuer-asyncpg", "producers8") is not None:
        many.bars.append(Bar(">=", f"≥ PGQueuer (asyncpg) from {PRODUCERS} producers (side by "
                                   "side)", ref=figure_key("pgqueuer-asyncpg", "producers8")))
    many_cpu = _cpu_figures(res, "B1.producers8", f"{PRODUCERS} producers")
    many_quiet = res.add(Figure(
        "B1.producers8_nonotify", "B1", f"enqueue one by one from {PRODUCERS} producer "
        f"processes ({n:,} jobs, NOTIFY off)", "jobs/s"))
    postmaster = ctx.server.postmaster_pid()

    def record(fig: Figure, cpu: tuple[Figure, Figure],
               result: tuple[float, float, float | None]) -> None:
        fig.runs.append(result[0])
        cpu[0].runs.append(result[1])
        if result[2] is not None:
            cpu[1].runs.append(result[2])

    for r in range(sz.runs):
        with ctx.server.fresh_db() as dsn, connect(dsn) as admin:
            client = Client.connect(dsn, min_size=1, max_size=1)
            try:
                client.set_queue_notify("bench_quiet", False)
                order = [("bench", single, single_cpu), ("bench_quiet", quiet, quiet_cpu)]
                if r % 2:
                    order.reverse()
                for queue, fig, cpu in order:
                    ctx.log(f"B1 single enqueue on {queue} run {r + 1}")
                    for _ in range(WARMUP):
                        client.enqueue("warmup", NOOP_PAYLOAD)
                    checkpoint(admin)
                    record(fig, cpu, _timed(postmaster, n, partial(_one_by_one, client, queue, n)))
                ctx.log(f"B1 batched enqueue run {r + 1}")
                client.enqueue_many([EnqueueRequest("warmup", NOOP_PAYLOAD)] * WARMUP)
                requests = [EnqueueRequest("bench_batch", NOOP_PAYLOAD) for _ in range(n)]
                checkpoint(admin)
                record(batched, batched_cpu, _timed(
                    postmaster, n, partial(_in_batches, client, requests, sz.enqueue_batch)))
            finally:
                client.close()
            ctx.log(f"B1 {PRODUCERS} producers run {r + 1}")
            admin.execute("select pgbatch.set_queue_notify('bench_many_quiet', false)")
            checkpoint(admin)
            record(many, many_cpu, many_producers(dsn, "bench_many", n, postmaster))
            ctx.log(f"B1 {PRODUCERS} producers, NOTIFY off, run {r + 1}")
            checkpoint(admin)
            many_quiet.runs.append(many_producers(dsn, "bench_many_quiet", n, postmaster)[0])
    for figs in (single_cpu, quiet_cpu, batched_cpu, many_cpu):
        for fig in figs:
            if not fig.runs:
                res.figures.remove(fig)
    if many.median and many_quiet.median:
        res.notes.append(
            f"{PRODUCERS} producers: NOTIFY on/off rate ratio {many.median / many_quiet.median:.3f}"
            " (a notifying transaction holds NOTIFY's database-wide lock through its commit's"
            " WAL flush, so notifying committers do not share a flush).")
    if single.median and quiet.median:
        cost_us = (1 / single.median - 1 / quiet.median) * 1e6
        quiet.details["notify_cost_us_per_enqueue"] = cost_us
        quiet.details["on_over_off"] = single.median / quiet.median
        res.notes.append(
            f"NOTIFY on the enqueue path: {cost_us:+.1f} µs per single enqueue "
            f"(on/off rate ratio {single.median / quiet.median:.3f}).")
