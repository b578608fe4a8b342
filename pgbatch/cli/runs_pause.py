"""``pgbatch runs pause|resume`` and the ``runs list --state paused`` view: pausing
and resuming batch job executions (docs/batch-pause.md).

``pause`` calls ``pause_execution()`` (a running execution parks PAUSED at its
next chunk commit or step start, a waiting one at once), ``resume`` calls
``resume_execution()`` (the same execution goes on from its checkpoint). A call
that the execution's status does not allow (it was not running, not PAUSED:
another resume won) changes nothing and exits with ``EXIT_NOT_APPLIED``.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any, Final

from pgbatch.batch.operator import JobOperator, PausedExecution
from pgbatch.cli.common import CliError, Commands, add_command, positive_int, timestamp
from pgbatch.cli.format import shorten, when

#: The columns of ``runs list --state paused``.
PAUSED_HEADERS: Final = ("ID", "JOB", "STEP", "REASON", "RESUME AT", "PAUSED", "RESUMES")


def paused_rows(op: JobOperator, job: str | None, limit: int,
                conn: Any) -> tuple[list[PausedExecution], list[list[str]]]:
    """The PAUSED executions and their table rows (``runs list --state paused``)."""
    found = op.paused(job, limit, conn=conn)
    return found, [[str(p.execution_id), p.job, p.current_step or "-",
                    shorten(p.pause_reason or "-", 60),
                    when(p.resume_at) if p.resume_at else "on resume", when(p.paused_at),
                    str(p.resume_count)] for p in found]


def cmd_runs_pause(args: argparse.Namespace, op: JobOperator, conn: Any,
                   exit_not_applied: int) -> int:
    """Pause an execution."""
    resume_at: datetime | None = args.resume_at
    result = op.pause(args.id, reason=args.reason, resume_at=resume_at,
                      request_id=args.request_id, conn=conn)
    if not result.applied:
        raise CliError(f"execution {args.id} was not paused: it is {result.status} "
                       f"(request {result.request_id})", exit_not_applied)
    meaning = ("pause requested; its worker parks it at the next chunk commit or step start"
               if result.status == "PAUSING" else "paused")
    print(f"execution {args.id}: {meaning}" + (
        f"; it resumes by itself at {when(resume_at)}" if resume_at else ""))
    return 0


def cmd_runs_resume(args: argparse.Namespace, op: JobOperator, conn: Any,
                    exit_not_applied: int) -> int:
    """Resume a paused execution."""
    result = op.resume(args.id, args.request_id, args.allow_definition_change, conn=conn)
    if not result.resumed:
        raise CliError(f"execution {args.id} was not resumed: it is {result.status}, not PAUSED "
                       f"(request {result.request_id})", exit_not_applied)
    if result.status == "FAILED":
        print(f"execution {args.id}: FAILED: its current step is not in the job's new "
              "definition (STEP_MISSING)")
    else:
        print(f"execution {args.id}: resumed ({result.status}); a worker continues it from "
              "its checkpoint")
    return 0


def register_pause(rsub: Commands, handler: Any, add_request_id: Any) -> None:
    """Add ``runs pause`` and ``runs resume`` (``handler(fn)`` wraps a command function
    into an argparse handler with an operator session)."""
    p = add_command(
        rsub, "pause", "pause a run; it waits until resumed",
        "Pause an execution (pause_execution()). A running one is PAUSING: its worker\n"
        "commits the current chunk and parks it PAUSED at the next chunk commit or step\n"
        "start (lease released, nothing runs it); a waiting one (STARTING) is PAUSED at\n"
        "once. `pgbatch runs resume` continues the same execution from its checkpoint;\n"
        "with --resume-at it resumes by itself at that time (the timed-resume service of\n"
        "every worker). `pgbatch runs list --state paused` shows what waits and why.",
        "examples:\n  pgbatch runs pause 42 --reason 'check the totals'\n"
        "  pgbatch runs pause 42 --resume-at 2026-12-02T06:00:00Z",
        handler=handler(cmd_runs_pause))
    p.add_argument("id", type=positive_int, metavar="ID", help="the execution's id")
    p.add_argument("--reason", metavar="TEXT",
                   help="why it waits (shown by `runs list --state paused`)")
    p.add_argument("--resume-at", type=timestamp, metavar="TIME",
                   help="resume by itself at TIME (ISO 8601 with a time zone, in the future)")
    add_request_id(p)

    p = add_command(
        rsub, "resume", "resume a paused run",
        "Resume a PAUSED execution (resume_execution()): the same execution and step\n"
        "continue from the step's last committed chunk; nothing else is created. If\n"
        "another resume won the race, nothing changes and the command says so (exit\n"
        "status 3). A job whose definition changed while the run was paused is refused\n"
        "(JobDefinitionChangedError) unless --allow-definition-change: then its steps\n"
        "are matched by name.",
        "examples:\n  pgbatch runs resume 42\n"
        "  pgbatch runs resume 42 --request-id ops-1234\n"
        "  pgbatch runs resume 42 --allow-definition-change",
        handler=handler(cmd_runs_resume))
    p.add_argument("id", type=positive_int, metavar="ID", help="the execution's id")
    p.add_argument("--allow-definition-change", action="store_true",
                   help="go on with the job's new definition, steps matched by name")
    add_request_id(p)
