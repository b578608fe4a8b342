"""``pgbatch demo``: a worker and a small workload in one process.

What it shows, in a few seconds:

- ``demo.fetch`` (an ``async`` task) pretends to download a page and returns
  ``AckEffects``: a ``demo.process`` follow-up job and a ``kv_put`` of the
  page's size. The ack, the follow-up and the kv write commit in one
  transaction: there is never a fetched page without its follow-up.
- ``demo.process`` (a sync task, run on a worker thread) reads that value with
  ``kv_get`` and removes it with a ``kv_delete`` effect, so the demo leaves no
  kv rows behind.
- ``demo.flaky`` fails on its first attempt and succeeds on the retry, which
  the worker schedules with a short backoff (``backoff_base=0.2`` seconds).

Every demo queue is named ``demo.*`` so the demo never touches a user's
queues. The progress display reads ``queue_stats()``; the run is over when no
demo job is pending, scheduled or claimed and every expected job (the
enqueued ones plus their follow-ups) is done or dead. Jobs left over from an
interrupted earlier demo are simply processed along the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final, TextIO

from pgbatch import (  # the public API only: the demo is what a user would write
    AckEffects,
    App,
    EnqueueRequest,
    JobContext,
    MaintenanceConfig,
    QueueStats,
    Task,
    Worker,
)

FETCH_QUEUE: Final = "demo.fetch"
PROCESS_QUEUE: Final = "demo.process"
FLAKY_QUEUE: Final = "demo.flaky"
#: The demo's queues, in display order.
QUEUES: Final = (FETCH_QUEUE, PROCESS_QUEUE, FLAKY_QUEUE)
#: One job in this many is a flaky one; the others are fetches.
FLAKY_EVERY: Final = 4


class DemoTimeout(RuntimeError):
    """The demo's jobs did not finish in time (e.g. a demo queue is paused)."""


@dataclass
class DemoResult:
    """What one demo run did."""

    enqueued: int
    follow_ups: int
    done: int
    dead: int
    retries: int
    elapsed: float
    interrupted: bool = False

    @property
    def rate(self) -> float:
        """Jobs done per second."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


def build_app(dsn: str) -> App:
    """An ``App`` with the three demo tasks registered."""
    app = App(dsn, pool_size=4)

    async def fetch(run: str, item: int) -> AckEffects:
        await asyncio.sleep(random.uniform(0.005, 0.03))  # the "download"
        key = f"demo.{run}.page.{item}"
        size = random.randint(1_000, 100_000)
        return AckEffects(
            enqueue=[process_task.request({"run": run, "item": item, "key": key})],
            kv_put={key: {"item": item, "bytes": size}},
        )

    def process(run: str, item: int, key: str) -> AckEffects:
        page = app.client.kv_get(key)  # written by the fetch's ack
        if not isinstance(page, dict) or page.get("item") != item:
            raise RuntimeError(f"fetch result {key!r} is missing")
        time.sleep(random.uniform(0.002, 0.01))  # the "processing"
        return AckEffects(kv_delete=[key])

    def flaky(ctx: JobContext, run: str, item: int) -> None:
        if ctx.attempt == 1:
            raise RuntimeError(f"simulated failure of item {item} (attempt 1); retried soon")

    app.task(fetch, name="demo.fetch", queue=FETCH_QUEUE, max_attempts=3)
    process_task: Task[Any, Any] = app.task(process, name="demo.process", queue=PROCESS_QUEUE,
                                            max_attempts=3)
    app.task(flaky, name="demo.flaky", queue=FLAKY_QUEUE, pass_context=True, max_attempts=3,
             backoff_base=0.2, backoff_cap=1.0)
    return app


def workload(app: App, jobs: int, run: str) -> list[EnqueueRequest]:
    """The demo's initial jobs: fetches, and one flaky job in every ``FLAKY_EVERY``."""
    fetch, flaky = app.tasks["demo.fetch"], app.tasks["demo.flaky"]
    return [
        (flaky if i % FLAKY_EVERY == FLAKY_EVERY - 1 else fetch).request({"run": run, "item": i})
        for i in range(jobs)
    ]


class _Progress:
    """The progress line: redrawn in place on a terminal, one line a second otherwise."""

    def __init__(self, out: TextIO, expected: int) -> None:
        self.out = out
        self.expected = expected
        self.tty = out.isatty()
        self.last_print = 0.0

    def render(self, elapsed: float, per_queue: dict[str, tuple[int, int, int, int]],
               done: int) -> str:
        parts = [f"{elapsed:5.1f}s"]
        for q in QUEUES:
            pending, claimed, qdone, dead = per_queue.get(q, (0, 0, 0, 0))
            parts.append(f"{q.removeprefix('demo.')} {pending}/{claimed}/{qdone}/{dead}")
        parts.append(f"done {min(done, self.expected)}/{self.expected}")
        return "  ".join(parts)

    def show(self, line: str, *, final: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            width = shutil.get_terminal_size((100, 24)).columns - 1
            self.out.write("\r" + line[:width] + "\x1b[K" + ("\n" if final else ""))
            self.out.flush()
        elif final or now - self.last_print >= 1.0:
            self.out.write(line + "\n")
            self.out.flush()
            self.last_print = now


def _counts(stats: list[QueueStats]) -> dict[str, QueueStats]:
    return {s.queue: s for s in stats if s.queue in QUEUES}


async def run_demo(dsn: str, *, jobs: int = 200, concurrency: int = 10, out: TextIO,
                   timeout: float = 120.0) -> DemoResult:
    """Enqueue ``jobs`` demo jobs, run a worker until they are all settled, report.

    The schema must already be installed. The worker installs SIGINT/SIGTERM
    handlers: the first signal stops it gracefully and the run reports
    ``interrupted``.
    """
    app = build_app(dsn)
    run = uuid.uuid4().hex[:8]
    requests = workload(app, jobs, run)
    n_fetch = sum(1 for r in requests if r.queue == FETCH_QUEUE)
    expected = jobs + n_fetch  # every fetch has one follow-up
    worker = Worker(
        app, list(QUEUES), concurrency=concurrency,
        node_id=f"pgbatch-demo@{socket.gethostname()}:{os.getpid()}",
        poll_interval=0.5, shutdown_grace=10.0, install_signal_handlers=True,
        maintenance_config=MaintenanceConfig(interval=0.5),
    )
    progress = _Progress(out, expected)
    worker_task: asyncio.Task[None] | None = None
    try:
        client = app.async_client
        before = _counts(await client.queue_stats())
        base = {q: (s.done, s.dead) for q, s in before.items()}
        out.write(
            f"pgbatch demo: {jobs} jobs ({n_fetch} fetch, each with a process follow-up; "
            f"{jobs - n_fetch} flaky, each failing once), {concurrency} worker slots\n"
            f"per queue: pending/claimed/done/dead\n")
        out.flush()
        started = time.monotonic()
        await client.enqueue_many(requests)
        worker_task = asyncio.create_task(worker.run(), name="demo-worker")
        done = dead = 0
        interrupted = False
        while True:
            stats = _counts(await client.queue_stats())
            per_queue: dict[str, tuple[int, int, int, int]] = {}
            live = 0
            done = dead = 0
            for q in QUEUES:
                s = stats.get(q)
                if s is None:
                    continue
                d0, x0 = base.get(q, (0, 0))
                qdone, qdead = s.done - d0, s.dead - x0
                per_queue[q] = (s.pending + s.scheduled, s.claimed, qdone, qdead)
                live += s.pending + s.scheduled + s.claimed
                done += qdone
                dead += qdead
            elapsed = time.monotonic() - started
            finished = live == 0 and done + dead >= expected
            progress.show(progress.render(elapsed, per_queue, done), final=finished)
            if finished:
                break
            if worker_task.done():
                interrupted = True
                progress.show(progress.render(elapsed, per_queue, done), final=True)
                break
            if elapsed > timeout:
                progress.show(progress.render(elapsed, per_queue, done), final=True)
                raise DemoTimeout(
                    f"the demo's jobs did not finish within {timeout:.0f} s "
                    f"(is a demo.* queue paused? see `pgbatch status`)")
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        worker.stop()
        await worker_task
        return DemoResult(enqueued=jobs, follow_ups=n_fetch, done=done, dead=dead,
                          retries=worker.stats.failed, elapsed=elapsed, interrupted=interrupted)
    finally:
        if worker_task is not None and not worker_task.done():
            worker.stop()
            with contextlib.suppress(Exception):
                await worker_task
        await app.aclose()


def summary(result: DemoResult) -> str:
    """The closing lines of the demo."""
    head = "interrupted" if result.interrupted else "finished"
    lines = [
        f"{head}: {result.done} jobs done ({result.enqueued} enqueued + "
        f"{result.follow_ups} follow-ups), {result.retries} retries, {result.dead} dead, "
        f"in {result.elapsed:.1f} s ({result.rate:.0f} jobs/s)",
    ]
    if not result.interrupted:
        lines.append("next: `pgbatch status`, `pgbatch jobs list --queue demo.flaky`, "
                     "`pgbatch jobs show <id>`")
    return "\n".join(lines)

