"""BP: the peers measured side by side with pgbatch, in the same run on the same server.

Run with ``pgbatch bench --peers`` (or ``--only BP``). Each peer (PGQueuer 1.6 on
asyncpg and on psycopg, Procrastinate 3.10) runs with its own public API in its own
interpreter (see :mod:`pgbatch.bench.peer_env`), one process per measurement
(:mod:`pgbatch.bench.peer_driver`), in a fresh database per library and run, with its
schema installed by its own installer. The figures are B1-B3's:

- ``enqueue_single`` / ``enqueue_batched``: 20,000 no-op jobs, one call per job / in
  calls of 1,000 (PGQueuer: ``Queries.enqueue`` with scalars / with lists;
  Procrastinate: ``defer_async`` / ``batch_defer_async``), with the client's and the
  server's CPU per job;
- ``producers8`` (PGQueuer on asyncpg): 8 producer processes enqueuing one by one,
  released together after their warm-up, like B1's many-producers figure;
- ``p1`` / ``p2``: 20,000 pre-loaded no-op jobs processed by 1 and 2 worker processes
  taking 10 at a time (PGQueuer: ``QueueManager.run(batch_size=10, mode=drain)``;
  Procrastinate: ``run_worker_async(concurrency=10, wait=False)``), from the moment the
  ready workers are released to the poll (every 20 ms) that finds the peer's job table
  empty;
- ``wake_p50`` / ``wake_p99`` / ``wake_max``: one idle listening worker, one job at a
  time after a random 50-150 ms gap, from the enqueue call's return to the job body's
  first line (B3's method; the poll interval is 10 s where the peer has one).

pgbatch's batched enqueue is measured in the same loop, right before each PGQueuer
(asyncpg) batched run, and ``BP.ratio.enqueue_batched`` is the per-run ratio of the
two: on a shared machine the ratio of interleaved runs moves much less than either
rate. Libraries alternate order between runs. B1, B2 and B3's bars use these figures
when they were measured, the anchors otherwise (each bar says which).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from pgbatch import Client, EnqueueRequest
from pgbatch.bench._cpu import ServerCpuSampler
from pgbatch.bench._harness import NOOP_PAYLOAD, Context, checkpoint, connect
from pgbatch.bench._model import Bar, Figure, ScenarioResult, percentile
from pgbatch.bench._peer_bars import LIB_NAMES, figure_key
from pgbatch.bench.b1_enqueue import WARMUP, _in_batches, _timed
from pgbatch.bench.peer_env import DRIVER, PeerEnv, dsn_url, find_peer_env

#: The job table each peer empties as it processes (the drain is over when it is empty).
_JOB_TABLES = {"pgqueuer-asyncpg": "pgqueuer", "pgqueuer-psycopg": "pgqueuer",
               "procrastinate": "procrastinate_jobs"}
POLL_EVERY = 0.02
PRODUCERS = 8
#: The peers measured with many producers too (the best one: the others are slower).
PRODUCER_LIBS = ("pgqueuer-asyncpg",)
#: The peer's client is another process, so the server can be sampled often: a backend
#: that lives through the window is counted from its first sample (from zero).
CPU_SAMPLE_INTERVAL = 0.05
def _drive(env: PeerEnv, lib: str, action: str, dsn: str, *extra: str,
           timeout: float = 900) -> dict[str, Any]:
    proc = subprocess.run([str(env.python), str(DRIVER), lib, action, "--dsn", dsn_url(dsn),
                           *extra], capture_output=True, text=True, timeout=timeout,
                          check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{lib} {action} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(lines[-1])
    return out


def _reap(proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Wait for a driver process to exit (kill it when it does not within ``timeout``),
    then close its pipes."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    finally:
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def _enqueue(env: PeerEnv, lib: str, action: str, dsn: str, n: int, batch: int,
             postmaster: int | None) -> tuple[float, float, float | None]:
    """A peer's enqueue rate, its client CPU µs per job and the server's."""
    with ServerCpuSampler(postmaster, CPU_SAMPLE_INTERVAL) as sampler:
        proc = subprocess.Popen([str(env.python), str(DRIVER), lib, action, "--dsn",
                                 dsn_url(dsn), "--n", str(n), "--batch", str(batch), "--hold"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdin is not None
        try:
            line = proc.stdout.readline()
            server = sampler.stop()  # the peer's backends are still there: held
        except BaseException:
            proc.kill()
            raise
        finally:
            proc.stdin.close()
            _reap(proc)
    if not line.startswith("{"):
        raise RuntimeError(f"{lib} {action} failed (exit {proc.returncode})")
    out = json.loads(line)
    return (n / out["seconds"], out["cpu_s"] * 1e6 / n,
            None if server is None else server * 1e6 / n)


def _producers(env: PeerEnv, lib: str, dsn: str, n: int, producers: int,
               postmaster: int | None) -> tuple[float, float | None]:
    """The rate of ``producers`` processes of ``lib`` enqueuing ``n`` jobs in all, one by
    one, released together after their warm-up; and the server's CPU µs per job."""
    each = max(1, n // producers)
    cmd = [str(env.python), str(DRIVER), lib, "enqueue-single", "--dsn", dsn_url(dsn),
           "--n", str(each), "--wait-go", "--hold"]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(producers)]
    try:
        for p in procs:
            assert p.stdout is not None
            if not p.stdout.readline().startswith("{"):
                raise RuntimeError(f"{lib} producer did not start")
        with ServerCpuSampler(postmaster, CPU_SAMPLE_INTERVAL) as sampler:
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            outs = []
            for p in procs:
                assert p.stdout is not None
                line = p.stdout.readline()
                if not line.startswith("{"):
                    raise RuntimeError(f"{lib} producer failed (exit {p.poll()})")
                outs.append(json.loads(line))
            server = sampler.stop()
    finally:
        for p in procs:
            if p.stdin is not None:
                p.stdin.close()
            _reap(p)
    total = each * producers
    window = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    return total / window, None if server is None else server * 1e6 / total


def _drain(env: PeerEnv, lib: str, dsn: str, n: int, processes: int) -> float:
    """The rate at which ``processes`` workers of ``lib`` process ``n`` pre-loaded jobs."""
    _drive(env, lib, "enqueue-batched", dsn, "--n", str(n), "--batch", "1000", "--warmup", "0")
    table = _JOB_TABLES[lib]
    with connect(dsn) as conn:
        conn.execute(f"vacuum analyze {table}")
        checkpoint(conn)
        procs = [subprocess.Popen([str(env.python), str(DRIVER), lib, "work", "--dsn",
                                   dsn_url(dsn)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True) for _ in range(processes)]
        try:
            for p in procs:
                assert p.stdout is not None
                line = p.stdout.readline()
                if not line.startswith("{"):
                    raise RuntimeError(f"{lib} worker did not start")
            t0 = time.perf_counter()
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            deadline = t0 + 900
            while True:
                row = conn.execute(f"select count(*) from {table}").fetchone()
                if row is not None and row[0] == 0:
                    elapsed = time.perf_counter() - t0
                    break
                if time.perf_counter() > deadline or all(p.poll() is not None for p in procs):
                    raise RuntimeError(f"{lib} workers left {row[0] if row else '?'} jobs")
                time.sleep(POLL_EVERY)
        finally:
            for p in procs:
                _reap(p)
    return n / elapsed


def _pgbatch_batched(dsn: str, n: int, batch: int,
                     postmaster: int | None) -> tuple[float, float, float | None]:
    client = Client.connect(dsn, min_size=1, max_size=1)
    try:
        client.enqueue_many([EnqueueRequest("warmup", NOOP_PAYLOAD)] * WARMUP)
        requests = [EnqueueRequest("bench_batch", NOOP_PAYLOAD) for _ in range(n)]
        with connect(dsn) as admin:
            checkpoint(admin)
        return _timed(postmaster, n, partial(_in_batches, client, requests, batch))
    finally:
        client.close()


def _figures(res: ScenarioResult, lib: str, n: int, batch: int,
             samples: int) -> dict[str, Figure]:
    name = LIB_NAMES[lib]
    specs = [
        ("enqueue_single", f"{name}: enqueue one by one ({n:,} jobs)", "jobs/s"),
        ("enqueue_batched", f"{name}: enqueue in batches of {batch:,} ({n:,} jobs)", "jobs/s"),
        ("enqueue_batched.client_cpu_us", f"{name}: batched enqueue, client CPU per job",
         "µs/job"),
        ("enqueue_batched.server_cpu_us", f"{name}: batched enqueue, PostgreSQL CPU per job",
         "µs/job"),
        ("p1", f"{name}: process {n:,} jobs, 1 process x 10", "jobs/s"),
        ("p2", f"{name}: process {n:,} jobs, 2 processes x 10", "jobs/s"),
        ("wake_p50", f"{name}: wake-up latency p50 ({samples} samples)", "ms"),
        ("wake_p99", f"{name}: wake-up latency p99 ({samples} samples)", "ms"),
        ("wake_max", f"{name}: wake-up latency max ({samples} samples)", "ms"),
    ]
    if lib in PRODUCER_LIBS:
        specs += [("producers8", f"{name}: enqueue one by one from {PRODUCERS} producer "
                                 f"processes ({n:,} jobs)", "jobs/s"),
                  ("producers8.server_cpu_us", f"{name}: {PRODUCERS} producers, PostgreSQL "
                                               "CPU per job", "µs/job")]
    return {what: res.add(Figure(figure_key(lib, what), "BP", label, unit))
            for what, label, unit in specs}


def _measure_lib(ctx: Context, env: PeerEnv, lib: str, figs: dict[str, Figure], r: int,
                 pgbatch_figs: Sequence[Figure], ratio: Figure) -> None:
    sz = ctx.sizes
    n, batch = sz.enqueue_jobs, sz.enqueue_batch
    postmaster = ctx.server.postmaster_pid()
    with ctx.server.fresh_db() as dsn:
        if lib == "pgqueuer-asyncpg":
            ctx.log(f"BP pgbatch batched enqueue run {r + 1}")
            ours = _pgbatch_batched(dsn, n, batch, postmaster)
            pgbatch_figs[0].runs.append(ours[0])
            pgbatch_figs[1].runs.append(ours[1])
            if ours[2] is not None:
                pgbatch_figs[2].runs.append(ours[2])
        _drive(env, lib, "install", dsn)
        ctx.log(f"BP {lib} batched enqueue run {r + 1}")
        with connect(dsn) as admin:
            checkpoint(admin)
        rate, client_cpu, server_cpu = _enqueue(env, lib, "enqueue-batched", dsn, n, batch,
                                                postmaster)
        figs["enqueue_batched"].runs.append(rate)
        figs["enqueue_batched.client_cpu_us"].runs.append(client_cpu)
        if server_cpu is not None:
            figs["enqueue_batched.server_cpu_us"].runs.append(server_cpu)
        if lib == "pgqueuer-asyncpg":
            ratio.runs.append(pgbatch_figs[0].runs[-1] / rate)
        ctx.log(f"BP {lib} single enqueue run {r + 1}")
        with connect(dsn) as admin:
            checkpoint(admin)
        figs["enqueue_single"].runs.append(
            _enqueue(env, lib, "enqueue-single", dsn, n, batch, postmaster)[0])
        if "producers8" in figs:
            ctx.log(f"BP {lib} {PRODUCERS} producers run {r + 1}")
            with connect(dsn) as admin:
                checkpoint(admin)
            rate8, server8 = _producers(env, lib, dsn, n, PRODUCERS, postmaster)
            figs["producers8"].runs.append(rate8)
            if server8 is not None:
                figs["producers8.server_cpu_us"].runs.append(server8)
    for procs in (1, 2):
        ctx.log(f"BP {lib} processing, {procs} process(es), run {r + 1}")
        with ctx.server.fresh_db() as dsn:
            _drive(env, lib, "install", dsn)
            figs[f"p{procs}"].runs.append(_drain(env, lib, dsn, sz.process_jobs, procs))
    ctx.log(f"BP {lib} wake-up latency run {r + 1}")
    with ctx.server.fresh_db() as dsn:
        _drive(env, lib, "install", dsn)
        out = _drive(env, lib, "latency", dsn, "--n", str(sz.latency_samples),
                     "--seed", str(1000 + r))
    samples: list[float] = out["samples_ms"]
    if samples:
        figs["wake_p50"].runs.append(percentile(samples, 50))
        figs["wake_p99"].runs.append(percentile(samples, 99))
        figs["wake_max"].runs.append(max(samples))
    figs["wake_max"].details.setdefault("lost_samples", []).append(out.get("lost", 0))


def run(ctx: Context, res: ScenarioResult) -> None:
    """Measure every importable peer, and pgbatch's batched enqueue interleaved."""
    env = find_peer_env(ctx.peers_python, ctx.log)
    res.details["peer_python"] = str(env.python)
    res.details["peer_versions"] = env.versions
    libs = env.libs if ctx.peers_libs is None else tuple(
        lib for lib in env.libs if lib in ctx.peers_libs)
    unknown = set(ctx.peers_libs or ()) - set(LIB_NAMES)
    if unknown:
        raise RuntimeError(f"unknown peer(s) {', '.join(sorted(unknown))}; "
                           f"choose from {', '.join(LIB_NAMES)}")
    if not libs:
        raise RuntimeError(f"no selected peer library is importable by {env.python}")
    sz = ctx.sizes
    n, batch = sz.enqueue_jobs, sz.enqueue_batch
    pgbatch_figs = (
        res.add(Figure("BP.pgbatch.enqueue_batched", "BP",
                       f"pgbatch: enqueue_many, batches of {batch:,} ({n:,} jobs), interleaved",
                       "jobs/s")),
        res.add(Figure("BP.pgbatch.enqueue_batched.client_cpu_us", "BP",
                       "pgbatch: batched enqueue, client CPU per job", "µs/job")),
        res.add(Figure("BP.pgbatch.enqueue_batched.server_cpu_us", "BP",
                       "pgbatch: batched enqueue, PostgreSQL CPU per job", "µs/job")))
    ratio = res.add(Figure("BP.ratio.enqueue_batched", "BP",
                           "pgbatch / PGQueuer (asyncpg) batched enqueue, per interleaved run",
                           "x", bars=[Bar(">=", "≥ 1.5", value=1.5)]))
    figs = {lib: _figures(res, lib, n, batch, sz.latency_samples) for lib in libs}
    for r in range(sz.runs):
        order = list(libs) if r % 2 == 0 else list(reversed(libs))
        for lib in order:
            _measure_lib(ctx, env, lib, figs[lib], r, pgbatch_figs, ratio)
    for fig in list(res.figures):
        if not fig.runs:
            res.figures.remove(fig)
    res.notes.append(
        f"Peers measured side by side with {env.python} ({json.dumps(env.versions)}); "
        "PGQueuer workers: QueueManager.run(batch_size=10); Procrastinate workers: "
        "run_worker_async(concurrency=10).")

