"""``pgbatch runs list|show|launch|restart|stop|pause|resume|abandon|recover|cancel``:
batch job executions ("runs") for operators (pause and resume: ``runs_pause.py``;
``approve|reject|approvals`` and ``list --awaiting-approval``:
:mod:`pgbatch.cli.run_gates`).

Every call goes through :class:`pgbatch.batch.JobOperator`, one SQL function
each (``job_executions``, ``get_execution``, ``step_executions``,
``execution_events``, ``launch_job``, ``restart_execution``,
``stop_execution``, ``abandon_execution``, ``recover_execution``,
``cancel_execution``). A transition whose execution was in a status that does
not allow it (a lost race: it completed first, it was already stopped)
changes nothing, says so on stderr and exits with :data:`EXIT_NOT_APPLIED`.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import datetime
from typing import Any, Final

from pgbatch.batch.operator import (
    EXECUTION_STATUSES,
    ExecutionEvent,
    JobExecutionDetail,
    JobOperator,
    StepExecutionInfo,
    TransitionResult,
)
from pgbatch.cli import run_gates
from pgbatch.cli.common import (
    CliError,
    Commands,
    add_command,
    add_group,
    dsn_of,
    json_object,
    pooler_of,
    positive_int,
    session,
)
from pgbatch.cli.format import age, dumps, shorten, table, when
from pgbatch.cli.runs_pause import PAUSED_HEADERS, paused_rows, register_pause

#: Exit status of a transition that the execution's status did not allow.
EXIT_NOT_APPLIED: Final = 3

RUN_HEADERS: Final = ("ID", "JOB", "STATUS", "STEP", "READ", "WRITTEN", "DURATION", "STARTED")
STEP_HEADERS: Final = ("STEP", "STATUS", "EXIT", "READ", "WRITTEN", "FILTERED", "SKIPPED",
                       "COMMITS", "DURATION")
EVENT_HEADERS: Final = ("AT", "KIND", "FROM", "TO", "ACTOR", "REQUEST")

#: What each transition's success means, by the status it left.
_APPLIED: Final = {
    "STOPPING": "stop requested; its worker stops at the next chunk commit or step boundary",
    "STOPPED": "stopped",
    "ABANDONED": "abandoned; its job instance can no longer be restarted",
    "FAILED": "recovered as FAILED; restart it with `pgbatch runs restart`",
}
_VERB: Final = {"stop": "stopped", "abandon": "abandoned", "recover": "recovered",
                "cancel": "cancelled"}


def _operator_session(args: argparse.Namespace) -> Any:
    return session(dsn_of(args), pooler_of(args))


def _run_row(x: JobExecutionDetail, now: datetime) -> list[str]:
    return [str(x.execution_id), x.job, x.status, x.current_step or "-", str(x.read_count),
            str(x.write_count), age(x.duration(now)), when(x.start_time)]


#: ``runs list --state S`` views with columns of their own (what the runs wait for):
#: state -> (headers, a function (operator, job, limit, conn) -> (records, rows)).
_STATE_VIEWS: Final[dict[str, tuple[tuple[str, ...], Any]]] = {
    "PAUSED": (PAUSED_HEADERS, paused_rows),
}


def _state(text: str) -> str:
    state = text.upper()
    if state not in EXECUTION_STATUSES:
        raise argparse.ArgumentTypeError(
            f"not a status ({', '.join(s.lower() for s in EXECUTION_STATUSES)}): {text!r}")
    return state


def _list_view(args: argparse.Namespace, headers: tuple[str, ...], rows_of: Any) -> int:
    with _operator_session(args) as (client, conn):
        found, rows = rows_of(JobOperator(client), args.job, args.limit, conn)
    if args.json:
        print(dumps([asdict(r) for r in found]))
    elif not rows:
        print("no runs")
    else:
        print(table(headers, rows, right=(0,)))
    return 0


def cmd_runs_list(args: argparse.Namespace) -> int:
    """List job executions, newest first."""
    if args.awaiting_approval:
        return run_gates.list_awaiting(args)
    status = args.state or args.status
    if status in _STATE_VIEWS:
        return _list_view(args, *_STATE_VIEWS[status])
    with _operator_session(args) as (client, conn):
        op = JobOperator(client)
        rows = op.executions(args.job, status, args.limit, conn=conn)
        details = [op.execution(r.execution_id, conn=conn) for r in rows]
        now = client.now(conn=conn)
    if args.json:
        print(dumps([asdict(d) for d in details]))
    elif not details:
        print("no runs")
    else:
        print(table(RUN_HEADERS, [_run_row(d, now) for d in details], right=(0, 4, 5, 6)))
    return 0


def _step_row(s: StepExecutionInfo, now: datetime) -> list[str]:
    skipped = s.read_skip_count + s.process_skip_count + s.write_skip_count
    duration = None if s.start_time is None else (s.end_time or now) - s.start_time
    return [s.step_name, s.status, s.exit_code, str(s.read_count), str(s.write_count),
            str(s.filter_count), str(skipped), str(s.commit_count), age(duration)]


def _event_row(e: ExecutionEvent) -> list[str]:
    return [when(e.at), e.kind, e.from_status or "-", e.to_status or "-", e.actor or "-",
            e.request_id or "-"]


def format_run(x: JobExecutionDetail, steps: list[StepExecutionInfo],
               events: list[ExecutionEvent], now: datetime) -> str:
    """``runs show``: the execution's fields, then its steps and its events as tables."""
    params = {k: (v.get("value") if isinstance(v, dict) else v) for k, v in x.params.items()}
    fields: list[tuple[str, str]] = [
        ("execution", str(x.execution_id)), ("job", x.job), ("instance", str(x.instance_id)),
        ("status", x.status), ("exit", f"{x.exit_code}" + (
            f": {shorten(x.exit_message, 200)}" if x.exit_message else "")),
        ("current step", x.current_step or "-"),
        ("params", ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "-"),
        ("created", when(x.create_time)), ("started", when(x.start_time)),
        ("ended", when(x.end_time)), ("duration", age(x.duration(now))),
        ("read / written", f"{x.read_count} / {x.write_count}"),
        ("filtered / skipped", f"{x.filter_count} / {x.skip_count}"),
        ("commits / rollbacks", f"{x.commit_count} / {x.rollback_count}"),
        ("recovery policy", x.recovery_policy),
        ("recoveries / resumes / hand-offs",
         f"{x.recovery_count} / {x.resume_count} / {x.handoff_count}"),
        ("lease", f"{x.lease_owner} until {when(x.lease_expires_at)} (epoch {x.lease_epoch})"
         if x.lease_owner and x.lease_expires_at else "-"),
        ("stop requested", when(x.stop_requested_at)),
    ]
    width = max(len(k) for k, _ in fields)
    lines = [f"{k:<{width}}  {v}" for k, v in fields]
    lines += ["", "steps:"]
    lines.append(table(STEP_HEADERS, [_step_row(s, now) for s in steps],
                       right=(3, 4, 5, 6, 7, 8)) if steps else "  (none started)")
    lines += ["", "events:", table(EVENT_HEADERS, [_event_row(e) for e in events])]
    return "\n".join(lines)


def cmd_runs_show(args: argparse.Namespace) -> int:
    """Show one execution with its steps and events."""
    with _operator_session(args) as (client, conn):
        op = JobOperator(client)
        x = op.execution(args.id, conn=conn)
        steps = op.steps(args.id, conn=conn)
        events = op.events(args.id, conn=conn)
        now = client.now(conn=conn)
    if args.json:
        print(dumps({"execution": asdict(x), "steps": [asdict(s) for s in steps],
                     "events": [asdict(e) for e in events]}))
    else:
        print(format_run(x, steps, events, now))
    return 0


def cmd_runs_launch(args: argparse.Namespace) -> int:
    """Launch a job."""
    with _operator_session(args) as (client, conn):
        op = JobOperator(client)
        params = args.params or {}
        if args.next:
            params = op.next_instance(args.job, params, conn=conn)
        execution_id = op.launch(args.job, params, request_id=args.request_id, conn=conn)
        status = op.execution(execution_id, conn=conn).status
    print(f"execution {execution_id}: {status} (job {args.job})")
    return 0


def cmd_runs_restart(args: argparse.Namespace) -> int:
    """Restart the job instance of an execution."""
    with _operator_session(args) as (client, conn):
        op = JobOperator(client)
        execution_id = op.restart(args.id, request_id=args.request_id, conn=conn)
        status = op.execution(execution_id, conn=conn).status
    print(f"execution {execution_id}: {status} (restart of execution {args.id})")
    return 0


def _report(result: TransitionResult) -> int:
    if result.applied:
        meaning = _APPLIED.get(result.status, result.status)
        if result.action == "cancel":
            meaning = f"cancelled ({result.status})"
        print(f"execution {result.execution_id}: {meaning}")
        return 0
    raise CliError(f"execution {result.execution_id} was not {_VERB[result.action]}: it is "
                   f"{result.status} (request {result.request_id})", EXIT_NOT_APPLIED)


def _transition(action: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        with _operator_session(args) as (client, conn):
            op = JobOperator(client)
            call = {"stop": op.stop, "abandon": op.abandon, "recover": op.recover,
                    "cancel": op.cancel}[action]
            result = call(args.id, request_id=args.request_id, conn=conn)
        return _report(result)

    handler.__name__ = f"cmd_runs_{action}"
    handler.__doc__ = f"{action.capitalize()} an execution."
    return handler


def _with_operator(fn: Any) -> Any:
    """An argparse handler that runs ``fn(args, operator, conn, EXIT_NOT_APPLIED)``."""
    def handler(args: argparse.Namespace) -> int:
        with _operator_session(args) as (client, conn):
            result: int = fn(args, JobOperator(client), conn, EXIT_NOT_APPLIED)
        return result

    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


def _add_request_id(p: argparse.ArgumentParser) -> None:
    p.add_argument("--request-id", metavar="R",
                   help="idempotency key: a retry with the same R returns the first call's "
                        "result and changes nothing again (default: a new random one)")


_TRANSITION_HELP: Final = {
    "stop": ("stop an execution",
             "Stop an execution (stop_execution()). A running one is STOPPING: its worker\n"
             "commits the current chunk and stops at the next boundary; a waiting one\n"
             "(STARTING, PAUSED, AWAITING_APPROVAL) is STOPPED at once. A stopped\n"
             "execution can be restarted."),
    "abandon": ("give up on an execution for good",
                "Abandon an execution (abandon_execution()): STOPPED, FAILED, UNKNOWN, PAUSED\n"
                "or AWAITING_APPROVAL, or running with an expired lease (its worker is gone)\n"
                "-> ABANDONED. Its job instance can no longer be restarted."),
    "recover": ("end an UNKNOWN or orphaned execution as FAILED",
                "Recover an execution (recover_execution()): UNKNOWN, or STARTED/STOPPING\n"
                "with an expired lease -> FAILED, so that it can be restarted."),
    "cancel": ("end an execution as cancelled",
               "Cancel an execution (cancel_execution()): the administrative end of a run;\n"
               "it reports CANCELLED."),
}


def register(commands: Commands) -> None:
    """Add ``runs`` and its subcommands."""
    rsub = add_group(
        commands, "runs", "list, show, launch, restart, stop, pause, resume, abandon, recover, "
        "cancel, approve or reject batch runs",
        "Batch job executions (runs). Listings call job_executions(), get_execution(),\n"
        "step_executions() and execution_events() (read-only); the other subcommands call\n"
        "launch_job(), restart_execution(), stop_execution(), pause_execution(),\n"
        "resume_execution(), abandon_execution(), recover_execution() and\n"
        "cancel_execution(); approve, reject and approvals call approve_gate(),\n"
        "reject_gate() and approvals(). A transition that the execution's\n"
        f"status does not allow changes nothing and exits with status {EXIT_NOT_APPLIED}.",
        "examples:\n"
        "  pgbatch runs list --job nightly-etl --status FAILED\n"
        "  pgbatch runs show 42\n"
        "  pgbatch runs launch nightly-etl '{\"day\": \"2026-12-01\"}'\n"
        "  pgbatch runs restart 42\n"
        "  pgbatch runs stop 43 --request-id ops-1234\n"
        "  pgbatch runs pause 44 --reason 'check the totals'\n"
        "  pgbatch runs resume 44\n"
        "  pgbatch runs list --awaiting-approval\n"
        "  pgbatch runs approve 44 check --comment 'totals match'")
    p = add_command(
        rsub, "list", "list runs, newest first",
        "List job executions, newest first: id, job, status, current step, items read\n"
        "and written, duration (so far, for a running one) and start time.",
        "examples:\n  pgbatch runs list\n  pgbatch runs list --job nightly-etl --limit 5\n"
        "  pgbatch runs list --status STARTED --json\n  pgbatch runs list --state paused",
        handler=cmd_runs_list)
    p.add_argument("--job", metavar="JOB", help="only this job")
    p.add_argument("--status", choices=EXECUTION_STATUSES, metavar="STATUS",
                   help=f"only runs in this status ({', '.join(EXECUTION_STATUSES)})")
    p.add_argument("--state", type=_state, metavar="STATE",
                   help="only runs in this status, any case; `--state paused` shows why each "
                        "waits: step, reason, resume_at, when it paused, resumes so far")
    p.add_argument("--limit", type=positive_int, default=20, metavar="N",
                   help="at most this many runs (up to 10000)")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    run_gates.add_list_option(p)

    p = add_command(
        rsub, "show", "one run with its steps and events",
        "Show one job execution: its fields, its step executions (status, counters,\n"
        "duration) and its events (every state change, with actor and request id).",
        "example:\n  pgbatch runs show 42 --json", handler=cmd_runs_show)
    p.add_argument("id", type=positive_int, metavar="ID", help="the execution's id")
    p.add_argument("--json", action="store_true", help="JSON instead of text")

    p = add_command(
        rsub, "launch", "launch a job",
        "Launch a job (launch_job()) and print the new execution's id. A plain JSON value\n"
        "in PARAMS is an identifying parameter; {\"value\": ..., \"type\": ...,\n"
        "\"identifying\": false} spells type and flag out (docs/batch.md). The same\n"
        "identifying parameters name the same job instance: a COMPLETED one is not run\n"
        "again (use --next), a FAILED or STOPPED one is restarted.",
        "examples:\n  pgbatch runs launch nightly-etl '{\"day\": \"2026-12-01\"}'\n"
        "  pgbatch runs launch nightly-etl --next", handler=cmd_runs_launch)
    p.add_argument("job", metavar="JOB", help="the job's name (as a worker registered it)")
    p.add_argument("params", type=json_object, nargs="?", metavar="PARAMS",
                   help="the job parameters, a JSON object (default: {})")
    p.add_argument("--next", action="store_true",
                   help="a new instance: add the identifying run_id one past the job's highest "
                        "(next_instance())")
    _add_request_id(p)

    p = add_command(
        rsub, "restart", "restart a failed or stopped run",
        "Restart the job instance of execution ID with its parameters\n"
        "(restart_execution()): a new execution that skips completed steps and resumes\n"
        "a chunk step from its last committed chunk.",
        "example:\n  pgbatch runs restart 42", handler=cmd_runs_restart)
    p.add_argument("id", type=positive_int, metavar="ID", help="the execution's id")
    _add_request_id(p)

    register_pause(rsub, _with_operator, _add_request_id)

    for action, (summary, description) in _TRANSITION_HELP.items():
        p = add_command(rsub, action, summary, description,
                        f"example:\n  pgbatch runs {action} 42",
                        handler=_transition(action))
        p.add_argument("id", type=positive_int, metavar="ID", help="the execution's id")
        _add_request_id(p)
    run_gates.register(rsub, _add_request_id)
