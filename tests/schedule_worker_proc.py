"""A pgbatch worker whose App defines schedules in code, for the scheduler's
process tests (tests/test_schedule_code.py, tests/test_schedule_nodes.py).

Run as ``python -m tests.schedule_worker_proc --dsn DSN --schedules JSON``
from the repository root (``ScheduleWorkerProcess`` in tests/schedule_helpers.py
does). The App is ``tests/worker_proc.py``'s (tasks ``record``, ``noop``, ...
on ``--queue``); ``--schedules`` is a JSON list of objects, each the keyword
arguments of ``App.schedule`` (durations in seconds; ``task`` a task name of
the App, whose ``Task`` is passed). With ``--start-lock KEY`` the process
waits on a shared advisory lock ``KEY`` (the test holds it exclusively and
lets every process go at once) before the worker starts. Events on stdout,
one JSON object per line: ``waiting`` (about to wait on the start lock),
``up`` (the worker is ready: its schedules are registered; ``clock``: the process's
system clock then, as ``time.time()``), ``exit``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from datetime import timedelta
from typing import Any

import psycopg

from pgbatch import MaintenanceConfig, Worker
from tests.worker_proc import build_app, emit


def _schedule_args(spec: dict[str, Any], tasks: dict[str, Any]) -> dict[str, Any]:
    args = dict(spec)
    for key in ("every", "misfire_threshold", "catch_up_missed_within"):
        if isinstance(args.get(key), (int, float)):
            args[key] = timedelta(seconds=args[key])
    if isinstance(args.get("task"), str) and args["task"] in tasks:
        args["task"] = tasks[args["task"]]
    return args


async def run(args: argparse.Namespace) -> int:
    """Build the App with its schedules, wait on the start lock, run the worker."""
    app = build_app(args.dsn, args.queue, 30.0, 1.0, args.node_id or "", None, None)
    for spec in json.loads(args.schedules):
        app.schedule(**_schedule_args(spec, app.tasks))
    if args.start_lock is not None:
        with psycopg.connect(args.dsn, autocommit=True) as gate:
            emit("waiting", pid=os.getpid())
            gate.execute("select pg_advisory_lock_shared(%s)", [args.start_lock])
    worker = Worker(app, [args.queue], concurrency=1, node_id=args.node_id, poll_interval=30.0,
                    maintenance_config=MaintenanceConfig(interval=args.maintenance_interval),
                    install_signal_handlers=True)
    task = asyncio.create_task(worker.run())
    ready = asyncio.create_task(worker.ready.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if worker.ready.is_set():
        emit("up", pid=os.getpid(), node=worker.node_id, clock=time.time())
    ready.cancel()
    error: str | None = None
    try:
        await task
    except Exception as exc:  # noqa: BLE001 - reported to the test, exit code 1
        error = f"{type(exc).__name__}: {exc}"
    emit("exit", error=error)
    with contextlib.suppress(Exception):
        app.close()
    return 1 if error else 0


def main(argv: list[str] | None = None) -> None:
    """Parse the options and run."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dsn", required=True)
    p.add_argument("--queue", default="sched")
    p.add_argument("--node-id", default=None)
    p.add_argument("--schedules", default="[]")
    p.add_argument("--start-lock", type=int, default=None)
    p.add_argument("--maintenance-interval", type=float, default=0.5)
    args = p.parse_args(argv)
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
