"""The approvals inbox: ``/approvals`` lists the pending gates with approve and
reject buttons (and a comment), then the decided ones with who decided and
when. Reads and decisions are the API's (:mod:`pgbatch.web.api.approvals`):
``approvals()``, ``approve_gate``, ``reject_gate``. On a schema without
approval gates the page says so and shows no button.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from pgbatch.web.api.approvals import approvals, comment, decide
from pgbatch.web.api.batch_calls import approval_message, capabilities
from pgbatch.web.api.runs import run_id
from pgbatch.web.templating import path_for, render

#: How many decided approvals the inbox shows.
DECIDED_SHOWN = 50
#: The approval statuses a notice may name.
_STATUSES = ("APPROVED", "REJECTED", "EXPIRED", "PENDING")


def notice_of(request: Request) -> str | None:
    """The sentence of the decision the redirect names (checked values only)."""
    q = request.query_params
    action, state, run_state = q.get("action", ""), q.get("status", ""), q.get("run", "")
    if action not in ("approve", "reject") or state not in _STATUSES or \
            not run_state.replace("_", "").isalpha() or len(run_state) > 20:
        return None
    return approval_message(action, q.get("applied") == "1", state, run_state)


async def approvals_page(request: Request) -> Response:
    """Pending gates first, then the latest decided ones."""
    available = (await capabilities(request))["approvals"]
    pending = await approvals(request, "PENDING", 500) if available else []
    decided = await approvals(request, "DECIDED", DECIDED_SHOWN) if available else []
    return render(request, "approvals.html", {
        "available": available, "pending": pending, "decided": decided,
        "notice": notice_of(request)})


def _decision(action: str) -> Route:
    async def endpoint(request: Request) -> Response:
        execution_id = run_id(request.path_params["run_id"])
        form = await request.form()
        note = form.get("comment")
        result = await decide(request, action, execution_id, request.path_params["gate"],
                              comment(note if isinstance(note, str) else None))
        query = urlencode({"action": action, "applied": int(result["applied"]),
                           "status": result["status"], "run": result["execution_status"]})
        return RedirectResponse(f"{path_for(request, 'approvals')}?{query}", status_code=303)

    endpoint.__doc__ = f"Form action: {action} a gate."
    return Route(f"/approvals/{{run_id}}/{{gate}}/{action}", endpoint, methods=["POST"],
                 name=f"gate_{action}")


def routes() -> list[Route]:
    """The inbox and its decisions."""
    return [Route("/approvals", approvals_page, name="approvals"),
            _decision("approve"), _decision("reject")]
