"""The batch runs pages: ``/runs`` (by job and status, keyset pages) and
``/runs/{run_id}`` (steps with counters and progress, the events as a
timeline, and the stop, pause, resume, abandon, restart and recover
buttons). Reads and actions are the API's (:mod:`pgbatch.web.api.runs`):
one SQL function each. After an action the page says what happened, a lost
race included ("Not resumed: already resumed by another request").
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from pgbatch.batch.records import EXECUTION_STATUSES
from pgbatch.web.api.batch_calls import PAST, outcome_message
from pgbatch.web.api.runs import (
    TRANSITION_ACTIONS,
    list_page,
    run_id,
    run_view,
    transition,
)
from pgbatch.web.templating import path_for, render

#: Statuses in which the run page refreshes itself.
LIVE_STATUSES = ("STARTING", "STARTED", "STOPPING", "PAUSING", "AWAITING_APPROVAL")


async def runs_page(request: Request) -> Response:
    """A page of runs by the filters in the query string."""
    runs, next_cursor, filters = await list_page(request)
    q = request.query_params
    keep = {k: q[k] for k in ("job", "status", "limit") if q.get(k)}
    base = path_for(request, "runs")
    return render(request, "runs.html", {
        "runs": runs, "filters": filters, "form": keep, "statuses": EXECUTION_STATUSES,
        "next_url": f"{base}?{urlencode({**keep, 'cursor': next_cursor})}"
                    if next_cursor else None,
        "first_url": f"{base}?{urlencode(keep)}" if q.get("cursor") else None,
    })


def notice_of(request: Request) -> str | None:
    """The sentence of the action the redirect names (checked: nothing else is shown)."""
    q = request.query_params
    action, state = q.get("action", ""), q.get("status", "")
    if action == "restart" and q.get("from", "").isdigit():
        return f"Restarted: this is the new run of run {q['from']}."
    if action not in PAST or state not in EXECUTION_STATUSES:
        return None
    return outcome_message(action, q.get("applied") == "1", state)


async def run_page(request: Request) -> Response:
    """One run."""
    view = await run_view(request, run_id(request.path_params["run_id"]))
    return render(request, "runs_detail.html", {
        "view": view, "x": view.execution, "notice": notice_of(request),
        "live": view.execution.status in LIVE_STATUSES,
    })


def _action(action: str) -> Route:
    async def endpoint(request: Request) -> Response:
        execution_id = run_id(request.path_params["run_id"])
        result = await transition(request, action, execution_id)
        if action == "restart":
            target = path_for(request, "run", run_id=result["new_execution_id"])
            query = urlencode({"action": "restart", "from": execution_id})
        else:
            target = path_for(request, "run", run_id=execution_id)
            query = urlencode({"action": action, "applied": int(result["applied"]),
                               "status": result["status"]})
        return RedirectResponse(f"{target}?{query}", status_code=303)

    endpoint.__doc__ = f"Form action: {action}."
    return Route(f"/runs/{{run_id}}/{action}", endpoint, methods=["POST"], name=f"run_{action}")


def routes() -> list[Route]:
    """The runs pages and their actions."""
    return [Route("/runs", runs_page, name="runs"), Route("/runs/{run_id}", run_page, name="run"),
            *[_action(a) for a in (*TRANSITION_ACTIONS, "restart")]]
