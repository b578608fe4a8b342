"""``pgbatch demo``: the demo workload with a worker, in this process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from pgbatch.cli import roles
from pgbatch.cli.common import Commands, add_command, dsn_of, positive_int, setup_logging


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo workload with an in-process worker."""
    from pgbatch._migrate import SchemaNotMigrated, check_schema, upgrade  # noqa: PLC0415
    from pgbatch.embedded import demo  # noqa: PLC0415 - imports the worker

    setup_logging(args, default=logging.WARNING)
    dsn = dsn_of(args)
    try:
        check_schema(dsn)
    except SchemaNotMigrated:
        applied = upgrade(dsn)
        print(f"migrated the database ({', '.join(applied) or 'already at head'})")
    dsn = roles.embedded_login_dsn(args) or dsn  # the worker never runs as the owner
    result = asyncio.run(demo.run_demo(dsn, jobs=args.jobs, concurrency=args.concurrency,
                                       out=sys.stdout))
    print(demo.summary(result))
    if not (args.dsn or os.environ.get("PGBATCH_DSN")):
        from pgbatch.embedded import default_data_dir  # noqa: PLC0415

        print(f"the embedded PostgreSQL server keeps running (data in {default_data_dir()}): "
              "`pgbatch server status` shows it, `pgbatch server stop` stops it")
    if result.interrupted:
        return 130
    return 1 if result.dead else 0


def register(commands: Commands) -> None:
    """Add ``demo``."""
    p = add_command(
        commands, "demo", "run a demo workload with a worker, in this process",
        "Migrate the database if needed, enqueue demo jobs on the demo.* queues and run\n"
        "a worker in this process until they are all done, with a live progress line:\n"
        "  demo.fetch    async task; its ack enqueues a demo.process follow-up and a\n"
        "                kv_put, in one transaction (AckEffects)\n"
        "  demo.process  sync task; reads the kv value, deletes it (kv_delete)\n"
        "  demo.flaky    fails on its first attempt, succeeds on the retry\n"
        "Without --dsn or $PGBATCH_DSN it runs on the embedded server.",
        "examples:\n  pgbatch demo\n  pgbatch demo --jobs 2000 --concurrency 20",
        handler=cmd_demo)
    p.add_argument("--jobs", type=positive_int, default=500, metavar="N",
                   help="jobs to enqueue (plus one follow-up per fetch)")
    p.add_argument("--concurrency", type=positive_int, default=10, metavar="N",
                   help="worker slots")
