"""Parked executions: what a pause or an approval gate tells the application.

An execution *parks* when it stops holding a worker without ending: PAUSED
(processing logic called ``ctx.request_pause()`` or raised ``PauseJob``, an
operator paused it, a worker shut down with ``on_shutdown='pause'``) or
AWAITING_APPROVAL (it reached a gate step). The transaction that parks it
sends ``NOTIFY`` on :data:`PARKED_CHANNEL` with a JSON payload (see
:func:`parse_parked`), so any session can ``LISTEN`` and tell a person; and
the worker that parked it calls the executor's ``on_parked`` hook with a
:class:`Parked` after that transaction committed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

log = logging.getLogger("pgbatch.batch")

#: The channel every parking transaction notifies (``LISTEN pgbatch_batch_parked``).
#: Queue channels always end in 32 hex digits, so no queue shares it.
PARKED_CHANNEL = "pgbatch_batch_parked"


@dataclass(frozen=True)
class Parked:
    """One execution that parked.

    ``status`` is ``"PAUSED"`` or ``"AWAITING_APPROVAL"``; ``step`` the step it
    parked in (the gate's name at a gate); ``reason`` the pause reason;
    ``gate`` the gate's name (None for a pause); ``resume_at`` when a timed
    pause resumes by itself.
    """

    execution_id: int
    job_name: str
    status: str
    step: str | None = None
    reason: str | None = None
    gate: str | None = None
    resume_at: datetime | None = None


#: An application's callback for parked executions (called on the worker, after the commit).
ParkedHook = Callable[[Parked], None]


def parse_parked(payload: str) -> Parked:
    """The :class:`Parked` of a notification on :data:`PARKED_CHANNEL`.

    The payload is a JSON object with ``execution_id``, ``job_name``,
    ``status``, ``step``, ``reason``, ``gate`` and ``resume_at`` (an ISO 8601
    timestamp or null).
    """
    data: dict[str, Any] = json.loads(payload)
    resume_at = data.get("resume_at")
    return Parked(execution_id=int(data["execution_id"]), job_name=str(data["job_name"]),
                  status=str(data["status"]), step=data.get("step"), reason=data.get("reason"),
                  gate=data.get("gate"),
                  resume_at=datetime.fromisoformat(resume_at) if resume_at else None)


def call_parked_hook(hook: ParkedHook | None, parked: Parked) -> None:
    """Call ``hook`` with ``parked``; an exception in it is logged, never raised."""
    if hook is None:
        return
    try:
        hook(parked)
    except Exception:
        log.exception("the on_parked hook failed for execution %s", parked.execution_id)
