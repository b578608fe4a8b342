"""``pgbatch queues pause|resume|notify|drop``: queue switches, and removing an empty queue."""

from __future__ import annotations

import argparse

from pgbatch.cli.common import (
    CliError,
    Commands,
    add_command,
    add_group,
    check_queue_name,
    dsn_of,
    pooler_of,
    session,
)


def cmd_queues(args: argparse.Namespace) -> int:
    """Pause, resume, switch NOTIFY of, or drop a queue (refusing a queue pgbatch never saw)."""
    check_queue_name(args.queue)
    with session(dsn_of(args), pooler_of(args)) as (client, conn):
        known = bool(client.queue_stats(args.queue, conn=conn))
        if not known and not getattr(args, "create", False):
            hint = (" (pass --create to pause it before its first job)"
                    if args.queues_command == "pause" else "")
            raise CliError(f"no queue named {args.queue!r}: a queue exists once a job was "
                           f"enqueued to it or it was configured{hint}; `pgbatch status` "
                           "lists the queues")
        if args.queues_command == "drop":
            client.drop_queue(args.queue, conn=conn)
            print(f"queue {args.queue} dropped")
        elif args.queues_command == "pause":
            client.pause_queue(args.queue, conn=conn)
            print(f"queue {args.queue} paused" + ("" if known else " (created)"))
        elif args.queues_command == "resume":
            client.resume_queue(args.queue, conn=conn)
            print(f"queue {args.queue} resumed")
        else:
            client.set_queue_notify(args.queue, args.state == "on", conn=conn)
            print(f"queue {args.queue}: notify {args.state}")
    return 0


def register(commands: Commands) -> None:
    """Add ``queues`` and its subcommands."""
    qsub = add_group(commands, "queues", "pause, resume, switch NOTIFY of, or drop a queue",
                     "Queue switches, and removing an empty queue. A queue pgbatch has no trace "
                     "of\n(no job was ever enqueued to it, nothing configured) is refused.",
                     "examples:\n  pgbatch queues pause emails\n  pgbatch queues resume emails\n"
                     "  pgbatch queues notify bulk off\n  pgbatch queues drop old-imports")
    p = add_command(qsub, "pause", "stop claims on a queue",
                    "Stop claims on a queue (pause_queue()); enqueues still work, running jobs "
                    "finish.", handler=cmd_queues)
    p.add_argument("queue", metavar="Q", help="queue name")
    p.add_argument("--create", action="store_true",
                   help="pause a queue that has no job yet (it is created paused)")
    p = add_command(qsub, "resume", "restart claims on a queue",
                    "Restart claims on a paused queue (resume_queue()); workers are woken.",
                    handler=cmd_queues)
    p.add_argument("queue", metavar="Q", help="queue name")
    p = add_command(qsub, "notify", "switch NOTIFY on enqueue on or off",
                    "Switch the queue's NOTIFY on enqueue on or off (set_queue_notify()). Off "
                    "saves\nthe NOTIFY cost on every enqueue; workers then find its jobs by "
                    "polling.", handler=cmd_queues)
    p.add_argument("queue", metavar="Q", help="queue name")
    p.add_argument("state", choices=("on", "off"), metavar="on|off", help="on or off")
    p = add_command(qsub, "drop", "remove an empty queue",
                    "Remove a queue that holds no pending, scheduled or claimed job "
                    "(drop_queue()):\nits switches and its counts of archived jobs, so it "
                    "leaves `pgbatch status`.\nArchived jobs stay readable until swept. A "
                    "later enqueue creates the queue again.", handler=cmd_queues)
    p.add_argument("queue", metavar="Q", help="queue name")
