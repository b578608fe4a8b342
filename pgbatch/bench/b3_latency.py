"""B3: wake-up latency of idle workers.

One worker process (concurrency 10, poll interval 10 s, so a poll never stands in for a
wakeup) listens on an idle queue. One job is enqueued at a time after a random 50-150 ms
gap (``Client.enqueue``, autocommit: the call returns after the COMMIT). The latency is
from ``time.time()`` right after the enqueue call returns to ``time.time()`` at the
first line of the job body, which the worker writes to its stdout pipe (one ``write``
on the loop thread, after the timestamp is taken). Both clocks are this machine's.
The next job is enqueued only after the previous one reported. A few warm-up jobs are
not counted. The worker also reports when its listener passed the notification on, so
the details split each sample into "notify" (commit → listener callback) and
"claim_and_start" (listener → first line of the body: wakeup, claim round trip, start).
"""

from __future__ import annotations

import queue
import random
import time

from pgbatch import Client
from pgbatch.bench._harness import Context
from pgbatch.bench._model import ANCHORS, Bar, Figure, ScenarioResult, percentile
from pgbatch.bench._peer_bars import peer_bar
from pgbatch.bench._procs import WorkerGroup

WARMUP = 5
TIMEOUT = 15.0
POLL_INTERVAL = 10.0


def measure(ctx: Context, dsn: str, samples: int,
            seed: int) -> tuple[list[float], list[tuple[float, float]], list[float], int]:
    """Latencies in ms of ``samples`` jobs, their (notify, claim-and-start) split, the
    latencies counted from the start of the enqueue call (an upper bound), and how many
    samples never reported within TIMEOUT."""
    rng = random.Random(seed)
    lost = 0
    out: list[float] = []
    split: list[tuple[float, float]] = []
    upper: list[float] = []
    with WorkerGroup(dsn, [10], log_dir=ctx.workdir, label="b3",
                     poll_interval=POLL_INTERVAL) as group:
        proc = group.procs[0]
        client = Client.connect(dsn, min_size=1, max_size=1)
        try:
            time.sleep(0.5)
            for i in range(-WARMUP, samples):
                time.sleep(rng.uniform(0.05, 0.15))
                t_call = time.time()
                client.enqueue("bench", {"task": "stamp", "kwargs": {"i": i}})
                t_commit = time.time()
                deadline = time.monotonic() + TIMEOUT
                while True:
                    try:
                        j, t_body, t_ready = proc.stamps.get(
                            timeout=max(deadline - time.monotonic(), 0.001))
                    except queue.Empty:
                        if i >= 0:
                            lost += 1
                        group.check_alive()
                        break
                    if j == i:
                        if i >= 0:
                            out.append((t_body - t_commit) * 1000)
                            upper.append((t_body - t_call) * 1000)
                            # a notification older than the gap belongs to an earlier job
                            if t_ready is not None and t_ready >= t_commit - 0.04:
                                split.append(((t_ready - t_commit) * 1000,
                                              (t_body - t_ready) * 1000))
                        break
        finally:
            client.close()
    return out, split, upper, lost


def run(ctx: Context, res: ScenarioResult) -> None:
    """Measure p50/p95/p99/max wake-up latency."""
    sz = ctx.sizes
    s = sz.latency_samples
    bars = {
        "p50": [Bar("<=", "≤ 2 ms", value=2.0)],
        "p95": [],
        "p99": [Bar("<=", "≤ 5 ms", value=5.0)],
        "max": [Bar("<=", "≤ 50 ms (no sample over)", value=50.0)],
    }
    figs = {k: res.add(Figure(f"B3.{k}", "B3", f"wake-up latency {k} ({s} samples)", "ms",
                              bars=b)) for k, b in bars.items()}
    figs["p50"].details["anchor_best_peer_p50_ms"] = ANCHORS["best_wakeup_p50_ms"]
    figs["p99"].details["anchor_best_peer_p99_ms"] = ANCHORS["best_wakeup_p99_ms"]
    for pct in ("p50", "p99"):
        figs[pct].bars.append(peer_bar(ctx.results, f"wake_{pct}", "<=", 1.0,
                                       ANCHORS[f"best_wakeup_{pct}_ms"],
                                       f"wake-up latency {pct}"))
    res.notes.append("1 worker process x concurrency 10, poll interval 10 s; "
                     "enqueue commit → first line of the job body.")
    all_lost = 0
    for r in range(sz.runs):
        ctx.log(f"B3 latency run {r + 1} ({s} samples)")
        with ctx.server.fresh_db() as dsn:
            lat, split, upper, lost = measure(ctx, dsn, s, seed=1000 + r)
        all_lost += lost
        if not lat:
            raise RuntimeError("no latency sample arrived")
        figs["p50"].runs.append(percentile(lat, 50))
        figs["p95"].runs.append(percentile(lat, 95))
        figs["p99"].runs.append(percentile(lat, 99))
        figs["max"].runs.append(max(lat))
        figs["max"].details.setdefault("mean_ms", []).append(sum(lat) / len(lat))
        figs["max"].details.setdefault("min_ms", []).append(min(lat))
        # a negative sample: the job started before the enqueuing client got the CPU
        # back after its COMMIT (a busy machine); from the call's start it is positive
        figs["max"].details.setdefault("negative_samples", []).append(
            sum(1 for v in lat if v < 0))
        for q in (50, 99):
            figs["p50" if q == 50 else "p99"].details.setdefault(
                f"from_call_start_p{q}_ms", []).append(percentile(upper, q))
        if split:
            notify = [a for a, _ in split]
            start = [b for _, b in split]
            for key, values in (("notify", notify), ("claim_and_start", start)):
                for q in (50, 99):
                    figs["p50" if q == 50 else "p99"].details.setdefault(
                        f"{key}_p{q}_ms", []).append(percentile(values, q))
    figs["max"].details["lost_samples"] = all_lost
    if all_lost:
        figs["max"].check = (False, f"{all_lost} samples never ran within {TIMEOUT:.0f} s")
