"""``pgbatch enqueue``: enqueue one job and print its id."""

from __future__ import annotations

import argparse
import difflib
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from pgbatch import _limits
from pgbatch._registry import TaskInfo
from pgbatch._types import Json
from pgbatch.cli.common import (
    CliError,
    Commands,
    add_command,
    dsn_of,
    integer,
    job_id,
    json_object,
    json_value,
    pooler_of,
    positive_int,
    seconds,
    session,
    timestamp,
)


def cmd_enqueue(args: argparse.Namespace) -> int:
    """Enqueue one job and print its id."""
    payload: Json
    if args.task is not None:
        if args.payload is not None:
            raise CliError("give either PAYLOAD_JSON or --task/--kwargs, not both", code=2)
        payload = {"task": args.task, "kwargs": args.kwargs or {}}
    elif args.kwargs is not None:
        raise CliError("--kwargs needs --task NAME", code=2)
    else:
        payload = {} if args.payload is None else args.payload
    run_at: datetime | None = args.run_at
    if args.delay is not None:
        run_at = datetime.now(UTC) + timedelta(seconds=args.delay)
    with session(dsn_of(args), pooler_of(args)) as (client, conn):
        if args.task is not None:
            _warn_unregistered(client.list_tasks(conn=conn), args.task)
            new_id = client.enqueue_task(
                args.task, args.kwargs, queue=args.queue, run_at=run_at, priority=args.priority,
                dedup_key=args.dedup_key, max_attempts=args.max_attempts, id=args.id, conn=conn)
        else:
            options: dict[str, Any] = {"run_at": run_at, "priority": args.priority or 0,
                                       "dedup_key": args.dedup_key, "id": args.id}
            if args.max_attempts is not None:
                options["max_attempts"] = args.max_attempts
            new_id = client.enqueue(args.queue, payload, conn=conn, **options)
    print(new_id)
    return 0


def _warn_unregistered(tasks: list[TaskInfo], name: str) -> None:
    """Say on stderr when workers registered tasks, but not this one (with close names)."""
    names = [t.name for t in tasks]
    if not names or name in names:
        return
    tail = name.rsplit(".", 1)[-1]
    close = [n for n in names if n.rsplit(".", 1)[-1] == tail] or \
        difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {' or '.join(repr(n) for n in close)}?" if close else ""
    print(f"warning: no worker has registered a task named {name!r}{hint} (task names are "
          "module.function); a worker without it dead-letters the job", file=sys.stderr)


def register(commands: Commands) -> None:
    """Add ``enqueue``."""
    p = add_command(
        commands, "enqueue", "enqueue a job and print its id",
        "Enqueue one job and print its id. The payload is any JSON value (default {});\n"
        "--task NAME --kwargs JSON builds the payload App tasks use:\n"
        '{"task": NAME, "kwargs": {...}}, and takes the task\'s priority and max_attempts\n'
        "from the task registry (pgbatch.enqueue_task; workers record their tasks'\n"
        "options there when they start) unless --priority/--max-attempts are given.\n"
        "NAME is the task's full name, module.function.",
        "examples:\n"
        "  pgbatch enqueue emails '{\"to\": \"a@example.com\"}'\n"
        "  pgbatch enqueue emails --task myproject.tasks.send_email \\\n"
        "      --kwargs '{\"to\": \"a@example.com\", \"subject\": \"hi\"}'\n"
        "  pgbatch enqueue reports '{}' --delay 3600 --dedup-key daily-report",
        handler=cmd_enqueue)
    p.add_argument("queue", metavar="QUEUE",
                   help=f"queue name (1 to {_limits.MAX_QUEUE_NAME_LENGTH} characters)")
    p.add_argument("payload", metavar="PAYLOAD_JSON", nargs="?", type=json_value,
                   help="the job's payload, a JSON value (default: {})")
    when_group = p.add_mutually_exclusive_group()
    when_group.add_argument("--run-at", type=timestamp, metavar="ISO",
                            help="not before this time, ISO 8601 (no offset: local time)")
    when_group.add_argument("--delay", type=seconds, metavar="SECONDS",
                            help="not before this many seconds from now")
    p.add_argument("--priority", type=integer, default=None, metavar="N",
                   help="higher runs first (default: 0; with --task, the task's)")
    p.add_argument("--dedup-key", metavar="K",
                   help="while a pending or claimed job of this queue has this key, print "
                        "that job's id and enqueue nothing")
    p.add_argument("--max-attempts", type=positive_int, metavar="N",
                   help=("attempts before the job is dead-lettered "
                         f"(default: {_limits.DEFAULT_MAX_ATTEMPTS}; with --task, the task's)"))
    p.add_argument("--id", type=job_id, metavar="UUID",
                   help="the job's id (default: a new time-ordered UUID)")
    p.add_argument("--task", metavar="NAME", help="task name: payload becomes "
                   '{"task": NAME, "kwargs": KWARGS}')
    p.add_argument("--kwargs", type=json_object, metavar="JSON",
                   help="with --task: the task's keyword arguments, a JSON object")
