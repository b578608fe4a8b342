"""What the runs, approvals and schedules routes share: the operator and
scheduler clients on the app's pool, the capability check for SQL functions
that only newer schemas have, JSON request bodies, and the sentence an
operator reads for a transition's result (won or lost race).
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

from starlette.requests import Request

from pgbatch._errors import InvalidArgument
from pgbatch._ops import Op
from pgbatch.batch.operator import TERMINAL_STATUSES, AsyncJobOperator
from pgbatch.schedule.client import AsyncSchedules
from pgbatch.web import db
from pgbatch.web.errors import WebError

#: The SQL function and operator method each optional capability needs.
CAPABILITIES: Final = {
    "pause": ("pause_execution", "pause"),
    "resume": ("resume_execution", "resume"),
    "approvals": ("approvals", "approvals"),
    "approve": ("approve_gate", "approve"),
    "reject": ("reject_gate", "reject"),
}
#: Seconds a capability check is reused.
CAPABILITY_TTL_S: Final = 30.0
#: Largest JSON body accepted by an action.
MAX_BODY_BYTES: Final = 64 * 1024
#: The past tense of each action, for the sentences below.
PAST: Final = {"stop": "stopped", "pause": "paused", "resume": "resumed",
               "abandon": "abandoned", "restart": "restarted", "recover": "recovered",
               "cancel": "cancelled", "approve": "approved", "reject": "rejected"}
#: Statuses that mean another request already did what a lost call asked for.
_ALREADY: Final = {
    "stop": ("STOPPING", "STOPPED"),
    "pause": ("PAUSING", "PAUSED"),
    "resume": ("STARTING", "STARTED"),
    "abandon": ("ABANDONED",),
    "recover": ("FAILED",),
    "cancel": ("STOPPED", "ABANDONED"),
    "approve": ("APPROVED",),
    "reject": ("REJECTED",),
}


def operator(request: Request) -> AsyncJobOperator:
    """The batch operator on the app's pool."""
    return AsyncJobOperator(db.client(request))


def schedules(request: Request) -> AsyncSchedules:
    """The scheduler client on the app's pool."""
    return AsyncSchedules(db.client(request))


def _functions_present(names: tuple[str, ...]) -> Op[set[str]]:
    return Op("select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
              "where n.nspname = 'pgbatch' and p.proname = any(%s)", (list(names),),
              lambda rows: {str(r[0]) for r in rows})


async def capabilities(request: Request) -> dict[str, bool]:
    """Which optional actions this database and library offer (``CAPABILITIES``):
    the SQL function is installed and the operator has the method. Read from the
    catalog at most every ``CAPABILITY_TTL_S`` seconds per app (a schema upgrade
    shows within that)."""
    state = request.app.state
    cached: tuple[float, dict[str, bool]] | None = getattr(state, "batch_capabilities", None)
    now = time.monotonic()
    if cached is not None and now - cached[0] < CAPABILITY_TTL_S:
        return cached[1]
    present = await db.client(request).run(
        _functions_present(tuple(f for f, _ in CAPABILITIES.values())))
    found = {name: function in present and hasattr(AsyncJobOperator, method)
             for name, (function, method) in CAPABILITIES.items()}
    state.batch_capabilities = (now, found)
    return found


async def require(request: Request, capability: str) -> None:
    """``WebError`` 501 ``NotAvailable`` unless ``capability`` is offered."""
    if not (await capabilities(request))[capability]:
        function = CAPABILITIES[capability][0]
        raise WebError(501, "NotAvailable", f"{capability} is not available: this database has "
                                            f"no pgbatch.{function} (upgrade the schema)")


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object ({} when empty); ``InvalidArgument`` otherwise."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidArgument(f"invalid body: larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("invalid body: not JSON") from None
    if not isinstance(value, dict):
        raise InvalidArgument("invalid body: must be a JSON object")
    return value


def actor(request: Request) -> str:
    """Who acts: the credential's name, or ``web`` on a server without credentials."""
    principal = request.scope.get("state", {}).get("principal")
    return str(principal.name) if principal is not None else "web"


def outcome_message(action: str, applied: bool, status: str) -> str:
    """What a transition did, as an operator reads it: ``"Not resumed: already resumed by
    another request (the run is STARTED)."``."""
    past = PAST.get(action, action)
    if applied:
        return f"{past.capitalize()}: the run is {status}."
    if status in _ALREADY.get(action, ()):
        reason = f"already {past} by another request"
    elif status in TERMINAL_STATUSES:
        reason = f"the run already ended {status}"
    else:
        reason = f"a {status} run cannot be {past}"
    return f"Not {past}: {reason} (the run is {status})."


def approval_message(action: str, applied: bool, status: str, execution_status: str) -> str:
    """What a gate decision did: ``"Not approved: already rejected by another request"``."""
    past = PAST[action]
    if applied:
        return f"{past.capitalize()}: the run is {execution_status}."
    if status in ("APPROVED", "REJECTED"):
        reason = f"already {status.lower()} by another request"
    else:
        reason = f"the approval is {status}"
    return f"Not {past}: {reason} (the run is {execution_status})."
