"""``pgbatch jobs list|show|retry|cancel``: read and act on jobs.

Every call is one SQL function: ``list_jobs()`` and ``get_job()`` for the
listings (live and archived jobs, newest first by creation then enqueue order,
no claim tokens), ``requeue_dead_job()`` and ``cancel_job()`` for the actions.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import datetime
from typing import Any, Final

from pgbatch._types import JOB_STATES, JobInfo
from pgbatch.cli.common import (
    Commands,
    add_command,
    add_group,
    dsn_of,
    job_id,
    pooler_of,
    positive_int,
    session,
    timestamp,
)
from pgbatch.cli.format import dumps, shorten, table, to_jsonable, when

JOB_HEADERS: Final = ("ID", "QUEUE", "STATE", "ATTEMPT", "PRIO", "RUN AT", "FINISHED",
                      "TASK / PAYLOAD")
#: Characters of the payload shown by ``jobs list``.
PREVIEW_CHARS: Final = 60
#: The fields of ``jobs list --json``, in order.
LIST_FIELDS: Final = ("id", "queue", "state", "priority", "attempt", "max_attempts", "run_at",
                      "created_at", "finished_at", "claimed_by")


def _preview(job: JobInfo) -> str:
    if job.task:
        return job.task
    return shorten(json.dumps(to_jsonable(job.payload), ensure_ascii=False), PREVIEW_CHARS)


def _job_row(job: JobInfo) -> list[str]:
    return [str(job.id), job.queue, job.state, f"{job.attempt}/{job.max_attempts}",
            str(job.priority), when(job.run_at), when(job.finished_at), _preview(job)]


def _list_entry(job: JobInfo) -> dict[str, Any]:
    entry = {name: getattr(job, name) for name in LIST_FIELDS}
    entry["task"] = job.task
    return entry


def cmd_jobs_list(args: argparse.Namespace) -> int:
    """List jobs, newest first."""
    with session(dsn_of(args), pooler_of(args)) as (client, conn):
        jobs = client.list_jobs(args.queue, args.state, created_after=args.created_after,
                                created_before=args.created_before, limit=args.limit,
                                conn=conn)
    if args.json:
        print(dumps([_list_entry(j) for j in jobs]))
    elif not jobs:
        print("no jobs")
    else:
        print(table(JOB_HEADERS, [_job_row(j) for j in jobs], right=(4,)))
    return 0


_SHOW_LAST: Final = ("payload", "result", "return_value", "last_error")


def _show_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone().isoformat(timespec="milliseconds")
    if isinstance(value, dict | list):
        return json.dumps(to_jsonable(value), ensure_ascii=False)
    return str(value)


def _error_line(error: Any) -> str:
    """One earlier attempt's error of ``last_error["history"]``: ``at  Type: message``."""
    if not isinstance(error, dict):
        return json.dumps(to_jsonable(error), ensure_ascii=False)
    rest = {k: v for k, v in error.items() if k not in ("type", "message", "at")}
    text = f"{error.get('type', 'error')}: {error.get('message', '')}"
    if "at" in error:
        text = f"{error['at']}  {text}"
    return text + (f" {json.dumps(to_jsonable(rest), ensure_ascii=False)}" if rest else "")


def format_job(row: dict[str, Any]) -> str:
    """``jobs show``: one ``field  value`` line per field, the JSON ones last."""
    keys = [k for k in row if k not in _SHOW_LAST] + [k for k in _SHOW_LAST if k in row]
    width = max(len(k) for k in keys)
    lines: list[str] = []
    for key in keys:
        value = row[key]
        if key in ("payload", "return_value") and value is not None:
            text = json.dumps(to_jsonable(value), ensure_ascii=False)
            if len(text) > 80:
                text = json.dumps(to_jsonable(value), ensure_ascii=False, indent=2)
                text = text.replace("\n", "\n" + " " * (width + 2))
            lines.append(f"{key:<{width}}  {text}")
        elif key == "last_error" and isinstance(value, dict):
            tb = value.get("traceback")
            history = value.get("history")
            brief = {k: v for k, v in value.items() if k not in ("traceback", "history")}
            head = (f"{brief.pop('type', 'error')}: {brief.pop('message', '')}"
                    if "type" in brief or "message" in brief else "")
            rest = f" {json.dumps(brief, ensure_ascii=False)}" if brief else ""
            lines.append(f"{key:<{width}}  {head}{rest}".rstrip())
            if isinstance(tb, str) and tb:
                lines.append("traceback:")
                lines.extend("    " + ln for ln in tb.rstrip().splitlines())
            if isinstance(history, list) and history:
                lines.append(f"earlier errors ({len(history)}, newest first):")
                lines.extend("    " + _error_line(e) for e in history)
        else:
            lines.append(f"{key:<{width}}  {_show_value(value)}")
    return "\n".join(lines)


def cmd_jobs_show(args: argparse.Namespace) -> int:
    """Show every field of one job: its return value, last error and earlier errors last."""
    with session(dsn_of(args), pooler_of(args)) as (client, conn):
        job = client.get_job(args.id, conn=conn)
    row = asdict(job)
    row["return_value"] = job.return_value
    print(dumps(row) if args.json else format_job(row))
    return 0


def cmd_jobs_retry(args: argparse.Namespace) -> int:
    """Requeue a dead job."""
    with session(dsn_of(args), pooler_of(args)) as (client, conn):
        revived = client.requeue_dead_job(args.id, args.run_at, conn=conn)
    print(f"job {revived}: pending")
    return 0


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    """Cancel a pending job, or flag a claimed one."""
    with session(dsn_of(args), pooler_of(args)) as (client, conn):
        state = client.cancel_job(args.id, conn=conn)
    note = (" (its worker stops it at the next lease renewal)"
            if state == "cancel_requested" else "")
    print(f"job {args.id}: {state}{note}")
    return 0


def register(commands: Commands) -> None:
    """Add ``jobs`` and its subcommands."""
    jsub = add_group(commands, "jobs", "list, show, retry or cancel jobs",
                     "Inspect and act on jobs. Listings call list_jobs() and get_job() "
                     "(read-only);\nretry and cancel call requeue_dead_job() and cancel_job().",
                     "examples:\n"
                     "  pgbatch jobs list --queue emails --state dead\n"
                     "  pgbatch jobs show 0197a1b2-...\n"
                     "  pgbatch jobs retry 0197a1b2-...\n"
                     "  pgbatch jobs cancel 0197a1b2-...")
    p = add_command(
        jsub, "list", "list jobs, newest first",
        "List jobs, newest first: live ones (pending, scheduled, claimed) and settled\n"
        "ones (done, dead, cancelled, kept until the retention sweep). Jobs created at\n"
        "the same moment (one statement) are listed in reverse enqueue order, the same\n"
        "on every call (list_jobs()).",
        "examples:\n  pgbatch jobs list\n  pgbatch jobs list --queue emails --state dead "
        "--limit 10\n  pgbatch jobs list --state claimed --json\n"
        "  pgbatch jobs list --created-after 2030-01-01T00:00:00+00:00",
        handler=cmd_jobs_list)
    p.add_argument("--queue", metavar="Q", help="only this queue")
    p.add_argument("--state", choices=JOB_STATES, help="only jobs in this state")
    p.add_argument("--created-after", type=timestamp, metavar="ISO",
                   help="only jobs created at or after this time (no offset: local time)")
    p.add_argument("--created-before", type=timestamp, metavar="ISO",
                   help="only jobs created before this time")
    p.add_argument("--limit", type=positive_int, default=50, metavar="N",
                   help="at most this many jobs (up to 10000)")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")

    p = add_command(
        jsub, "show", "every field of one job",
        "Show every field of one job, live or archived (get_job()): the task's return\n"
        "value (return_value, kept for a done job whose task returned one), last_error\n"
        "with its traceback, and the earlier attempts' errors (last_error history).",
        "example:\n  pgbatch jobs show 0197a1b2-... --json",
        handler=cmd_jobs_show)
    p.add_argument("id", type=job_id, metavar="ID", help="the job's id")
    p.add_argument("--json", action="store_true", help="JSON instead of text")

    p = add_command(
        jsub, "retry", "requeue a dead job",
        "Requeue a dead job with a fresh attempt count (requeue_dead_job()).",
        "example:\n  pgbatch jobs retry 0197a1b2-...", handler=cmd_jobs_retry)
    p.add_argument("id", type=job_id, metavar="ID", help="the dead job's id")
    p.add_argument("--run-at", type=timestamp, metavar="ISO",
                   help="not before this time (default: now)")

    p = add_command(
        jsub, "cancel", "cancel a job",
        "Cancel a job (cancel_job()) and print the resulting state: a pending job is\n"
        "cancelled at once; a claimed one becomes cancel_requested and its worker stops\n"
        "it at the next lease renewal.", "example:\n  pgbatch jobs cancel 0197a1b2-...",
        handler=cmd_jobs_cancel)
    p.add_argument("id", type=job_id, metavar="ID", help="the job's id")
