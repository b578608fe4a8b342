"""B1: enqueue no-op jobs from one client, one call per job and in batches of 1,000.

One call per job is ``Client.enqueue`` in a loop on one autocommit connection: one round
trip and one durable commit per job. Batched is ``Client.enqueue_many`` with 1,000
requests per call. Single enqueue is measured twice, with the queue's NOTIFY on (the
default) and switched off (``set_queue_notify(queue, false)``), as ARCHITECTURE.md asks
(NOTIFY takes a database-wide lock at commit). Each run uses a fresh database; the order
of the on/off measurements alternates between runs.
"""

from __future__ import annotations

import time

from pgbatch import Client, EnqueueRequest
from pgbatch.bench._harness import NOOP_PAYLOAD, Context, checkpoint, connect
from pgbatch.bench._model import ANCHORS, Bar, Figure, ScenarioResult

WARMUP = 20


def run(ctx: Context, res: ScenarioResult) -> None:
    """Measure single and batched enqueue rates."""
    sz = ctx.sizes
    n = sz.enqueue_jobs
    single = res.add(Figure(
        "B1.single", "B1", f"enqueue one by one ({n:,} jobs, NOTIFY on)", "jobs/s",
        bars=[Bar(">=", "≥ 0.8x B0 INSERT+COMMIT, 1 client", ref="B0.insert.c1", factor=0.8),
              Bar(">=", "≥ PGQueuer 1,300 (anchor)",
                  value=ANCHORS["pgqueuer_enqueue_single_jobs_per_s"])]))
    quiet = res.add(Figure(
        "B1.single_nonotify", "B1", f"enqueue one by one ({n:,} jobs, NOTIFY off)", "jobs/s"))
    batched = res.add(Figure(
        "B1.batched", "B1", f"enqueue_many, batches of {sz.enqueue_batch:,} ({n:,} jobs)",
        "jobs/s",
        bars=[Bar(">=", "≥ 1.5x PGQueuer 35,000 = 52,500 (anchor)",
                  value=1.5 * ANCHORS["pgqueuer_enqueue_batched_jobs_per_s"])]))
    for r in range(sz.runs):
        with ctx.server.fresh_db() as dsn, connect(dsn) as admin:
            client = Client.connect(dsn, min_size=1, max_size=1)
            try:
                client.set_queue_notify("bench_quiet", False)
                order = [("bench", single), ("bench_quiet", quiet)]
                if r % 2:
                    order.reverse()
                for queue, fig in order:
                    ctx.log(f"B1 single enqueue on {queue} run {r + 1}")
                    for _ in range(WARMUP):
                        client.enqueue("warmup", NOOP_PAYLOAD)
                    checkpoint(admin)
                    t0 = time.perf_counter()
                    for _ in range(n):
                        client.enqueue(queue, NOOP_PAYLOAD)
                    fig.runs.append(n / (time.perf_counter() - t0))
                ctx.log(f"B1 batched enqueue run {r + 1}")
                client.enqueue_many([EnqueueRequest("warmup", NOOP_PAYLOAD)] * WARMUP)
                requests = [EnqueueRequest("bench_batch", NOOP_PAYLOAD) for _ in range(n)]
                checkpoint(admin)
                t0 = time.perf_counter()
                for i in range(0, n, sz.enqueue_batch):
                    client.enqueue_many(requests[i:i + sz.enqueue_batch])
                batched.runs.append(n / (time.perf_counter() - t0))
            finally:
                client.close()
    if single.median and quiet.median:
        cost_us = (1 / single.median - 1 / quiet.median) * 1e6
        quiet.details["notify_cost_us_per_enqueue"] = cost_us
        quiet.details["on_over_off"] = single.median / quiet.median
        res.notes.append(
            f"NOTIFY on the enqueue path: {cost_us:+.1f} µs per single enqueue "
            f"(on/off rate ratio {single.median / quiet.median:.3f}).")
