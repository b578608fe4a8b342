"""``pgbatch queues pause|resume|notify``: queue switches."""

from __future__ import annotations

import argparse

from pgbatch.cli.common import Commands, add_command, add_group, dsn_of, pooler_of, session


def cmd_queues(args: argparse.Namespace) -> int:
    """Pause, resume, or switch NOTIFY of a queue."""
    with session(dsn_of(args), pooler_of(args)) as (client, conn):
        if args.queues_command == "pause":
            client.pause_queue(args.queue, conn=conn)
            print(f"queue {args.queue} paused")
        elif args.queues_command == "resume":
            client.resume_queue(args.queue, conn=conn)
            print(f"queue {args.queue} resumed")
        else:
            client.set_queue_notify(args.queue, args.state == "on", conn=conn)
            print(f"queue {args.queue}: notify {args.state}")
    return 0


def register(commands: Commands) -> None:
    """Add ``queues`` and its subcommands."""
    qsub = add_group(commands, "queues", "pause, resume, or switch NOTIFY of a queue",
                     "Queue switches.",
                     "examples:\n  pgbatch queues pause emails\n  pgbatch queues resume emails\n"
                     "  pgbatch queues notify bulk off")
    p = add_command(qsub, "pause", "stop claims on a queue",
                    "Stop claims on a queue (pause_queue()); enqueues still work, running jobs "
                    "finish.", handler=cmd_queues)
    p.add_argument("queue", metavar="Q", help="queue name")
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
