"""The schedules pages: ``/schedules`` (next due, watermark, last outcome,
coalesced counts), ``/schedules/{schedule}`` (its run history; pause, resume with
or without catch-up, trigger now, backfill) and the create/edit wizard
(``/schedules/-/new``, ``/schedules/-/edit/{schedule}``): a Target step (a batch
job and its parameters, or a queue and a payload), a Schedule step (kind,
expression, interval anchor, time zone, misfire threshold, catch-up window)
with a preview of the next occurrences of every kind by the scheduler's own
rule (``schedule_occurrences``, DST changes marked), then create or save.
The wizard's form becomes the same JSON body the REST API takes
(:mod:`pgbatch.web.api.schedules`), so both validate alike; a refusal
re-renders the wizard with the PB code and message, nothing created.

Every schedule name is reachable: the name is the rest of the path
(``{schedule:path}``, links percent-encode it), actions are POSTs ending in a
fixed word, and the wizard lives under ``/schedules/-/`` (no name starts with
``-``). The old wizard paths ``/schedules/new`` and ``/schedules/{name}/edit``
still open the wizard while no schedule has that name (``new``, ``x/edit``).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from pgbatch._errors import InvalidArgument, InvalidSchedule, PgBatchError, ScheduleNotFound
from pgbatch.schedule.types import Schedule
from pgbatch.web import params
from pgbatch.web.api.batch_calls import schedules
from pgbatch.web.api.schedule_preview import Occurrence, Timing, preview, seconds
from pgbatch.web.api.schedules import changes_from, definition_from, schedule_name
from pgbatch.web.errors import status_of
from pgbatch.web.templating import path_for, render

#: The wizard's fields and their defaults.
FIELDS: Final = {"name": "", "target": "batch", "job_name": "", "params": "{}", "queue": "",
                 "payload": "{}", "kind": "cron", "expression": "", "anchor": "", "tz": "UTC",
                 "misfire_threshold": "60", "catch_up_window": "", "overlap_policy": "allow"}
KINDS: Final = ("cron", "interval", "once", "manual")
OVERLAP: Final = ("allow", "skip", "queue")
#: The old edit path's last segment (``/schedules/{name}/edit``).
LEGACY_EDIT: Final = "/edit"
#: Occurrences the wizard previews.
PREVIEW_COUNT: Final = 12
NOTICES: Final = {"paused": "Paused: nothing fires until it is resumed.",
                  "resumed": "Resumed.", "resumed_catch_up": "Resumed with catch-up: the "
                  "latest missed occurrence within the window fires once.",
                  "created": "Created.", "saved": "Saved."}


def _seconds(value: timedelta | None) -> str:
    return "" if value is None else f"{value.total_seconds():g}"


def form_of(schedule: Schedule) -> dict[str, str]:
    """The wizard's fields for an existing schedule."""
    expression = {"cron": schedule.cron or "", "interval": _seconds(schedule.every),
                  "once": schedule.once_at.isoformat() if schedule.once_at else ""}
    return {"name": schedule.name, "target": schedule.target,
            "job_name": schedule.job_name or "", "params": json.dumps(schedule.params),
            "queue": schedule.queue or "", "payload": json.dumps(schedule.payload),
            "kind": schedule.kind, "expression": expression.get(schedule.kind, ""),
            "anchor": schedule.anchor.isoformat() if schedule.anchor else "",
            "tz": schedule.tz, "misfire_threshold": _seconds(schedule.misfire_threshold),
            "catch_up_window": _seconds(schedule.catch_up_missed_within),
            "overlap_policy": schedule.overlap_policy}


def _number(name: str, text: str) -> float | None:
    if text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidSchedule(f"invalid {name}: {text[:40]!r} is not a number of seconds") \
            from None


def _object(name: str, text: str) -> Any:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        raise InvalidArgument(f"invalid {name}: not JSON") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {name}: must be a JSON object")
    return value


def body_of(form: dict[str, str], *, edit: bool) -> dict[str, Any]:
    """The REST body (create) or change set (edit) the wizard's fields stand for."""
    kind, expr = form["kind"], form["expression"].strip()
    if kind not in KINDS:
        raise InvalidSchedule(f"invalid kind: {kind[:40]!r}, must be one of {', '.join(KINDS)}")
    body: dict[str, Any] = {"tz": form["tz"] or "UTC",
                            "misfire_threshold": _number("misfire threshold",
                                                         form["misfire_threshold"]),
                            "scheduleCatchUpWindow": _number("catch-up window",
                                                             form["catch_up_window"]),
                            "overlap_policy": form["overlap_policy"]}
    when_key = {"cron": "cron", "interval": "every", "once": "once_at", "manual": "manual"}[kind]
    when: Any = _number("interval", expr) if kind == "interval" else \
        True if kind == "manual" else expr
    if kind == "interval" and form["anchor"].strip():
        body["anchor"] = form["anchor"].strip()
    if form["target"] == "queue":
        body |= {"queue": form["queue"], "payload": _object("payload", form["payload"])}
    else:
        body |= {"job_name": form["job_name"], "params": _object("params", form["params"])}
    if edit:
        if body["scheduleCatchUpWindow"] is None:
            body["scheduleCatchUpWindow"] = 0
        body["kind"] = kind
        if kind != "manual":
            body[{"cron": "cron_expr", "interval": "every", "once": "once_at"}[kind]] = when
        return body
    return {"name": form["name"], when_key: when, **body}


def timing_of(form: dict[str, str]) -> Timing:
    """The timing the wizard's Schedule step gives (what the preview shows)."""
    kind, expr, tz = form["kind"], form["expression"].strip(), form["tz"] or "UTC"
    if kind not in KINDS:
        raise InvalidSchedule(f"invalid kind: {kind[:40]!r}, must be one of {', '.join(KINDS)}")
    if kind == "cron":
        return Timing("cron", cron=expr, tz=tz)
    if kind == "interval":
        return Timing("interval", tz=tz, every=seconds("interval", expr),
                      anchor=params.time("anchor", form["anchor"].strip()))
    if kind == "once":
        return Timing("once", tz=tz, once_at=params.time("once_at", expr))
    return Timing("manual", tz=tz)


def _fields(form: FormData) -> dict[str, str]:
    values: dict[str, str] = dict(FIELDS)
    for key in FIELDS:
        value = form.get(key)
        if isinstance(value, str):
            values[key] = value[:4000]
    return values


async def _wizard(request: Request, form: dict[str, str], *, editing: str | None,
                  occurrences: list[Occurrence] | None = None, error: dict[str, str] | None = None,
                  status_code: int = 200) -> Response:
    return render(request, "schedules_wizard.html", {
        "form": form, "editing": editing, "kinds": KINDS, "overlaps": OVERLAP,
        "occurrences": occurrences, "error": error}, status_code=status_code)


async def new_page(request: Request) -> Response:
    """The wizard, empty."""
    return await _wizard(request, dict(FIELDS), editing=None)


async def edit_page(request: Request) -> Response:
    """The wizard with a schedule's current definition."""
    name = schedule_name(request.path_params["schedule"])
    return await _wizard(request, form_of(await schedules(request).get(name)), editing=name)


async def wizard_post(request: Request) -> Response:
    """``step=preview``: show the next occurrences; ``step=save``: create or update."""
    editing = request.path_params.get("schedule")
    if editing is not None:
        editing = schedule_name(editing)
    form = _fields(await request.form())
    if editing is not None:
        form["name"] = editing
    step = (await request.form()).get("step", "preview")
    try:
        if step == "save":
            if editing is None:
                created = await schedules(request).create(definition_from(body_of(form,
                                                                                  edit=False)))
                name, notice = created.name, "created"
            else:
                await schedules(request).update(editing, **changes_from(body_of(form, edit=True)))
                name, notice = editing, "saved"
            return RedirectResponse(path_for(request, "schedule", schedule=name) +
                                    f"?notice={notice}", status_code=303)
        occurrences = await preview(request, timing_of(form), PREVIEW_COUNT)
        return await _wizard(request, form, editing=editing, occurrences=occurrences)
    except PgBatchError as exc:
        return await _wizard(request, form, editing=editing, status_code=status_of(exc),
                             error={"code": exc.sqlstate or "", "error": type(exc).__name__,
                                    "message": exc.message})


async def schedules_page(request: Request) -> Response:
    """Every schedule."""
    return render(request, "schedules.html", {"schedules": await schedules(request).list()})


async def schedule_page(request: Request) -> Response:
    """One schedule and its fires."""
    name = schedule_name(request.path_params["schedule"])
    client = schedules(request)
    try:
        schedule = await client.get(name)
    except ScheduleNotFound:
        # the wizard's old paths, while no schedule has their name
        if name == "new":
            return await new_page(request)
        if name.endswith(LEGACY_EDIT) and len(name) > len(LEGACY_EDIT):
            editing = name[:-len(LEGACY_EDIT)]
            return await _wizard(request, form_of(await client.get(editing)), editing=editing)
        raise
    notice = request.query_params.get("notice", "")
    fired = request.query_params.get("fired")
    return render(request, "schedules_detail.html", {
        "s": schedule, "history": await client.history(name, limit=100),
        "notice": NOTICES.get(notice) or (f"Backfilled: {fired} fire(s)."
                                          if notice == "backfilled" and (fired or "").isdigit()
                                          else "Triggered." if notice == "triggered" else None)})


def _back(request: Request, name: str, notice: str, **extra: str) -> Response:
    return RedirectResponse(path_for(request, "schedule", schedule=name) + "?" +
                            urlencode({"notice": notice, **extra}), status_code=303)


async def pause(request: Request) -> Response:
    """Form action: ``pause_schedule``."""
    name = schedule_name(request.path_params["schedule"])
    await schedules(request).pause(name)
    return _back(request, name, "paused")


async def resume(request: Request) -> Response:
    """Form action: ``resume_schedule``, with catch-up when the box is ticked."""
    name = schedule_name(request.path_params["schedule"])
    catch_up = (await request.form()).get("catch_up") == "on"
    await schedules(request).resume(name, catch_up=catch_up)
    return _back(request, name, "resumed_catch_up" if catch_up else "resumed")


async def trigger(request: Request) -> Response:
    """Form action: ``trigger_schedule``."""
    name = schedule_name(request.path_params["schedule"])
    await schedules(request).trigger(name)
    return _back(request, name, "triggered")


async def backfill(request: Request) -> Response:
    """Form action: ``backfill_schedule`` from the form's start and end."""
    name = schedule_name(request.path_params["schedule"])
    form = await request.form()
    start = params.time("start", str(form.get("start") or ""))
    end = params.time("end", str(form.get("end") or ""))
    if start is None or end is None:
        raise InvalidArgument("invalid backfill: start and end are required")
    fires = await schedules(request).backfill(name, start, end, force=form.get("force") == "on")
    return _back(request, name, "backfilled", fired=str(len(fires)))


def routes() -> list[Route]:
    """The schedules pages, the wizard and the actions."""
    return [
        Route("/schedules", schedules_page, name="schedules"),
        Route("/schedules/-/new", new_page, name="schedule_new"),
        Route("/schedules/-/new", wizard_post, methods=["POST"], name="schedule_new_post"),
        Route("/schedules/-/edit/{schedule:path}", edit_page, name="schedule_edit"),
        Route("/schedules/-/edit/{schedule:path}", wizard_post, methods=["POST"],
              name="schedule_edit_post"),
        Route("/schedules/new", wizard_post, methods=["POST"], name="schedule_new_post_old"),
        Route("/schedules/{schedule:path}/edit", wizard_post, methods=["POST"],
              name="schedule_edit_post_old"),
        Route("/schedules/{schedule:path}", schedule_page, name="schedule"),
        Route("/schedules/{schedule:path}/pause", pause, methods=["POST"],
              name="schedule_pause"),
        Route("/schedules/{schedule:path}/resume", resume, methods=["POST"],
              name="schedule_resume"),
        Route("/schedules/{schedule:path}/trigger", trigger, methods=["POST"],
              name="schedule_trigger"),
        Route("/schedules/{schedule:path}/backfill", backfill, methods=["POST"],
              name="schedule_backfill"),
    ]
