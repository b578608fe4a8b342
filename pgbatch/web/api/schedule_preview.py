"""The preview of a schedule's next occurrences, for every kind create_schedule takes.

One SQL call, ``pgbatch.schedule_occurrences(kind, cron_expr, tz, every,
anchor, once_at, max_count => n)``: the instants the scheduler itself would
make due after the database clock (cron in the schedule's time zone;
interval ``anchor + k * every`` in UTC arithmetic, the anchor defaulting to
now as ``create_schedule`` defaults it to the creation time; once at
``once_at``; manual: none), so the preview never disagrees with the
scheduler. Each occurrence comes with its local time and UTC offset in the
schedule's zone; a changed offset marks a DST change. Refusals are the
database's (``InvalidCron`` PB020, ``InvalidTimeZone`` PB021,
``InvalidSchedule`` PB061, ``InvalidTime`` PB013), 400s that change nothing.

``GET /api/v1/schedules/-/preview`` (``-`` starts no schedule name, so the
path is no schedule's); the old ``/api/v1/schedules/preview`` still answers
while no schedule is named ``preview`` (see :mod:`pgbatch.web.api.schedules`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import Response

from pgbatch._errors import InvalidArgument, InvalidSchedule
from pgbatch._ops import Op
from pgbatch.web import db, params
from pgbatch.web.api.common import as_json, ok
from pgbatch.web.openapi import ApiRoute, Param

#: Most occurrences a preview shows.
MAX_PREVIEW: Final = 50
#: The longest duration a field takes, in seconds (beyond, no timedelta or interval holds it).
MAX_SECONDS: Final = 1e12
#: The kinds a preview takes (manual has no occurrence).
KINDS: Final = ("cron", "interval", "once", "manual")


@dataclass(frozen=True)
class Timing:
    """When a schedule fires: ``kind`` and that kind's fields, as create_schedule takes them."""

    kind: str
    cron: str | None = None
    tz: str = "UTC"
    every: timedelta | None = None
    anchor: datetime | None = None
    once_at: datetime | None = None


@dataclass(frozen=True)
class Occurrence:
    """One previewed occurrence: the instant, its local time and UTC offset in the
    schedule's zone, and whether the offset differs from the previous occurrence's
    (a DST change happened in between)."""

    at: datetime
    local: str
    utc_offset: str
    offset_changed: bool


def _offset_text(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    return f"{sign}{hours:02d}:{rest // 60:02d}"


def preview_op(timing: Timing, count: int) -> Op[list[Occurrence]]:
    """``schedule_occurrences(...)`` after the database clock, with local times (to the
    minute, or to the second when an occurrence is not on a whole minute)."""
    def decode(rows: list[Any]) -> list[Occurrence]:
        found: list[Occurrence] = []
        previous: str | None = None
        with_seconds = any(r["local"].second or r["local"].microsecond for r in rows)
        shape = "%Y-%m-%d %a %H:%M:%S" if with_seconds else "%Y-%m-%d %a %H:%M"
        for r in rows:
            offset = _offset_text(int(r["offset_s"]))
            found.append(Occurrence(r["at"], r["local"].strftime(shape), offset,
                                    previous is not None and offset != previous))
            previous = offset
        return found

    return Op("select o as at, o at time zone z as local,"
              " extract(epoch from (o at time zone z) - (o at time zone 'UTC')) as offset_s"
              " from (select %s::text as z) t, pgbatch.schedule_occurrences(%s,"
              " cron_expr => %s, tz => t.z, every => %s, anchor => %s, once_at => %s,"
              " max_count => %s) o order by o",
              (timing.tz, timing.kind, timing.cron, timing.every, timing.anchor,
               timing.once_at, count), decode, dict_row)


async def preview(request: Request, timing: Timing, count: int) -> list[Occurrence]:
    """The next ``count`` occurrences of ``timing`` (1 to ``MAX_PREVIEW``)."""
    if not 1 <= count <= MAX_PREVIEW:
        raise InvalidArgument(f"invalid count: {count}, must be 1 to {MAX_PREVIEW}")
    return await db.client(request).run(preview_op(timing, count))


def seconds(name: str, text: str | None) -> timedelta | None:
    """A duration in seconds from a query or form field (None when empty)."""
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidSchedule(f"invalid {name}: {text[:40]!r} is not a number of seconds") \
            from None
    if not math.isfinite(value) or abs(value) > MAX_SECONDS:
        raise InvalidSchedule(f"invalid {name}: {text[:40]!r} is not a number of seconds "
                              f"(at most {MAX_SECONDS:.0e})")
    return timedelta(seconds=value)


def timing_from_query(request: Request) -> Timing:
    """The timing a preview request gives: ``kind`` (else the one whose field is given)
    with ``cron``, ``every`` (seconds) and ``anchor``, or ``once_at``; ``tz``."""
    q = request.query_params
    cron = q.get("cron") or q.get("expression") or None
    every = seconds("every", q.get("every"))
    once_at = params.time("once_at", q.get("once_at"))
    kind = q.get("kind") or ("cron" if cron is not None else "interval" if every is not None
                             else "once" if once_at is not None else "cron")
    if kind not in KINDS:
        raise InvalidSchedule(f"invalid kind: {kind[:40]!r}, must be one of {', '.join(KINDS)}")
    return Timing(kind, cron=cron if kind == "cron" else None, tz=q.get("tz") or "UTC",
                  every=every if kind == "interval" else None,
                  anchor=params.time("anchor", q.get("anchor")) if kind == "interval" else None,
                  once_at=once_at if kind == "once" else None)


async def preview_route(request: Request) -> Response:
    """The next occurrences of a schedule's timing."""
    count_text = request.query_params.get("count") or "10"
    try:
        count = int(count_text)
    except ValueError:
        raise InvalidArgument(f"invalid count: {count_text[:20]!r} is not an integer") from None
    return ok(as_json(await preview(request, timing_from_query(request), count)))


def route() -> ApiRoute:
    """``GET /api/v1/schedules/-/preview``."""
    return ApiRoute(
        "/schedules/-/preview", preview_route, name="api_schedule_preview",
        params=[Param("kind", "query", "cron, interval, once or manual (default: the kind "
                                       "whose field is given)"),
                Param("cron", "query", "the cron expression (kind cron)"),
                Param("every", "query", "seconds between occurrences (kind interval)",
                      schema_type="number"),
                Param("anchor", "query", "ISO 8601: an occurrence of the interval (default: "
                                         "now, as create_schedule defaults it)"),
                Param("once_at", "query", "ISO 8601: the one occurrence (kind once)"),
                Param("tz", "query", "IANA time zone (default UTC)"),
                Param("count", "query", f"1 to {MAX_PREVIEW} (default 10)",
                      schema_type="integer")],
        result={"type": "array", "items": {"type": "object"}},
        summary="the next occurrences after the database clock by the scheduler's rule "
                "(schedule_occurrences), each with local time and UTC offset; "
                "offset_changed marks DST changes")
