"""``pgbatch runs approve|reject|approvals`` and ``runs list --awaiting-approval``:
the approval gates of batch runs (docs/batch-gates.md).

Every call goes through :class:`pgbatch.batch.JobOperator` (``approve_gate``,
``reject_gate``, ``approvals``, ``job_executions``). A decision on a gate that
was already decided or expired changes nothing, says so on stderr and exits
with ``EXIT_NOT_APPLIED`` (as the other transitions of ``pgbatch runs``).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any, Final

from pgbatch.batch.gates import ApprovalInfo, ApprovalResult
from pgbatch.batch.operator import JobOperator
from pgbatch.cli.common import (
    CliError,
    Commands,
    add_command,
    dsn_of,
    pooler_of,
    positive_int,
    session,
)
from pgbatch.cli.format import dumps, shorten, table, when

#: Exit status of a decision on a gate that was no longer pending (as runs.EXIT_NOT_APPLIED).
EXIT_NOT_APPLIED: Final = 3

AWAITING_HEADERS: Final = ("ID", "JOB", "GATE", "REQUESTED", "EXPIRES", "ON TIMEOUT")
APPROVAL_HEADERS: Final = ("EXECUTION", "JOB", "GATE", "STATUS", "RUN STATUS", "REQUESTED",
                           "EXPIRES", "DECIDED BY", "DECIDED", "COMMENT")
_DONE: Final = {"approve": "approved", "reject": "rejected"}


def _operator_session(args: argparse.Namespace) -> Any:
    return session(dsn_of(args), pooler_of(args))


def _awaiting_row(a: ApprovalInfo) -> list[str]:
    return [str(a.execution_id), a.job_name, a.gate_name, when(a.requested_at),
            when(a.expires_at), a.on_timeout if a.expires_at else "-"]


def list_awaiting(args: argparse.Namespace) -> int:
    """``runs list --awaiting-approval``: executions waiting at a gate, oldest request first,
    with the gate, when it was requested and when it expires."""
    with _operator_session(args) as (client, conn):
        pending = JobOperator(client).approvals("PENDING", 10000, conn=conn)
    rows = sorted((a for a in pending if args.job is None or a.job_name == args.job),
                  key=lambda a: (a.requested_at, a.approval_id))[:args.limit]
    if args.json:
        print(dumps([asdict(a) for a in rows]))
    elif not rows:
        print("no runs awaiting approval")
    else:
        print(table(AWAITING_HEADERS, [_awaiting_row(a) for a in rows], right=(0,)))
    return 0


def _approval_row(a: ApprovalInfo) -> list[str]:
    return [str(a.execution_id), a.job_name, a.gate_name, a.status, a.execution_status,
            when(a.requested_at), when(a.expires_at), a.decided_by or "-", when(a.decided_at),
            shorten(a.comment, 40) if a.comment else "-"]


def cmd_runs_approvals(args: argparse.Namespace) -> int:
    """List gate approvals, newest first."""
    status = "PENDING" if args.pending else "DECIDED" if args.decided else None
    with _operator_session(args) as (client, conn):
        rows = JobOperator(client).approvals(status, args.limit, conn=conn)
    if args.json:
        print(dumps([asdict(a) for a in rows]))
    elif not rows:
        print("no approvals")
    else:
        print(table(APPROVAL_HEADERS, [_approval_row(a) for a in rows], right=(0,)))
    return 0


def _report(result: ApprovalResult) -> int:
    if result.applied:
        if result.action == "reject":
            meaning = "the run FAILED (APPROVAL_REJECTED); restarting it asks again"
        elif result.execution_status == "COMPLETED":
            meaning = "it was the last step: the run COMPLETED"
        else:
            meaning = f"the next step runs ({result.execution_status})"
        print(f"execution {result.execution_id}: gate {result.gate} {_DONE[result.action]}; "
              f"{meaning}")
        return 0
    raise CliError(f"gate {result.gate} of execution {result.execution_id} was not "
                   f"{_DONE[result.action]}: it is {result.status} (the run is "
                   f"{result.execution_status}; request {result.request_id})", EXIT_NOT_APPLIED)


def _decision(action: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        with _operator_session(args) as (client, conn):
            op = JobOperator(client)
            call = op.approve if action == "approve" else op.reject
            result = call(args.id, args.gate, actor=args.actor, comment=args.comment,
                          request_id=args.request_id, conn=conn)
        return _report(result)

    handler.__name__ = f"cmd_runs_{action}"
    handler.__doc__ = f"{action.capitalize()} a gate of an execution."
    return handler


_DECISION_HELP: Final = {
    "approve": ("approve the gate a run waits at",
                "Approve gate GATE of execution ID (approve_gate()), which waits\n"
                "AWAITING_APPROVAL at it: the gate step COMPLETES (exit APPROVED) and the\n"
                "next step runs in the same execution (a worker picks it up). A gate that\n"
                "was already decided, or EXPIRED by a stop, an abandon or its timeout,\n"
                f"changes nothing: exit status {EXIT_NOT_APPLIED}."),
    "reject": ("reject the gate a run waits at",
               "Reject gate GATE of execution ID (reject_gate()): the gate step and the\n"
               "execution end FAILED with exit code APPROVAL_REJECTED. Restarting the run\n"
               "(pgbatch runs restart ID) skips the completed steps and asks again at the\n"
               f"gate. A gate no longer pending changes nothing: exit status {EXIT_NOT_APPLIED}."),
}


def add_list_option(p: argparse.ArgumentParser) -> None:
    """``runs list --awaiting-approval``."""
    p.add_argument("--awaiting-approval", action="store_true",
                   help="only runs waiting at an approval gate, with the gate, when approval "
                        "was requested and when it expires (oldest first)")


def register(rsub: Commands, add_request_id: Any) -> None:
    """Add ``runs approve``, ``runs reject`` and ``runs approvals`` to the ``runs`` group."""
    for action, (summary, description) in _DECISION_HELP.items():
        p = add_command(rsub, action, summary, description,
                        f"examples:\n  pgbatch runs {action} 42 check\n"
                        f"  pgbatch runs {action} 42 check --actor alice --comment 'totals ok'"
                        " --request-id ops-77",
                        handler=_decision(action))
        p.add_argument("id", type=positive_int, metavar="ID", help="the execution's id")
        p.add_argument("gate", metavar="GATE", help="the gate's name (its step name)")
        p.add_argument("--actor", metavar="WHO",
                       help="who decides (recorded as decided_by; default: the database user)")
        p.add_argument("--comment", metavar="TEXT", help="why (recorded with the decision)")
        add_request_id(p)

    p = add_command(
        rsub, "approvals", "list gate approvals (the inbox, or who decided what)",
        "List the approvals of gates, newest first (approvals()): the execution, job,\n"
        "gate, the approval's status (PENDING, APPROVED, REJECTED, EXPIRED), the run's\n"
        "status, when it was requested and expires, and who decided it when, with\n"
        "the comment. decided_by 'timeout' is the gate's on_timeout rule.",
        "examples:\n  pgbatch runs approvals --pending\n"
        "  pgbatch runs approvals --decided --limit 50 --json", handler=cmd_runs_approvals)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--pending", action="store_true",
                       help="only approvals waiting for a decision (the inbox)")
    which.add_argument("--decided", action="store_true",
                       help="only decided ones: APPROVED, REJECTED or EXPIRED")
    p.add_argument("--limit", type=positive_int, default=20, metavar="N",
                   help="at most this many (1 to 10000)")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
