"""``/api/v1/runs``: batch job executions — list (keyset pages), one run with its
steps and timeline, its raw events, and the operator actions.

Reads: ``job_executions_page()`` (the list), ``get_execution()``,
``step_executions()``, ``execution_events()``. Actions are one
``AsyncJobOperator`` call each (one SQL function): stop, pause, resume,
abandon, recover, cancel (``{applied, status}``: a lost race is
``applied: false`` with the status that won, and a sentence saying so),
restart (the new execution's id). ``Idempotency-Key`` becomes the call's
``request_id``, so a retried request repeats the same call and changes
nothing twice. Pause and resume are offered when the database has
``pause_execution`` / ``resume_execution`` (else 501 ``NotAvailable``).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pgbatch._errors import InvalidArgument
from pgbatch._ops import Op
from pgbatch.batch.records import (
    EXECUTION_STATUSES,
    ExecutionEvent,
    JobExecutionDetail,
    JobExecutionInfo,
    StepExecutionInfo,
)
from pgbatch.web import db, params
from pgbatch.web.api.batch_calls import capabilities, operator, outcome_message, require
from pgbatch.web.api.common import as_json, ok
from pgbatch.web.openapi import IDEMPOTENCY_KEY, ApiRoute, Param
from pgbatch.web.timeline import TimelineEntry, timeline

RUN_ID = Param("run_id", "path", "the execution's id", schema_type="integer")
FILTERS = (
    Param("job", "query", "only this job"),
    Param("status", "query", f"only this status: {', '.join(EXECUTION_STATUSES)}"),
    Param("limit", "query", f"page size, 1 to {params.MAX_LIMIT} (default "
                            f"{params.DEFAULT_LIMIT})", schema_type="integer"),
    Param("cursor", "query", "next_cursor of the previous page"),
)
#: The transitions returning ``(applied, status)``; restart is separate (a new id).
TRANSITION_ACTIONS: Final = ("stop", "pause", "resume", "abandon", "recover", "cancel")
#: Which statuses each action is offered in on the run page (the SQL decides anyway).
OFFERED_IN: Final = {
    "stop": ("STARTING", "STARTED", "PAUSING", "PAUSED", "AWAITING_APPROVAL"),
    "pause": ("STARTING", "STARTED"),
    "resume": ("PAUSED",),
    "abandon": ("STOPPED", "FAILED", "UNKNOWN", "PAUSED", "AWAITING_APPROVAL"),
    "recover": ("UNKNOWN", "STARTED", "STOPPING", "PAUSING"),
    "restart": ("FAILED", "STOPPED"),
}
RESULT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    "action": {"type": "string"}, "execution_id": {"type": "integer"},
    "applied": {"type": "boolean"}, "status": {"type": "string"},
    "request_id": {"type": "string"}, "message": {"type": "string"}}}
#: Largest execution id accepted (bigint).
_MAX_ID: Final = 2**63 - 1


@dataclass(frozen=True)
class StepView:
    """A step execution as the run page shows it: its row, the skips summed, and the
    progress where the total is known (see :func:`progress_of`): ``read`` of ``total``."""

    step: StepExecutionInfo
    skip_count: int
    total: int | None
    read: int

    @property
    def percent(self) -> int | None:
        """0 to 100 when the total is known."""
        if self.total is None or self.total <= 0:
            return None
        return max(0, min(100, int(100 * self.read / self.total)))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def progress_of(context: Any, read_count: int) -> tuple[int | None, int]:
    """``(total, read)`` of a step from its checkpoint context: a top-level integer
    ``total`` against the step's read count; else the entries of its readers that keep
    one (``SqlReader(count_total=True)``: ``{"after", "read", "total"}``), their
    ``read`` against their ``total``, summed (a restart keeps both); else no total."""
    if not isinstance(context, dict):
        return None, read_count
    total = _count(context.get("total"))
    if total is not None:
        return total, read_count
    entries = [e for e in context.values()
               if isinstance(e, dict) and _count(e.get("total")) is not None]
    if not entries:
        return None, read_count
    return (sum(e["total"] for e in entries),
            sum(_count(e.get("read")) or 0 for e in entries))


def run_id(text: str) -> int:
    """An execution id from a path or form; ``InvalidArgument`` unless a positive bigint."""
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgument(f"invalid run id: {text[:40]!r} is not an integer") from None
    if not 1 <= value <= _MAX_ID:
        raise InvalidArgument(f"invalid run id: {value} is out of range")
    return value


def status(text: str | None) -> str | None:
    """A status filter: None or empty for all, else one of ``EXECUTION_STATUSES``."""
    if text is None or text == "":
        return None
    if text not in EXECUTION_STATUSES:
        raise InvalidArgument(f"invalid status: {text[:40]!r}, must be one of "
                              f"{', '.join(EXECUTION_STATUSES)}")
    return text


def job_name(text: str | None) -> str | None:
    """A job filter: None or empty for every job; at most 200 characters."""
    if text is None or text == "":
        return None
    if len(text) > 200:
        raise InvalidArgument("invalid job: longer than 200 characters")
    return text


def executions_page_op(job: str | None, state: str | None, before: int | None,
                       limit: int) -> Op[list[JobExecutionInfo]]:
    """``job_executions_page(job_name, status, before_execution_id, limit)``."""
    names = [f.name for f in fields(JobExecutionInfo)]
    return Op("select * from pgbatch.job_executions_page(%s, %s, %s, %s)",
              (job, state, before, limit),
              lambda rows: [JobExecutionInfo(**{n: r[n] for n in names}) for r in rows],
              dict_row)


async def list_page(request: Request) -> tuple[list[JobExecutionInfo], str | None,
                                               dict[str, Any]]:
    """One page of runs by the request's filters, the next page's cursor, the filters."""
    q = request.query_params
    filters: dict[str, Any] = {"job": job_name(q.get("job")), "status": status(q.get("status"))}
    limit = params.limit(q.get("limit"))
    cursor = q.get("cursor")
    before = run_id(cursor) if cursor else None
    runs = await db.client(request).run(
        executions_page_op(filters["job"], filters["status"], before, limit + 1))
    more = len(runs) > limit
    runs = runs[:limit]
    return runs, str(runs[-1].execution_id) if more else None, filters


@dataclass(frozen=True)
class RunView:
    """Everything the run page and ``GET /runs/{id}`` show."""

    execution: JobExecutionDetail
    steps: list[StepView]
    events: list[ExecutionEvent]
    timeline: list[TimelineEntry]
    offered: dict[str, bool]


async def run_view(request: Request, execution_id: int) -> RunView:
    """The run, its steps, events and timeline, and the actions offered in its status."""
    op = operator(request)
    execution, steps, events, caps = await asyncio.gather(
        op.execution(execution_id), op.steps(execution_id), op.events(execution_id),
        capabilities(request))
    views = []
    for s in steps:
        total, read = progress_of(s.context, s.read_count)
        views.append(StepView(s, s.read_skip_count + s.process_skip_count + s.write_skip_count,
                              total, read))
    offered = {a: execution.status in statuses and caps.get(a, True)
               for a, statuses in OFFERED_IN.items()}
    return RunView(execution, views, events, timeline(events), offered)


async def transition(request: Request, action: str, execution_id: int) -> dict[str, Any]:
    """Run operator action ``action`` (a transition or restart); the JSON result."""
    if action in ("pause", "resume"):
        await require(request, action)
    req = params.request_id(request, f"run-{action}:{execution_id}")
    request_id = None if req is None else str(req)
    op: Any = operator(request)
    if action == "restart":
        new_id = await op.restart(execution_id, request_id=request_id)
        return {"action": "restart", "execution_id": execution_id, "applied": True,
                "new_execution_id": new_id, "status": "STARTING",
                "message": f"Restarted as run {new_id}."}
    if action == "resume":
        res = await op.resume(execution_id, request_id=request_id)
        applied, state, rid = bool(res.resumed), str(res.status), str(res.request_id)
    else:
        res = await getattr(op, action)(execution_id, request_id=request_id)
        applied, state, rid = bool(res.applied), str(res.status), str(res.request_id)
    return {"action": action, "execution_id": execution_id, "applied": applied,
            "status": state, "request_id": rid,
            "message": outcome_message(action, applied, state)}


def view_json(view: RunView) -> dict[str, Any]:
    """``RunView`` as the API returns it (timeline entries with their label)."""
    return {
        "execution": as_json(view.execution),
        "steps": [{**as_json(s.step), "skip_count": s.skip_count, "total": s.total,
                   "percent": s.percent} for s in view.steps],
        "event_count": len(view.events),
        "timeline": [{**as_json(asdict(t)), "label": t.label} for t in view.timeline],
        "actions": view.offered,
    }


async def list_runs(request: Request) -> Response:
    """A page of runs, newest first."""
    runs, next_cursor, _ = await list_page(request)
    return ok({"runs": as_json(runs), "next_cursor": next_cursor})


async def get_run(request: Request) -> Response:
    """One run with steps, timeline and the actions offered."""
    return ok(view_json(await run_view(request, run_id(request.path_params["run_id"]))))


async def get_events(request: Request) -> Response:
    """Every event of one run, oldest first."""
    execution_id = run_id(request.path_params["run_id"])
    return ok(as_json(await operator(request).events(execution_id)))


def _action_endpoint(action: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return ok(await transition(request, action, run_id(request.path_params["run_id"])))

    endpoint.__doc__ = f"Operator action {action}."
    return endpoint


_SUMMARIES: Final = {
    "stop": "stop a run (stop_execution): a running one stops at its next chunk commit "
            "(STOPPING), a waiting one at once",
    "pause": "pause a run (pause_execution): a running one parks PAUSED at its next chunk "
             "commit; 501 NotAvailable on a schema without pause",
    "resume": "resume a PAUSED run (resume_execution): the same execution goes on from its "
              "checkpoint; a lost race is applied: false ('already resumed by another "
              "request')",
    "abandon": "give up on a run for good (abandon_execution); 409 while its lease is live",
    "recover": "end an UNKNOWN run, or one whose lease expired, FAILED (recover_execution)",
    "cancel": "end a run as cancelled (cancel_execution)",
    "restart": "restart a run's instance (restart_execution): new_execution_id",
}


def routes() -> list[Route]:
    """The run routes."""
    found: list[Route] = [
        ApiRoute("/runs", list_runs, name="api_runs", params=FILTERS,
                 summary="batch runs newest first (job_executions_page), one keyset page",
                 result={"type": "object", "properties": {
                     "runs": {"type": "array", "items": {"type": "object"}},
                     "next_cursor": {"type": ["string", "null"]}}}),
        ApiRoute("/runs/{run_id}", get_run, name="api_run", params=[RUN_ID],
                 summary="one run (get_execution) with its steps (step_executions), its "
                         "events folded into a timeline (execution_events) and the actions "
                         "offered in its status"),
        ApiRoute("/runs/{run_id}/events", get_events, name="api_run_events", params=[RUN_ID],
                 summary="every event of a run, oldest first (execution_events)",
                 result={"type": "array", "items": {"type": "object"}}),
    ]
    for action in (*TRANSITION_ACTIONS, "restart"):
        found.append(ApiRoute(f"/runs/{{run_id}}/{action}", _action_endpoint(action),
                              name=f"api_run_{action}", action=True,
                              params=[RUN_ID, IDEMPOTENCY_KEY], result=RESULT_SCHEMA,
                              summary=_SUMMARIES[action]))
    return found
