"""``/api/v1/schedules``: list, one schedule with its run history, create, edit,
pause, resume (with or without catch-up), trigger now, backfill; the preview
of the next occurrences is :mod:`pgbatch.web.api.schedule_preview`.

Each is one scheduler SQL function through ``AsyncSchedules``:
``schedules()``, ``schedule_fires()``, ``create_schedule``,
``update_schedule``, ``pause_schedule``, ``resume_schedule``,
``trigger_schedule`` (``Idempotency-Key`` → its ``request_id``: a retried
trigger fires once), ``backfill_schedule``. A create body is a
``ScheduleDefinition`` as JSON: its field names or camelCase forms, so
``scheduleCatchUpWindow`` (seconds) is the catch-up window. The database
validates; its refusals (``InvalidCron`` PB020, ``InvalidTimeZone`` PB021,
``InvalidSchedule`` PB061, …) are 400s and change nothing.

Every schedule name is reachable: the name is the rest of the path
(``{schedule:path}``, percent-encoded, so ``a/b`` is ``a%2Fb`` or ``a/b``),
the actions are POSTs ending in a fixed word (``…/pause``), and the routes
that are not a schedule's live under ``/schedules/-/`` (no name starts with
``-``). ``GET /schedules/preview``, the preview's old path, still answers
while no schedule is named ``preview``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pgbatch._errors import InvalidArgument, InvalidSchedule, PgBatchError, ScheduleNotFound
from pgbatch.schedule.definition import ScheduleDefinition
from pgbatch.web import params
from pgbatch.web.api import schedule_preview
from pgbatch.web.api.batch_calls import json_body, schedules
from pgbatch.web.api.common import as_json, ok
from pgbatch.web.openapi import IDEMPOTENCY_KEY, ApiRoute, Param

NAME = Param("schedule", "path", "the schedule's name (percent-encoded; a / may stay as is)")
#: The preview's path before ``/schedules/-/preview``; served while no schedule has the name.
LEGACY_PREVIEW: Final = "preview"
#: Longest schedule name the web passes on (the database refuses bad ones itself).
MAX_NAME: Final = 200
#: JSON names of update fields -> update_schedule's argument names.
UPDATE_ALIASES: Final = {
    "cron": "cron_expr", "expression": "cron_expr", "timeZone": "tz",
    "scheduleCatchUpWindow": "catchup_window", "catch_up_missed_within": "catchup_window",
    "catchUpMissedWithin": "catchup_window", "misfireThreshold": "misfire_threshold",
    "overlapPolicy": "overlap_policy", "onceAt": "once_at", "jobName": "job_name",
}
#: update_schedule's arguments and the JSON type each takes.
UPDATE_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "kind": (str,), "cron_expr": (str,), "tz": (str,), "every": (int, float),
    "anchor": (str,), "once_at": (str,), "queue": (str,), "payload": (dict,),
    "job_name": (str,), "params": (dict,), "misfire_threshold": (int, float),
    "catchup_window": (int, float), "overlap_policy": (str,),
}
#: The JSON type of each ScheduleDefinition field a create body may give.
CREATE_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "name": (str,), "cron": (str,), "every": (int, float), "anchor": (str,),
    "once_at": (str,), "manual": (bool,), "tz": (str,), "queue": (str,), "payload": (dict,),
    "task": (str,), "kwargs": (dict,), "job_name": (str,), "params": (dict,),
    "misfire_threshold": (int, float), "catch_up_missed_within": (int, float),
    "overlap_policy": (str,), "enabled": (bool,),
}
_DURATIONS: Final = ("every", "misfire_threshold", "catchup_window")
_INSTANTS: Final = ("anchor", "once_at")
DEFINITION_BODY: dict[str, Any] = {
    "type": "object", "required": ["name"],
    "description": "a ScheduleDefinition: name; exactly one of cron, every (seconds), once_at "
                   "(ISO 8601) or manual: true; tz; queue and payload, or job_name and params; "
                   "misfire_threshold and scheduleCatchUpWindow (seconds); overlap_policy; "
                   "enabled",
    "properties": {k: {"type": "string"} for k in ("name", "cron", "tz", "queue", "job_name")}
    | {"scheduleCatchUpWindow": {"type": "number", "description": "catch-up window, seconds"}},
}


def schedule_name(text: str) -> str:
    """A schedule name from a path or form (at most ``MAX_NAME`` characters)."""
    if not text or len(text) > MAX_NAME:
        raise InvalidSchedule(f"invalid schedule name: must be 1 to {MAX_NAME} characters")
    return text


def _typed(field: str, value: Any, types: tuple[type, ...]) -> None:
    ok_type = isinstance(value, types) and not (bool not in types and isinstance(value, bool))
    if not ok_type:
        names = " or ".join("number" if t in (int, float) else t.__name__ for t in types)
        raise InvalidSchedule(f"invalid {field}: must be a {names}")


def definition_from(body: dict[str, Any]) -> ScheduleDefinition:
    """The ``ScheduleDefinition`` of a create body; ``InvalidSchedule`` for a bad one."""
    aliased = {({"scheduleCatchUpWindow": "catch_up_missed_within",
                 "catchUpMissedWithin": "catch_up_missed_within",
                 "catchup_window": "catch_up_missed_within",
                 "misfireThreshold": "misfire_threshold", "overlapPolicy": "overlap_policy",
                 "onceAt": "once_at", "jobName": "job_name", "timeZone": "tz"}).get(k, k): v
               for k, v in body.items()}
    unknown = sorted(set(aliased) - set(CREATE_TYPES))
    if unknown:
        raise InvalidSchedule(f"schedule definition: unknown field(s) {', '.join(unknown)}")
    for key, value in aliased.items():
        if value is not None:
            _typed(key, value, CREATE_TYPES[key])
    if "name" not in aliased:
        raise InvalidSchedule("schedule definition: name is required")
    schedule_name(aliased["name"])
    try:
        return ScheduleDefinition.from_json({k: v for k, v in aliased.items() if v is not None})
    except PgBatchError:
        raise
    except (TypeError, ValueError) as exc:
        raise InvalidSchedule(f"schedule definition: {str(exc)[:200]}") from None


def changes_from(body: dict[str, Any]) -> dict[str, Any]:
    """``update_schedule`` arguments from an edit body; ``InvalidSchedule`` for a bad one."""
    changes: dict[str, Any] = {}
    for key, value in body.items():
        name = UPDATE_ALIASES.get(key, key)
        if name not in UPDATE_TYPES:
            raise InvalidSchedule(f"schedule change: unknown field {key[:60]!r}")
        if value is None:
            continue
        _typed(name, value, UPDATE_TYPES[name])
        if name in _DURATIONS:
            changes[name] = timedelta(seconds=value)
        elif name in _INSTANTS:
            changes[name] = params.time(name, value)
        else:
            changes[name] = value
    return changes


def _flag(value: Any, name: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "on", "yes", "false", "0",
                                                    "off", "no", ""):
        return value.lower() in ("true", "1", "on", "yes")
    raise InvalidArgument(f"invalid {name}: must be true or false")


async def list_schedules(request: Request) -> Response:
    """Every schedule with its state."""
    return ok(as_json(await schedules(request).list()))


async def get_schedule(request: Request) -> Response:
    """One schedule and its fires (run history), newest first."""
    name = schedule_name(request.path_params["schedule"])
    client = schedules(request)
    try:
        schedule = await client.get(name)
    except ScheduleNotFound:
        if name == LEGACY_PREVIEW:  # the preview's old path, while no schedule takes it
            return await schedule_preview.preview_route(request)
        raise
    limit = params.limit(request.query_params.get("limit"))
    return ok({"schedule": as_json(schedule), "history": as_json(await client.history(
        name, limit=limit))})


async def create(request: Request) -> Response:
    """Create a schedule from a JSON definition."""
    definition = definition_from(await json_body(request))
    return ok(await schedules(request).create(definition), status=201)


async def update(request: Request) -> Response:
    """Change the given fields of a schedule."""
    name = schedule_name(request.path_params["schedule"])
    changes = changes_from(await json_body(request))
    return ok(await schedules(request).update(name, **changes))


async def pause(request: Request) -> Response:
    """Pause a schedule."""
    return ok(await schedules(request).pause(schedule_name(request.path_params["schedule"])))


async def resume(request: Request) -> Response:
    """Resume a schedule, with catch-up when the body or query says ``catch_up``."""
    name = schedule_name(request.path_params["schedule"])
    body = await json_body(request)
    catch_up = _flag(body.get("catch_up", request.query_params.get("catch_up")), "catch_up")
    return ok(await schedules(request).resume(name, catch_up=catch_up))


async def trigger(request: Request) -> Response:
    """Fire a schedule now; with ``Idempotency-Key`` a retried request fires once."""
    name = schedule_name(request.path_params["schedule"])
    req = params.request_id(request, f"trigger:{name}")
    return ok(await schedules(request).trigger(name, request_id=None if req is None else str(req)))


async def backfill(request: Request) -> Response:
    """Fire the occurrences from ``start`` to ``end`` (ISO 8601)."""
    name = schedule_name(request.path_params["schedule"])
    body = await json_body(request)
    start = params.time("start", _text(body.get("start"), "start"))
    end = params.time("end", _text(body.get("end"), "end"))
    if start is None or end is None:
        raise InvalidArgument("invalid backfill: start and end are required")
    return ok(as_json(await schedules(request).backfill(
        name, start, end, force=_flag(body.get("force"), "force"))))


def _text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidArgument(f"invalid {name}: must be an ISO 8601 string")


def routes() -> list[Route]:
    """The schedule routes."""
    fire = {"type": "object", "description": "a fire: schedule_fires row"}
    sched = {"type": "object", "description": "a schedules() row"}
    return [
        ApiRoute("/schedules", list_schedules, name="api_schedules", result={
                     "type": "array", "items": sched},
                 summary="every schedule (schedules): next_due_at, last_fire_at (the "
                         "watermark), last_outcome, coalesced_total, paused_at"),
        schedule_preview.route(),
        ApiRoute("/schedules", create, name="api_schedule_create", action=True,
                 body=DEFINITION_BODY, result=sched,
                 summary="create a schedule (create_schedule); scheduleCatchUpWindow is the "
                         "catch-up window in seconds; 201"),
        ApiRoute("/schedules/{schedule:path}", get_schedule, name="api_schedule",
                 params=[NAME, Param("limit", "query", "fires to return",
                                     schema_type="integer")],
                 summary="one schedule and its run history (schedule_fires), newest first"),
        ApiRoute("/schedules/{schedule:path}/update", update, name="api_schedule_update",
                 action=True, params=[NAME], result=sched, body={"type": "object"},
                 summary="change fields (update_schedule): kind, cron_expr, tz, every, "
                         "misfire_threshold, scheduleCatchUpWindow, overlap_policy, …"),
        ApiRoute("/schedules/{schedule:path}/pause", pause, name="api_schedule_pause",
                 action=True, params=[NAME], result=sched,
                 summary="pause a schedule (pause_schedule)"),
        ApiRoute("/schedules/{schedule:path}/resume", resume, name="api_schedule_resume",
                 action=True, params=[NAME, Param("catch_up", "query",
                                                  "fire the latest missed occurrence once "
                                                  "(within the window)",
                                                  schema_type="boolean")], result=sched,
                 body={"type": "object", "properties": {"catch_up": {"type": "boolean"}}},
                 summary="resume a schedule (resume_schedule), with or without catch-up"),
        ApiRoute("/schedules/{schedule:path}/trigger", trigger, name="api_schedule_trigger",
                 action=True, params=[NAME, IDEMPOTENCY_KEY], result=fire,
                 summary="fire now (trigger_schedule, source manual); the same "
                         "Idempotency-Key fires once"),
        ApiRoute("/schedules/{schedule:path}/backfill", backfill, name="api_schedule_backfill",
                 action=True, params=[NAME],
                 body={"type": "object", "required": ["start", "end"], "properties": {
                     "start": {"type": "string"}, "end": {"type": "string"},
                     "force": {"type": "boolean"}}},
                 result={"type": "array", "items": fire},
                 summary="fire the occurrences from start to end (backfill_schedule)"),
    ]
