"""A pgbatch worker in its own process, for the worker integration tests.

Run as ``python -m tests.worker_proc --dsn DSN [options]`` (from the repository
root). It builds an ``App`` on the DSN, registers the test tasks below on one
queue, and runs ``Worker(...).run()`` with its SIGTERM/SIGINT handlers
installed. Everything the tests need to know comes out on stdout as one JSON
object per line (``tests/worker_harness.py`` reads them):

- ``{"event": "up"}``: the worker is connected, registered and listening.
- ``{"event": "idle", "claim_calls": n}``: its startup claim returned and every
  slot is parked (sent once). ``n`` is the claim count to subtract from the
  one at exit to count only the claims made after the test started acting.
- ``{"event": "start" | "end", "job", "attempt", "t", "task"}``: a task body's
  first / last line (``t`` is ``time.time()``), for tasks that emit them.
- ``{"event": "log", "level", "logger", "msg"}``: a log record of pgbatch.
- ``{"event": "exit", "stats", "dispatch", "settle", "maintenance",
  "reconnects", "idle_claim_calls", "error"}``: the worker's counters (``WorkerStats``,
  dispatcher, settler, maintenance), printed when ``run()`` returns.

The process exits 0 after a clean stop, 1 when ``run()`` raised.

Tasks (payload ``{"task": name, "kwargs": {...}}``):

- ``noop()``: nothing.
- ``sleep(seconds=0, attempts=None, emit_events=True)``: sleeps (only on the
  listed attempts when ``attempts`` is given), emitting start/end events.
- ``fail(message="boom")``: raises ``RuntimeError(message)``.
- ``record(seconds=0, attempts=None, emit_events=False)``: transactional;
  sleeps like ``sleep``, then inserts ``(job id, attempt, node)`` into
  ``worker_test_done`` inside the ack's transaction, so a row exists exactly
  when the attempt that wrote it was acked.

``--pooler MODE`` and ``--listen-dsn DSN`` build the App with ``pooler=``
and ``listen_dsn=`` (``tests/test_pooler.py``).

With ``--record-service leader|node`` the App also registers a maintenance
service of that scope (``record_run``, every maintenance interval) that
inserts ``(node, term, holds)`` into ``worker_test_service_runs``, ``holds``
being ``pgbatch.holds_lead`` for the term the node believes it holds, checked
in the same transaction.
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

from pgbatch import App, JobContext, MaintenanceConfig, MaintenanceContext, Worker

_out_lock = threading.Lock()

#: The table ``record`` writes; tests create it (see ``worker_harness.DONE_TABLE_DDL``).
DONE_TABLE = "worker_test_done"
#: The table the ``record_run`` service writes (``worker_harness.SERVICE_RUNS_DDL``).
SERVICE_RUNS_TABLE = "worker_test_service_runs"


def emit(event: str, **fields: Any) -> None:
    """Write one JSON event line on stdout (thread-safe, flushed)."""
    line = json.dumps({"event": event, **fields}, default=str)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class _EventLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken log call must not kill the worker
            msg = str(record.msg)
        emit("log", level=record.levelname, logger=record.name, msg=msg)


def build_app(dsn: str, queue: str, lease: float, backoff_base: float,
              node_id: str, pooler: str | None = None, listen_dsn: str | None = None) -> App:
    """The App of the test tasks, all on ``queue`` with the given lease and backoff."""
    app = App(dsn, pool_size=4, pooler=pooler, listen_dsn=listen_dsn)
    @app.task(name="noop", queue=queue, lease=lease, backoff_base=backoff_base)
    def noop() -> None:
        return None

    @app.task(name="sleep", queue=queue, lease=lease, backoff_base=backoff_base,
              pass_context=True)
    def sleep(ctx: JobContext, seconds: float = 0.0, attempts: list[int] | None = None,
              emit_events: bool = True) -> None:
        if emit_events:
            emit("start", job=ctx.job_id, attempt=ctx.attempt, t=time.time(), task="sleep")
        if attempts is None or ctx.attempt in attempts:
            time.sleep(seconds)
        if emit_events:
            emit("end", job=ctx.job_id, attempt=ctx.attempt, t=time.time(), task="sleep")

    @app.task(name="fail", queue=queue, lease=lease, backoff_base=backoff_base)
    def fail(message: str = "boom") -> None:
        raise RuntimeError(message)

    @app.task(name="record", queue=queue, lease=lease, backoff_base=backoff_base,
              transactional=True)
    def record(ctx: JobContext, seconds: float = 0.0, attempts: list[int] | None = None,
               emit_events: bool = False) -> None:
        if emit_events:
            emit("start", job=ctx.job_id, attempt=ctx.attempt, t=time.time(), task="record")
        if seconds and (attempts is None or ctx.attempt in attempts):
            time.sleep(seconds)
        ctx.conn.execute(
            f"insert into {DONE_TABLE} (job_id, attempt, node) values (%s, %s, %s)",
            (ctx.job_id, ctx.attempt, node_id))

    return app


def add_record_service(app: App, scope: str, interval: float) -> None:
    """Register ``record_run``: a maintenance service of ``scope`` that records each run."""
    @app.maintenance_service(name="record_run", interval=interval,
                             scope="leader" if scope == "leader" else "node")
    async def record_run(ctx: MaintenanceContext) -> None:
        async with ctx.client.pool.connection() as conn:
            await conn.execute(
                f"insert into {SERVICE_RUNS_TABLE} (node, term, holds)"
                " select %s, %s::bigint,"
                " %s::bigint is not null and pgbatch.holds_lead(%s, %s, %s::bigint)",
                (ctx.node_id, ctx.term, ctx.term, ctx.node_id, ctx.boot_id, ctx.term))


def _asdict(obj: Any) -> Any:
    return dataclasses.asdict(obj) if obj is not None else None


async def serve(args: argparse.Namespace) -> int:
    """Run the worker until it stops; emit events; return the exit code."""
    app = build_app(args.dsn, args.queue, args.lease, args.backoff_base, args.node_id,
                    args.pooler, args.listen_dsn)
    if args.record_service:
        add_record_service(app, args.record_service, args.maintenance_interval)
    worker = Worker(
        app, [args.queue], concurrency=args.concurrency, node_id=args.node_id,
        poll_interval=args.poll_interval, shutdown_grace=args.shutdown_grace,
        maintenance=not args.no_maintenance,
        maintenance_config=MaintenanceConfig(interval=args.maintenance_interval,
                                             leader_lease=args.leader_lease),
        install_signal_handlers=True,
    )
    run = asyncio.create_task(worker.run())
    idle_claim_calls: int | None = None
    ready = asyncio.create_task(worker.ready.wait())
    await asyncio.wait([run, ready], return_when=asyncio.FIRST_COMPLETED)
    if worker.ready.is_set():
        emit("up", pid=os.getpid(), node=worker.node_id)
    # "idle": the startup claim has returned and every slot is parked again
    while not run.done():
        if (worker.stats.claim_calls >= 1
                and worker.dispatcher.idle_count == worker.concurrency):
            idle_claim_calls = worker.stats.claim_calls
            emit("idle", claim_calls=idle_claim_calls)
            break
        await asyncio.wait([run], timeout=0.005)
    ready.cancel()
    error: str | None = None
    try:
        await run
    except Exception as exc:  # noqa: BLE001 - reported to the test, exit code 1
        error = f"{type(exc).__name__}: {exc}"
    emit("exit",
         stats=_asdict(worker.stats),
         dispatch=_asdict(worker.dispatcher.stats),
         settle=_asdict(worker.settler.stats if worker.settler else None),
         maintenance=_asdict(worker.maintenance.stats if worker.maintenance else None),
         reconnects=worker.listener.reconnects if worker.listener else None,
         idle_claim_calls=idle_claim_calls,
         error=error)
    with contextlib.suppress(Exception):
        app.close()
    return 1 if error else 0


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run the worker, exit with its code."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dsn", default=os.environ.get("PGBATCH_DSN"), required=False)
    p.add_argument("--queue", default="default")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--node-id", default=None)
    p.add_argument("--poll-interval", type=float, default=30.0)
    p.add_argument("--shutdown-grace", type=float, default=30.0)
    p.add_argument("--lease", type=float, default=30.0)
    p.add_argument("--backoff-base", type=float, default=1.0)
    p.add_argument("--maintenance-interval", type=float, default=1.0)
    p.add_argument("--no-maintenance", action="store_true")
    p.add_argument("--leader-lease", type=float, default=5.0)
    p.add_argument("--record-service", choices=["leader", "node"], default=None)
    p.add_argument("--pooler", default=None, help="App(pooler=...)")
    p.add_argument("--listen-dsn", default=None, help="App(listen_dsn=...)")
    args = p.parse_args(argv)
    if not args.dsn:
        p.error("--dsn (or $PGBATCH_DSN) is required")
    handler = _EventLogHandler()
    handler.setLevel(logging.INFO)
    root = logging.getLogger("pgbatch")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    code = asyncio.run(serve(args))
    sys.stdout.flush()
    # Task threads (daemons) may still be sleeping after a forced stop: do not
    # wait for the interpreter's shutdown sequence.
    os._exit(code)


if __name__ == "__main__":
    main()
