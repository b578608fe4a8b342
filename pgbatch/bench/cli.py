"""``pgbatch bench``: run the benchmark scenarios (B0-B9) and report their figures.

    pgbatch bench                 # full run: a few minutes + the 10-minute B5 soak
    pgbatch bench --soak-minutes 2
    pgbatch bench --quick         # under a minute (CI)
    pgbatch bench --only B2,B3 --runs 5
    pgbatch bench --dsn postgresql://user@host/postgres
    pgbatch bench --peers         # also measure PGQueuer and Procrastinate side by side
    pgbatch bench --peers --only BP,B1

``--peers`` adds scenario BP (run first): the peers measured with their own APIs in the
same run on the same server, in a virtualenv of their own (``pgbatch.bench.peer_env``);
the B1-B3 bars then compare with those figures instead of the anchors.

Prints a markdown table on stdout (progress goes to stderr) and writes the JSON and
markdown reports to ``--output PATH`` (the markdown next to it; ``-`` writes no file).
Without ``--output`` they go to the user's data directory, never to the current
directory: ``<data dir>/pgbatch/bench-results/latest.json`` / ``.md`` for a full run of
every scenario, ``quick.*`` for ``--quick`` and ``partial.*`` for ``--only`` (so a quick
or partial run never replaces a full one), where ``<data dir>`` is
``platformdirs.user_data_dir()`` (``$XDG_DATA_HOME``, by default ``~/.local/share``, on
Linux). The path written is printed on stderr.

Exit status: 0 when every selected scenario produced its figures, 1 when one failed to
run, 2 on bad arguments, 3 with ``--strict`` when a bar was missed.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import platformdirs

import pgbatch
from pgbatch.bench import (
    b0_ceilings,
    b1_enqueue,
    b2_throughput,
    b3_latency,
    b4_growth,
    b5_soak,
    b6_batch,
    b7_schedules,
    b8_fanout,
    b9_web,
    bp_peers,
)
from pgbatch.bench._harness import BenchServer, Context, Sizes, loadavg, machine_info
from pgbatch.bench._model import NOT_IMPLEMENTED, ScenarioResult
from pgbatch.bench.report import to_json, to_markdown, write

Runner = Callable[[Context, ScenarioResult], None]

SCENARIOS: dict[str, tuple[str, Runner]] = {
    "BP": ("the peers side by side (PGQueuer, Procrastinate; --peers)", bp_peers.run),
    "B0": ("machine ceilings (pgbench) and the SQL core's ceiling", b0_ceilings.run),
    "B1": ("enqueue from one client", b1_enqueue.run),
    "B2": ("process pre-loaded no-op jobs", b2_throughput.run),
    "B3": ("wake-up latency", b3_latency.run),
    "B4": ("claim cost as the store grows", b4_growth.run),
    "B5": ("soak with continuous enqueue", b5_soak.run),
    "B6": ("batch engine: chunk step, SQL reader -> table writer", b6_batch.run),
    "B7": ("scheduler: cron schedules due at once, 4 processes booting", b7_schedules.run),
    "B8": ("wakeup fan-out", b8_fanout.run),
    "B9": ("web: the jobs list with a large archive", b9_web.run),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pgbatch bench``."""
    p = argparse.ArgumentParser(
        prog="pgbatch bench",
        description="Run pgbatch's benchmark: B0 ceilings, B1 enqueue, "
                    "B2 throughput, B3 wake-up latency, B4 store growth, B5 soak, "
                    "B6 batch chunk step, B7 scheduler, B8 wakeup fan-out, "
                    "B9 web jobs list. Prints a markdown "
                    "table and writes a JSON and a markdown report (see --output).")
    p.add_argument("--quick", action="store_true",
                   help="small sizes, 1 run per figure, 15 s soak: under a minute")
    p.add_argument("--runs", type=int, default=None,
                   help="runs per figure (default 3; 1 with --quick)")
    p.add_argument("--only", default=None,
                   help="comma-separated scenarios to run, e.g. B2,B3 (default: all)")
    p.add_argument("--dsn", default=None,
                   help="use this server instead of starting an embedded one (its role "
                        "creates and drops databases named pgbatch_bench_*)")
    p.add_argument("--output", default=None, metavar="PATH",
                   help="JSON report path (markdown next to it); '-' writes no file; default: "
                        f"{default_output_dir()}/latest.json (quick.json with --quick, "
                        "partial.json with --only), never the current directory")
    p.add_argument("--soak-minutes", type=float, default=None,
                   help="B5 duration (default 10; 0.25 with --quick)")
    p.add_argument("--soak-rate", type=float, default=None,
                   help="B5 producer rate in jobs/s (default 90%% of the B2 1-process rate)")
    p.add_argument("--pgbench-seconds", type=float, default=None,
                   help="B0 duration of each timed pgbench run (default 3; 1 with --quick)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every job count (tests use a small scale)")
    p.add_argument("--sync-tasks", action="store_true",
                   help="B2 with sync task functions (worker threads) instead of async ones")
    p.add_argument("--peers", action="store_true",
                   help="also run BP: PGQueuer 1.6 (asyncpg, psycopg) and Procrastinate 3.10 "
                        "measured side by side (their own virtualenv, created on first use "
                        "under the user cache directory); B1-B3 bars then use their figures")
    p.add_argument("--peers-python", default=None, metavar="PATH",
                   help="the Python that can import the peers (default: this one with the "
                        "bench-peers extra, else the benchmark's own peers virtualenv)")
    p.add_argument("--peers-libs", default=None, metavar="LIBS",
                   help="comma-separated peers BP measures (default: every importable one of "
                        "pgqueuer-asyncpg, pgqueuer-psycopg, procrastinate)")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 3 when a bar is missed")
    return p


def _selected(only: str | None, peers: bool = False) -> tuple[list[str], list[str]]:
    if not only:
        return [s for s in SCENARIOS if s != "BP" or peers], []
    wanted = [s.strip().upper() for s in only.split(",") if s.strip()] + (["BP"] * peers)
    unknown = [s for s in wanted if s not in SCENARIOS and s not in NOT_IMPLEMENTED]
    if unknown:
        raise SystemExit(f"pgbatch bench: unknown scenario(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(SCENARIOS)}")
    return [s for s in SCENARIOS if s in wanted], [s for s in wanted if s in NOT_IMPLEMENTED]


def default_output_dir() -> Path:
    """Where reports go without ``--output``: ``<user data dir>/pgbatch/bench-results``."""
    return Path(platformdirs.user_data_dir("pgbatch")) / "bench-results"


def output_path(args: argparse.Namespace) -> Path | None:
    """The JSON report's path for these arguments (None for ``--output -``)."""
    if args.output == "-":
        return None
    if args.output:
        return Path(args.output)
    name = "quick" if args.quick else ("partial" if args.only else "latest")
    return default_output_dir() / f"{name}.json"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see the module docstring for arguments and exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        chosen, unimplemented = _selected(args.only, args.peers)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.runs is not None and args.runs < 1:
        print("pgbatch bench: --runs must be at least 1", file=sys.stderr)
        return 2
    sizes = Sizes.build(quick=args.quick, runs=args.runs, scale=args.scale,
                        soak_minutes=args.soak_minutes, pgbench_seconds=args.pgbench_seconds,
                        soak_rate=args.soak_rate, sync_tasks=args.sync_tasks)
    for sid in unimplemented:
        print(f"pgbatch bench: {sid} is not yet implemented; skipped", file=sys.stderr)

    server = BenchServer(dsn=args.dsn)
    started = time.time()
    load0 = loadavg()
    results: list[ScenarioResult] = []
    machine: dict[str, Any] = {}
    try:
        server.start()
        machine = machine_info(server)
        ctx = Context(server=server, sizes=sizes, workdir=server.workdir,
                      peers_python=args.peers_python,
                      peers_libs=tuple(x.strip() for x in args.peers_libs.split(",") if x.strip())
                      if args.peers_libs else None)
        ctx.log(f"server ready ({machine['server_settings'].get('server_version', '?')}); "
                f"scenarios {', '.join(chosen)}; {sizes.runs} run(s) per figure")
        for sid in chosen:
            title, runner = SCENARIOS[sid]
            res = ScenarioResult(sid, title, loadavg_start=loadavg())
            t0 = time.perf_counter()
            try:
                runner(ctx, res)
            except Exception:  # noqa: BLE001 - reported, and the other scenarios still run
                res.status = "error"
                res.error = traceback.format_exc()
                ctx.log(f"{sid} failed:\n{res.error}")
            res.seconds = time.perf_counter() - t0
            ctx.log(f"{sid} done in {res.seconds:.1f} s")
            results.append(res)
            ctx.results[sid] = res
    finally:
        server.stop()
    doc = to_json({
        "mode": "quick" if args.quick else "full",
        "pgbatch_version": pgbatch.__version__,
        "runs": sizes.runs,
        "args": {k: v for k, v in vars(args).items() if k != "dsn"} | {
            "dsn": "given" if args.dsn else None},
        "sizes": dict(vars(sizes)),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "loadavg": {"start": load0, "end": loadavg()},
        "machine": machine,
    }, results)
    markdown = to_markdown(doc)
    sys.stdout.write(markdown)
    sys.stdout.flush()
    path = output_path(args)
    if path is not None:
        md = write(doc, markdown, path)
        print(f"[bench] wrote {path} and {md}", file=sys.stderr)
    if any(r.status != "ok" for r in results):
        return 1
    if args.strict and doc["summary"]["failed"]:
        return 3
    return 0
