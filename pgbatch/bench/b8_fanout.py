"""B8: wakeup fan-out — how many idle waiters one job wakes.

50 idle waiters in one process (concurrency 50), then in 4 processes (13 + 13 + 12 +
12). The poll interval is 60 s, so no waiter wakes by its timer during the measure.
One job at a time is enqueued; after it ran and things settled (100 ms), the
dispatcher counters of every process are read (``wakeups`` + ``handoffs``: waiters
woken to claim, and woken holding a job) along with the worker's claim calls. Every
process receives the NOTIFY, so the bar is exactly one waiter woken per job in each
process (every sample, not only the median); the claims per job are the number of
processes (the losers' claims return empty).
"""

from __future__ import annotations

import queue
import time
from typing import Any

from pgbatch import Client
from pgbatch.bench._harness import Context
from pgbatch.bench._model import Bar, Figure, ScenarioResult
from pgbatch.bench._procs import WorkerGroup

POLL_INTERVAL = 60.0
SETTLE = 0.1


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _woken(s: dict[str, Any]) -> int:
    return int(s["dispatch"]["wakeups"]) + int(s["dispatch"]["handoffs"])


def measure(ctx: Context, dsn: str, split: list[int], jobs: int) -> dict[str, Any]:
    """Per job and process: waiters woken and claims made."""
    woken: list[list[int]] = []
    claims: list[int] = []
    with WorkerGroup(dsn, split, log_dir=ctx.workdir, label=f"b8-{len(split)}",
                     poll_interval=POLL_INTERVAL) as group:
        client = Client.connect(dsn, min_size=1, max_size=1)
        try:
            time.sleep(0.5)  # the startup claims (one per process) are over
            for i in range(jobs):
                before = group.stats()
                client.enqueue("bench", {"task": "stamp", "kwargs": {"i": i}})
                deadline = time.monotonic() + 15
                got = False
                while not got and time.monotonic() < deadline:
                    for p in group.procs:
                        try:
                            j, _, _ = p.stamps.get(timeout=0.01)
                        except queue.Empty:
                            continue
                        got = got or j == i
                if not got:
                    raise RuntimeError(f"fan-out job {i} did not run within 15 s")
                time.sleep(SETTLE)
                after = group.stats()
                woken.append([_woken(a) - _woken(b) for a, b in zip(after, before, strict=True)])
                claims.append(sum(int(a["worker"]["claim_calls"]) - int(b["worker"]["claim_calls"])
                                  for a, b in zip(after, before, strict=True)))
        finally:
            client.close()
    flat = [w for per_job in woken for w in per_job]
    return {"woken": woken, "claims": claims, "min": min(flat), "max": max(flat),
            "mean": sum(flat) / len(flat)}


def run(ctx: Context, res: ScenarioResult) -> None:
    """Measure waiters woken per job with 1 and 4 processes."""
    sz = ctx.sizes
    total = sz.fanout_waiters
    configs = [[total], _split(total, sz.fanout_processes)]
    for split in configs:
        procs = len(split)
        label = (f"{total} waiters, 1 process" if procs == 1 else
                 f"{total} waiters, {procs} processes ({'+'.join(map(str, split))})")
        woken = res.add(Figure(
            f"B8.p{procs}.woken_per_process", "B8",
            f"waiters woken per job per process, {label}", "waiters",
            bars=[Bar("==", "= 1 per process, every job", value=1.0)]))
        claims = res.add(Figure(f"B8.p{procs}.claims_per_job", "B8",
                                f"claim calls per job, {label}", "claims"))
        lows: list[int] = []
        highs: list[int] = []
        for r in range(sz.runs):
            ctx.log(f"B8 {label} run {r + 1}")
            with ctx.server.fresh_db() as dsn:
                m = measure(ctx, dsn, split, sz.fanout_jobs)
            woken.runs.append(float(m["mean"]))
            claims.runs.append(sum(m["claims"]) / len(m["claims"]))
            lows.append(int(m["min"]))
            highs.append(int(m["max"]))
            woken.details.setdefault("per_job_per_process", []).append(m["woken"])
        ok = min(lows) == 1 and max(highs) == 1
        woken.details.update({"min": min(lows), "max": max(highs)})
        woken.check = (ok, f"every sample exactly 1 (min {min(lows)}, max {max(highs)})")
