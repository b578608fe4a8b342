"""A pgbatch worker that runs batch jobs in its own process, for the batch crash tests.

Run as ``python -m tests.batch_worker_proc --dsn DSN [options]`` from the
repository root (``tests/batch_helpers.BatchWorkerProcess`` does). It defines
job ``etl`` (see ``build_job``): chunk steps that copy ``public.src(id)`` into
the same-database sink ``public.out(step, item_id)`` (an upsert counting
``writes``: more than 1 is a duplicate) and into the external sink
``public.ext(step, item_id)``, written on a separate autocommit connection
(duplicates are rows). The App uses ``use_batch`` (executor + recovery
service) and runs ``Worker(...).run()`` with its signal handlers. Events on
stdout, one JSON object per line, as ``tests/worker_proc.py``: ``up``,
``fault`` (a fault point fired its action), ``exit``.

Options: ``--steps N`` chunk steps ``s1``..``sN``; ``--policy`` ResumeForward,
RestartAll, RestartFrom:<n>, Fail; ``--max-recoveries``; ``--on-shutdown``;
``--chunk-size``; ``--gate NAME`` adds an approval gate after ``s1``; job
parameters ``part`` and ``parts`` make it read only the ids with
``id % parts = part``; ``--item-delay`` seconds the processor sleeps per item;
``--fault POINT[:K]`` SIGKILLs the process at fault point POINT (for
``after_read``, when the K-th item since the step opened was read; for the
commit points, at chunk sequence K); ``--kill-on-item V`` SIGKILLs it when the
processor sees item V (a crash loop); ``--lease``, ``--node-id``; ``--pushdown 1``
makes each step a ``SqlReader`` -> ``TableWriter`` copy of ``src`` into ``out``
(no processor, no ``ext``), which runs in the server (its chunk loop in the
database unless ``--server-loop 0``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql

from pgbatch import App, MaintenanceConfig, Worker
from pgbatch.batch import (
    ChunkStep,
    ExecutionContext,
    Fail,
    Gate,
    Job,
    RecoveryPolicy,
    RestartAll,
    RestartFrom,
    ResumeForward,
    SqlReader,
    TableWriter,
    set_fault_hook,
    step_context,
    use_batch,
)

_out_lock = threading.Lock()

#: DDL of the tables the job reads and writes (tests run it as the superuser).
TABLES_DDL = (
    "create table public.src (id int primary key);"
    " create table public.out (step text, item_id int, execution_id bigint, writes int not null"
    " default 1, primary key (step, item_id));"
    " create table public.ext (step text, item_id int, execution_id bigint)"
)


def emit(event: str, **fields: Any) -> None:
    """One JSON event line on stdout."""
    line = json.dumps({"event": event, **fields}, default=str)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class SourceReader:
    """Keyset reader of ``public.src`` on its own connection (cursor: ``last_id``)."""

    def __init__(self, dsn: str, page: int) -> None:
        self.dsn = dsn
        self.page = page
        self.last = 0
        self.buffer: list[int] = []
        self.part: int | None = None
        self.parts = 1
        self.conn: psycopg.Connection[Any] | None = None

    def open(self, context: ExecutionContext) -> None:
        self.last = int(context.get("last_id", 0))
        self.buffer = []
        params = step_context().params
        self.part = params.get("part")
        self.parts = int(params.get("parts", 1))
        self.conn = psycopg.connect(self.dsn, autocommit=True)

    def read(self) -> int | None:
        if not self.buffer:
            assert self.conn is not None
            rows = self._query()
            self.buffer = [r[0] for r in rows]
            if not self.buffer:
                return None
        item = self.buffer.pop(0)
        self.last = item
        return item

    def _query(self) -> list[tuple[Any, ...]]:
        query = ("select id from public.src where id > %s and (%s::int is null or id %% %s = %s)"
                 " order by id limit %s")
        args = [self.last, self.part, self.parts, self.part, self.page]
        for attempt in range(100):
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = psycopg.connect(self.dsn, autocommit=True)
                return self.conn.execute(query, args).fetchall()
            except psycopg.OperationalError:  # the server restarted: reconnect
                if attempt == 99:
                    raise
                self.conn = None
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def update(self, context: ExecutionContext) -> None:
        context["last_id"] = self.last

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class SinkWriter:
    """Writes ``out`` in the chunk's transaction and ``ext`` on its own connection.

    ``fold``: ``out``'s rows go as ``chunk_statement`` (one statement with the
    chunk's commit, as ``TableWriter(method="unnest")`` does), ``ext`` first.
    """

    def __init__(self, dsn: str, step: str, fold: bool = False) -> None:
        self.dsn = dsn
        self.step = step
        self.fold = fold
        self.ext: psycopg.Connection[Any] | None = None

    def open(self, context: ExecutionContext) -> None:
        self.ext = psycopg.connect(self.dsn, autocommit=True)

    def _write_ext(self, items: Sequence[int]) -> list[tuple[str, int, int]]:
        execution_id = step_context().execution_id
        rows = [(self.step, i, execution_id) for i in items]
        assert self.ext is not None
        with self.ext.cursor() as cur:
            cur.executemany("insert into public.ext (step, item_id, execution_id)"
                            " values (%s, %s, %s)", rows)
        return rows

    def chunk_statement(self, conn: psycopg.Connection[Any], items: Sequence[int]
                        ) -> tuple[sql.Composed, list[Any]] | None:
        if not self.fold:
            return None
        self._write_ext(items)
        query = sql.SQL("insert into public.out (step, item_id, execution_id)"
                        " select {}, i, {} from unnest({}::int[]) i on conflict (step, item_id)"
                        " do update set writes = out.writes + 1,"
                        " execution_id = excluded.execution_id").format(
                            sql.Placeholder(), sql.Placeholder(), sql.Placeholder())
        return query, [self.step, step_context().execution_id, list(items)]

    def write(self, conn: psycopg.Connection[Any], items: Sequence[int]) -> None:
        rows = self._write_ext(items)
        with conn.cursor() as cur:
            cur.executemany("insert into public.out (step, item_id, execution_id)"
                            " values (%s, %s, %s) on conflict (step, item_id)"
                            " do update set writes = out.writes + 1,"
                            " execution_id = excluded.execution_id", rows)

    def update(self, context: ExecutionContext) -> None:
        return None

    def close(self) -> None:
        if self.ext is not None:
            self.ext.close()
            self.ext = None


def parse_policy(spec: str) -> RecoveryPolicy:
    """``ResumeForward``, ``RestartAll``, ``RestartFrom:<n>`` or ``Fail``."""
    if spec.startswith("RestartFrom:"):
        return RestartFrom(int(spec.split(":", 1)[1]))
    return {"ResumeForward": ResumeForward(), "RestartAll": RestartAll(), "Fail": Fail()}[spec]


def build_job(args: argparse.Namespace) -> Job:
    """Job ``etl``: ``args.steps`` chunk steps copying src into out and ext."""
    dsn = args.dsn

    def process(item: int) -> int:
        if args.kill_on_item is not None and item == args.kill_on_item:
            emit("fault", point="kill_on_item", item=item)
            os.kill(os.getpid(), signal.SIGKILL)
        if args.item_delay:
            time.sleep(args.item_delay)
        return item

    def step(name: str) -> ChunkStep:
        if getattr(args, "pushdown", 0):
            # SqlReader -> TableWriter, no processor, same database: run in the server
            # (the reader's DSN reaches no server: the step cannot read in Python)
            return ChunkStep(name, reader=SqlReader(
                "host=/nonexistent/pgbatch dbname=nowhere",
                "select %s::text as step, id as item_id from public.src", "item_id",
                params=[name], page_size=args.chunk_size, name="src", same_database=True),
                writer=TableWriter("public.out", ["step", "item_id"], method="insert",
                                   on_conflict="on conflict (step, item_id)"
                                               " do update set writes = out.writes + 1"),
                chunk_size=args.chunk_size)
        return ChunkStep(name, reader=lambda: SourceReader(dsn, args.chunk_size),
                         writer=lambda: SinkWriter(dsn, name, bool(args.fold)),
                         processor=process,
                         chunk_size=args.chunk_size)

    steps: list[ChunkStep | Gate] = [step(f"s{i}") for i in range(1, args.steps + 1)]
    if getattr(args, "gate", None):
        steps.insert(1, Gate(args.gate))
    return Job("etl", steps,
               recovery_policy=parse_policy(args.policy), max_recoveries=args.max_recoveries,
               on_shutdown=args.on_shutdown)


def install_fault(spec: str | None) -> None:
    """SIGKILL this process at ``POINT[:K]``."""
    if not spec:
        return
    point, _, k = spec.partition(":")
    at = int(k) if k else None

    def hook(name: str, info: dict[str, Any]) -> None:
        if name != point:
            return
        n = info.get("k", info.get("seq"))
        if at is None or n == at:
            emit("fault", point=name, info=info)
            os.kill(os.getpid(), signal.SIGKILL)

    set_fault_hook(hook)


async def serve(args: argparse.Namespace) -> int:
    """Run the worker until it stops."""
    app = App(args.dsn, pool_size=4)
    use_batch(app, [build_job(args)], lease=timedelta(seconds=args.lease),
              recovery_interval=args.recovery_interval, server_loop=bool(args.server_loop))
    install_fault(args.fault)
    worker = Worker(app, concurrency=args.concurrency, node_id=args.node_id, poll_interval=0.5,
                    shutdown_grace=args.shutdown_grace,
                    maintenance_config=MaintenanceConfig(interval=args.recovery_interval,
                                                         leader_lease=2.0),
                    install_signal_handlers=True)
    run = asyncio.create_task(worker.run())
    ready = asyncio.create_task(worker.ready.wait())
    await asyncio.wait([run, ready], return_when=asyncio.FIRST_COMPLETED)
    if worker.ready.is_set():
        emit("up", pid=os.getpid(), node=worker.node_id)
    ready.cancel()
    error: str | None = None
    try:
        await run
    except Exception as exc:  # noqa: BLE001 - reported to the test, exit code 1
        error = f"{type(exc).__name__}: {exc}"
    emit("exit", stats=dataclasses.asdict(worker.stats), error=error)
    with contextlib.suppress(Exception):
        app.close()
    return 1 if error else 0


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run the worker, exit with its code."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dsn", required=True)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--policy", default="ResumeForward")
    p.add_argument("--max-recoveries", type=int, default=5)
    p.add_argument("--on-shutdown", default="handoff")
    p.add_argument("--chunk-size", type=int, default=5)
    p.add_argument("--item-delay", type=float, default=0.0)
    p.add_argument("--fault", default=None)
    p.add_argument("--kill-on-item", type=int, default=None)
    p.add_argument("--lease", type=float, default=30.0)
    p.add_argument("--fold", type=int, default=0,
                   help="1: the sink's same-database rows go in the chunk's commit statement")
    p.add_argument("--pushdown", type=int, default=0,
                   help="1: each step is a SqlReader -> TableWriter copy of src into out,"
                        " run in the server")
    p.add_argument("--server-loop", type=int, default=1,
                   help="0: a step run in the server sends each chunk from the worker"
                        " (pipelined) instead of the loop in the database")
    p.add_argument("--gate", default=None, help="a Gate step of this name after s1")
    p.add_argument("--node-id", default=None)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--shutdown-grace", type=float, default=30.0)
    p.add_argument("--recovery-interval", type=float, default=0.5)
    args = p.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    code = asyncio.run(serve(args))
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    # run the module's own copy, so the job's functions are named tests.batch_worker_proc.*
    # (the fingerprint the tests register), not __main__.*
    from tests.batch_worker_proc import main as _main

    _main()
