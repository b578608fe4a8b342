"""A benchmark worker process: ``python -m pgbatch.bench.worker_proc --dsn … --queue …``.

It runs one ``pgbatch.Worker`` with three tasks (``noop``: async no-op, ``noop_sync``:
sync no-op on a worker thread, ``stamp``: reports ``time.time()`` at the first line of
its body) and talks to the benchmark over its standard streams, one line each:

- out ``READY <pid>`` once the worker listens and its slots are parked;
- out ``T <i> <unix time> <time of the latest notification or None>`` from the first
  line of a ``stamp`` job with kwargs ``i``;
- in ``stats`` → out ``STATS <json>`` (worker, dispatcher and settler counters, CPU);
- in ``stop`` (or end of input, or SIGTERM) → graceful stop, then ``FINAL <json>``.

Every line is written from the event loop's thread, so writes never interleave.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import sys
import threading
import time
from typing import Any

from pgbatch import App, Worker


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _snapshot(worker: Worker) -> dict[str, Any]:
    t = os.times()
    out: dict[str, Any] = {
        "pid": os.getpid(),
        "time": time.time(),
        "cpu": t.user + t.system,
        "worker": dataclasses.asdict(worker.stats),
        "dispatch": dataclasses.asdict(worker.dispatcher.stats),
    }
    if worker.settler is not None:
        out["settle"] = dataclasses.asdict(worker.settler.stats)
    if worker.listener is not None:
        out["listener_reconnects"] = worker.listener.reconnects
    return out


#: ``time.time()`` of the latest NOTIFY the worker's listener passed on (B3's split).
_last_ready: list[float | None] = [None]


def _watch_notifications(worker: Worker) -> None:
    """Record when the listener hands a notification to the worker (best effort).

    The listener is built in ``Worker.run`` with ``worker._on_ready``; wrapping that
    attribute before ``run`` starts lets ``stamp`` report how much of the latency is
    the notification's delivery and how much the claim that follows.
    """
    original = getattr(worker, "_on_ready", None)
    if original is None or not callable(original):
        return

    def on_ready(queue: str, ready: int) -> None:
        _last_ready[0] = time.time()
        original(queue, ready)

    setattr(worker, "_on_ready", on_ready)  # noqa: B010 - shadow the bound method


def build_app(dsn: str, queue: str) -> App:
    """The benchmark's app: ``noop``, ``noop_sync`` and ``stamp`` on ``queue``."""
    app = App(dsn)

    async def noop() -> None:
        return None

    def noop_sync() -> None:
        return None

    async def stamp(i: int) -> None:
        t = time.time()
        _emit(f"T {i} {t!r} {_last_ready[0]!r}")

    app.task(noop, name="noop", queue=queue)
    app.task(noop_sync, name="noop_sync", queue=queue)
    app.task(stamp, name="stamp", queue=queue)
    return app


def _read_commands(loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
    def handle(cmd: str) -> None:
        if cmd == "stats":
            _emit("STATS " + json.dumps(_snapshot(worker)))
        elif cmd == "stop":
            worker.stop()

    for raw in sys.stdin:
        cmd = raw.strip()
        if cmd:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(handle, cmd)
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(worker.stop)


async def _amain(args: argparse.Namespace) -> int:
    app = build_app(args.dsn, args.queue)
    worker = Worker(
        app, [args.queue], concurrency=args.concurrency, poll_interval=args.poll_interval,
        prefetch=args.prefetch, maintenance=not args.no_maintenance,
        install_signal_handlers=True, shutdown_grace=5.0,
    )
    _watch_notifications(worker)
    run = asyncio.create_task(worker.run())
    ready = asyncio.create_task(worker.ready.wait())
    await asyncio.wait({run, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
    if run.done():
        exc = run.exception()
        _emit(f"ERROR worker stopped before it was ready: {exc!r}")
        return 1
    _emit(f"READY {os.getpid()}")
    loop = asyncio.get_running_loop()
    threading.Thread(target=_read_commands, args=(loop, worker), daemon=True,
                     name="bench-commands").start()
    code = 0
    try:
        await run
    except Exception as exc:  # noqa: BLE001 - reported to the benchmark, then exit 1
        _emit(f"ERROR {exc!r}")
        code = 1
    _emit("FINAL " + json.dumps(_snapshot(worker)))
    await app.aclose()
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one benchmark worker until told to stop."""
    p = argparse.ArgumentParser(prog="python -m pgbatch.bench.worker_proc")
    p.add_argument("--dsn", required=True)
    p.add_argument("--queue", default="bench")
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--poll-interval", type=float, default=2.0)
    p.add_argument("--prefetch", type=int, default=None)
    p.add_argument("--no-maintenance", action="store_true")
    p.add_argument("--profile", default=None,
                   help="write cProfile stats (CPU time) of the whole process to this file")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.profile:
        import cProfile  # noqa: PLC0415

        prof = cProfile.Profile(time.process_time)  # CPU time: waiting is not a cost
        try:
            return int(prof.runcall(asyncio.run, _amain(args)))
        finally:
            prof.dump_stats(args.profile)
    return asyncio.run(_amain(args))


if __name__ == "__main__":
    raise SystemExit(main())
