"""``pgbatch status``: per-queue counts (``queue_stats()``), and a replication warning.

When the server streams to standbys but commits do not wait for them
(``pgbatch._replication``), one ``warning:`` line goes to stderr after the
counts (so ``--json`` output stays parseable).
"""

from __future__ import annotations

import argparse
import sys
from typing import Final

from pgbatch._replication import replication_state
from pgbatch._types import QueueStats
from pgbatch.cli.common import (
    Commands,
    add_command,
    check_queue_name,
    dsn_of,
    pooler_of,
    session,
)
from pgbatch.cli.format import age, dumps, table

STATUS_HEADERS: Final = ("QUEUE", "PENDING", "SCHEDULED", "CLAIMED", "DONE", "DEAD",
                         "CANCELLED", "OLDEST", "PAUSED")


def _stats_row(s: QueueStats) -> list[str]:
    return [s.queue, str(s.pending), str(s.scheduled), str(s.claimed), str(s.done),
            str(s.dead), str(s.cancelled), age(s.oldest_pending_age),
            "yes" if s.paused else "no"]


def cmd_status(args: argparse.Namespace) -> int:
    """Print queue_stats() per queue."""
    queue = None if args.queue is None else check_queue_name(args.queue)
    with session(dsn_of(args), pooler_of(args)) as (client, conn):
        stats = client.queue_stats(queue, conn=conn)
        warning = replication_state(conn).warning
    if queue is not None and not stats:
        stats = [QueueStats(queue, 0, 0, 0, 0, 0, 0, None, False)]
    if args.json:
        print(dumps([s.__dict__ for s in stats]))
    elif not stats:
        print("no queues yet (enqueue a job: pgbatch enqueue QUEUE '{}')")
    else:
        print(table(STATUS_HEADERS, [_stats_row(s) for s in stats], right=range(1, 8)))
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def register(commands: Commands) -> None:
    """Add ``status``."""
    p = add_command(
        commands, "status", "per-queue counts",
        "Per queue: pending (claimable now), scheduled (run_at in the future), claimed,\n"
        "done, dead and cancelled (archived, until the retention sweep), the age of the\n"
        "oldest pending job, and whether the queue is paused. When the server streams\n"
        "to standbys but commits do not wait for them (no synchronous_standby_names,\n"
        "or synchronous_commit local/off), a warning line on stderr says that\n"
        "acknowledged jobs can be lost at a failover (docs/ha.md).",
        "examples:\n  pgbatch status\n  pgbatch status --queue emails --json",
        handler=cmd_status)
    p.add_argument("--queue", metavar="Q", help="only this queue")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
