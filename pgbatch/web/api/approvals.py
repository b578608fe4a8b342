"""``/api/v1/approvals``: the approval gates inbox and the decisions.

Reads are ``approvals(status, limit)``; a decision is one ``approve_gate`` /
``reject_gate`` call (``AsyncJobOperator.approve`` / ``reject``) with the
credential's name as the actor and the body's ``comment``. A decision that
lost a race (another request decided first, the gate expired) is
``applied: false`` with the approval's status. The routes answer 501
``NotAvailable`` on a schema without approval gates.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pgbatch._errors import InvalidArgument
from pgbatch.web import params
from pgbatch.web.api.batch_calls import actor, approval_message, json_body, operator, require
from pgbatch.web.api.common import as_json, ok
from pgbatch.web.api.runs import RUN_ID, run_id
from pgbatch.web.openapi import IDEMPOTENCY_KEY, ApiRoute, Param

#: The statuses ``approvals()`` filters by.
APPROVAL_STATUSES: Final = ("PENDING", "DECIDED", "APPROVED", "REJECTED", "EXPIRED")
#: Longest comment accepted.
MAX_COMMENT: Final = 2000
GATE = Param("gate", "path", "the gate step's name")
DECISION_BODY: dict[str, Any] = {"type": "object", "properties": {
    "comment": {"type": "string", "description": f"why (at most {MAX_COMMENT} characters)"}}}


def approval_status(text: str | None) -> str | None:
    """A status filter: None or empty for all, else one of ``APPROVAL_STATUSES``."""
    if text is None or text == "":
        return None
    if text not in APPROVAL_STATUSES:
        raise InvalidArgument(f"invalid status: {text[:40]!r}, must be one of "
                              f"{', '.join(APPROVAL_STATUSES)}")
    return text


def comment(value: Any) -> str | None:
    """A decision's comment: None or a string of at most ``MAX_COMMENT`` characters."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidArgument("invalid comment: must be a string")
    if len(value) > MAX_COMMENT:
        raise InvalidArgument(f"invalid comment: longer than {MAX_COMMENT} characters")
    return value


async def approvals(request: Request, state: str | None, limit: int) -> list[Any]:
    """``approvals(status, limit)`` (after the capability check)."""
    await require(request, "approvals")
    op: Any = operator(request)
    return list(await op.approvals(state, limit))


async def decide(request: Request, action: str, execution_id: int, gate: str,
                 note: str | None) -> dict[str, Any]:
    """``approve_gate`` or ``reject_gate`` by the request's principal; the JSON result."""
    await require(request, action)
    req = params.request_id(request, f"gate-{action}:{execution_id}:{gate}")
    op: Any = operator(request)
    res = await getattr(op, action)(execution_id, gate, actor(request), note,
                                    None if req is None else str(req))
    return {**as_json(res), "message": approval_message(action, bool(res.applied),
                                                        str(res.status),
                                                        str(res.execution_status))}


async def list_approvals(request: Request) -> Response:
    """Approvals newest first, by status."""
    q = request.query_params
    found = await approvals(request, approval_status(q.get("status")), params.limit(q.get("limit")))
    return ok(as_json(found))


def _decision(action: str) -> Any:
    async def endpoint(request: Request) -> Response:
        execution_id = run_id(request.path_params["run_id"])
        body = await json_body(request)
        return ok(await decide(request, action, execution_id, request.path_params["gate"],
                               comment(body.get("comment"))))

    endpoint.__doc__ = f"Gate decision {action}."
    return endpoint


def routes() -> list[Route]:
    """The approval routes."""
    return [
        ApiRoute("/approvals", list_approvals, name="api_approvals",
                 params=[Param("status", "query", f"only this status: "
                                                  f"{', '.join(APPROVAL_STATUSES)}"),
                         Param("limit", "query", "at most this many", schema_type="integer")],
                 summary="gate approvals newest first (approvals): PENDING is the inbox, "
                         "DECIDED the decided ones with who and when",
                 result={"type": "array", "items": {"type": "object"}}),
        ApiRoute("/runs/{run_id}/gates/{gate}/approve", _decision("approve"),
                 name="api_gate_approve", action=True, params=[RUN_ID, GATE, IDEMPOTENCY_KEY],
                 body=DECISION_BODY,
                 summary="approve a pending gate (approve_gate): the run goes on in the same "
                         "execution; applied: false when it was already decided or expired"),
        ApiRoute("/runs/{run_id}/gates/{gate}/reject", _decision("reject"),
                 name="api_gate_reject", action=True, params=[RUN_ID, GATE, IDEMPOTENCY_KEY],
                 body=DECISION_BODY,
                 summary="reject a pending gate (reject_gate): the run ends FAILED "
                         "APPROVAL_REJECTED"),
    ]
