"""The peers' side of ``pgbatch bench --peers``: one measurement with one peer's own API.

Run by the benchmark in the peers' virtualenv (never imported by pgbatch: it imports
only the standard library and the peer's package), one process per measurement::

    python peer_driver.py LIB ACTION --dsn URL [--n N] [--batch B] [--seed S]

LIB is ``pgqueuer-asyncpg``, ``pgqueuer-psycopg`` or ``procrastinate``. ACTION:

- ``install``: the peer's schema, installed by the peer's own installer.
- ``enqueue-single``: ``--n`` no-op jobs, one call (one transaction) per job.
- ``enqueue-batched``: ``--n`` no-op jobs in calls of ``--batch`` jobs.
  (Both report ``start`` and ``end``, wall-clock times of the window; with
  ``--wait-go`` they print a READY line after the warm-up and wait for a line on
  stdin, so that many producers start together.)
- ``work``: print ``READY``, wait for a line on stdin, then process jobs until the queue
  is empty (the peer's drain mode) with 10 at a time, and exit.
- ``latency``: start a listening worker (``latency-worker``, a child process), enqueue
  ``--n`` jobs one at a time after random 50-150 ms gaps (seeded), each after the
  previous one started, and report from the enqueue call's return to the first line of
  the job body, in ms.

Every action prints one JSON object on its last stdout line: ``seconds`` (the measured
window, where it has one), ``cpu_s`` (this process's CPU over that window) and, for
``latency``, ``samples_ms``. With ``--hold`` it then waits for the end of its stdin
before it closes its connections and exits, so that the benchmark can read the CPU of
their server processes after the window.
"""

# The peers are imported where they are used: only the measured one need be installed.
# ruff: noqa: PLC0415
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from datetime import timedelta
from typing import Any

QUEUE = "bench"
TASK = "noop"
#: The payload of a no-op job (the same bytes pgbatch's B1 enqueues).
PAYLOAD = {"task": "noop", "kwargs": {}}
WARMUP = 20
LATENCY_WARMUP = 5
LATENCY_TIMEOUT = 15.0
CONCURRENCY = 10


def _emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------- PGQueuer


async def _pgq_driver(lib: str, dsn: str) -> Any:
    if lib == "pgqueuer-asyncpg":
        import asyncpg  # type: ignore[import-not-found,unused-ignore]
        from pgqueuer.db import AsyncpgDriver  # type: ignore[import-not-found,unused-ignore]

        return AsyncpgDriver(await asyncpg.connect(dsn))
    import psycopg
    from pgqueuer.db import PsycopgDriver  # type: ignore[import-not-found,unused-ignore]

    return PsycopgDriver(await psycopg.AsyncConnection.connect(dsn, autocommit=True))


async def _pgq(lib: str, args: argparse.Namespace) -> dict[str, Any]:
    from pgqueuer.queries import Queries  # type: ignore[import-not-found,unused-ignore]

    driver = await _pgq_driver(lib, args.dsn)
    queries = Queries(driver)
    body = json.dumps(PAYLOAD).encode()
    if args.action == "install":
        await queries.install()
        return {}
    if args.action in ("enqueue-single", "enqueue-batched"):
        for _ in range(args.warmup):
            await queries.enqueue("warmup", body, 0)
        await _wait_go(args)
        w0, c0, t0 = time.time(), time.process_time(), time.perf_counter()
        if args.action == "enqueue-single":
            for _ in range(args.n):
                await queries.enqueue(TASK, body, 0)
        else:
            for i in range(0, args.n, args.batch):
                k = min(args.batch, args.n - i)
                await queries.enqueue([TASK] * k, [body] * k, [0] * k)
        return {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                "start": w0, "end": time.time()}
    if args.action in ("work", "latency-worker"):
        from pgqueuer import QueueManager  # type: ignore[import-not-found,unused-ignore]
        from pgqueuer.types import QueueExecutionMode  # type: ignore[import-not-found,unused-ignore]

        qm = QueueManager(queries)
        latency = args.action == "latency-worker"

        @qm.entrypoint(TASK)  # type: ignore[untyped-decorator,unused-ignore]
        async def noop(job: Any) -> None:
            if latency:
                stamp = time.time()
                i = json.loads(job.payload)["kwargs"]["i"]
                sys.stdout.write(f"STAMP {i} {stamp}\n")
                sys.stdout.flush()

        if latency:
            asyncio.get_running_loop().call_later(0.3, lambda: _emit({"ready": True}))
            await qm.run(batch_size=CONCURRENCY, dequeue_timeout=_td(10.0))
            return {}
        _emit({"ready": True})
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        c0, t0 = time.process_time(), time.perf_counter()
        await qm.run(batch_size=CONCURRENCY, mode=QueueExecutionMode.drain)
        return {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    if args.action == "latency":
        async def enqueue(i: int) -> None:
            await queries.enqueue(TASK, json.dumps({"task": "stamp", "kwargs": {"i": i}}).encode(),
                                  0)
        return await _latency(args, enqueue)
    raise SystemExit(f"unknown action {args.action}")


def _td(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


# ---------------------------------------------------------------------- Procrastinate


async def _procrastinate(args: argparse.Namespace) -> dict[str, Any]:
    import procrastinate  # type: ignore[import-not-found,unused-ignore]

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=args.dsn))
    latency = args.action == "latency-worker"

    @app.task(name=TASK, queue=QUEUE)  # type: ignore[untyped-decorator,unused-ignore]
    async def noop(**kwargs: Any) -> None:
        if latency:
            stamp = time.time()
            sys.stdout.write(f"STAMP {kwargs['i']} {stamp}\n")
            sys.stdout.flush()

    async with app.open_async():
        if args.action == "install":
            await app.schema_manager.apply_schema_async()
            return {}
        if args.action in ("enqueue-single", "enqueue-batched"):
            for _ in range(args.warmup):
                await noop.defer_async()
            await _wait_go(args)
            w0, c0, t0 = time.time(), time.process_time(), time.perf_counter()
            if args.action == "enqueue-single":
                for _ in range(args.n):
                    await noop.defer_async()
            else:
                for i in range(0, args.n, args.batch):
                    await noop.batch_defer_async(*([{}] * min(args.batch, args.n - i)))
            return {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                    "start": w0, "end": time.time()}
        if args.action == "work":
            _emit({"ready": True})
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            c0, t0 = time.process_time(), time.perf_counter()
            await app.run_worker_async(queues=[QUEUE], concurrency=CONCURRENCY, wait=False,
                                       install_signal_handlers=False, delete_jobs="always")
            return {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
        if args.action == "latency-worker":
            asyncio.get_running_loop().call_later(0.3, lambda: _emit({"ready": True}))
            await app.run_worker_async(queues=[QUEUE], concurrency=CONCURRENCY, wait=True,
                                       fetch_job_polling_interval=10.0,
                                       install_signal_handlers=False, delete_jobs="always")
            return {}
        if args.action == "latency":
            async def enqueue(i: int) -> None:
                await noop.defer_async(i=i)
            return await _latency(args, enqueue)
    raise SystemExit(f"unknown action {args.action}")


async def _wait_go(args: argparse.Namespace) -> None:
    """With ``--wait-go``: say READY (a JSON line) and wait for a line on stdin."""
    if args.wait_go:
        _emit({"ready": True})
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


# ---------------------------------------------------------------------- wake-up latency


async def _latency(args: argparse.Namespace, enqueue: Any) -> dict[str, Any]:
    """Enqueue one job at a time; the ms from the call's return to the body's first line."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, args.lib, "latency-worker", "--dsn", args.dsn,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    rng = random.Random(args.seed)
    samples: list[float] = []
    lost = 0
    try:
        while True:  # the worker says when it listens
            line = await asyncio.wait_for(child.stdout.readline(), 60)
            if not line:
                raise RuntimeError("the latency worker exited before it was ready")
            if line.startswith(b"{"):
                break
        for i in range(-LATENCY_WARMUP, args.n):
            await asyncio.sleep(rng.uniform(0.05, 0.15))
            await enqueue(i)
            t_commit = time.time()
            deadline = time.monotonic() + LATENCY_TIMEOUT
            while True:
                try:
                    line = await asyncio.wait_for(
                        child.stdout.readline(), max(deadline - time.monotonic(), 0.001))
                except TimeoutError:
                    lost += i >= 0
                    break
                parts = line.split()
                if len(parts) == 3 and parts[0] == b"STAMP" and int(parts[1]) == i:
                    if i >= 0:
                        samples.append((float(parts[2]) - t_commit) * 1000)
                    break
                if not line:
                    raise RuntimeError("the latency worker exited")
    finally:
        child.kill()
        await child.wait()
    return {"samples_ms": samples, "lost": lost}


def main() -> None:
    """Parse the arguments, run one action, print its JSON line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("lib", choices=["pgqueuer-asyncpg", "pgqueuer-psycopg", "procrastinate"])
    p.add_argument("action")
    p.add_argument("--dsn", required=True)
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=1_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--wait-go", action="store_true",
                   help="enqueue actions: after the warm-up, print a READY line and wait for "
                        "a line on stdin (many producers start together)")
    p.add_argument("--hold", action="store_true",
                   help="after the JSON line, wait for the end of stdin before exiting")
    p.add_argument("--warmup", type=int, default=WARMUP,
                   help="jobs enqueued before the measured window (enqueue actions)")
    args = p.parse_args()
    if args.lib == "procrastinate":
        out = asyncio.run(_procrastinate(args))
    else:
        out = asyncio.run(_pgq(args.lib, args))
    _emit(out)
    if args.hold:
        sys.stdin.read()  # keep the connections (their backends) until told to go


if __name__ == "__main__":
    main()
