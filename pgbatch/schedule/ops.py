"""The scheduler's SQL calls as ``pgbatch._ops.Op`` objects: the sync and async
clients (``client.py``) run the same ones."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pgbatch._ops import Op, Row
from pgbatch.schedule.definition import ScheduleDefinition
from pgbatch.schedule.types import Schedule, ScheduleFire


def _schedule(rows: list[Row]) -> Schedule:
    return Schedule.from_row(rows[0])


def _schedules(rows: list[Row]) -> list[Schedule]:
    return [Schedule.from_row(r) for r in rows]


def _fire(rows: list[Row]) -> ScheduleFire:
    return ScheduleFire.from_row(rows[0])


def _fires(rows: list[Row]) -> list[ScheduleFire]:
    return [ScheduleFire.from_row(r) for r in rows]


def _bool(rows: list[Row]) -> bool:
    return bool(rows[0]["result"])


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def _named_call(function: str, args: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """``select * from pgbatch.<function>(name => %s, ...)`` of the given arguments."""
    names = list(args)
    query = (f"select * from pgbatch.{function}("
             + ", ".join(f"{n} => %s" for n in names) + ")")
    return query, tuple(args[n] for n in names)


_JSON_ARGS = ("payload", "params")


def _with_json(args: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _json(v) if k in _JSON_ARGS else v for k, v in args.items()}


def create(definition: ScheduleDefinition) -> Op[Schedule]:
    """``create_schedule`` of ``definition``."""
    query, params = _named_call("create_schedule", _with_json(definition.sql_args()))
    return Op(query, params, _schedule, dict_row)


def ensure(definition: ScheduleDefinition) -> Op[Schedule]:
    """``ensure_schedule`` of ``definition``: create it, or bring it up to date."""
    query, params = _named_call("ensure_schedule", _with_json(definition.sql_args()))
    return Op(query, params, _schedule, dict_row)


#: What ``update_schedule`` may change (None leaves a field as it is).
UPDATABLE = ("kind", "cron_expr", "tz", "every", "anchor", "once_at", "queue", "payload",
             "job_name", "params", "misfire_threshold", "catchup_window", "overlap_policy")


def update(name: str, changes: Mapping[str, Any]) -> Op[Schedule]:
    """``update_schedule(name, ...)`` with the given changes (SQL argument names)."""
    unknown = sorted(set(changes) - set(UPDATABLE))
    if unknown:
        raise TypeError(f"update_schedule has no argument(s) {', '.join(unknown)}")
    args = {"schedule_id": name, **{k: v for k, v in changes.items() if v is not None}}
    query, params = _named_call("update_schedule", _with_json(args))
    return Op(query, params, _schedule, dict_row)


def delete(name: str) -> Op[bool]:
    """``delete_schedule``."""
    return Op("select pgbatch.delete_schedule(schedule_id => %s) as result", (name,), _bool,
              dict_row)


def pause(name: str) -> Op[Schedule]:
    """``pause_schedule``."""
    return Op("select * from pgbatch.pause_schedule(schedule_id => %s)", (name,), _schedule,
              dict_row)


def resume(name: str, catch_up: bool) -> Op[Schedule]:
    """``resume_schedule``."""
    return Op("select * from pgbatch.resume_schedule(schedule_id => %s, catch_up => %s)",
              (name, catch_up), _schedule, dict_row)


def trigger(name: str, request_id: str | None) -> Op[ScheduleFire]:
    """``trigger_schedule``."""
    return Op("select * from pgbatch.trigger_schedule(schedule_id => %s, request_id => %s)",
              (name, request_id), _fire, dict_row)


def backfill(name: str, start: datetime, end: datetime, force: bool) -> Op[list[ScheduleFire]]:
    """``backfill_schedule``."""
    return Op("select * from pgbatch.backfill_schedule(schedule_id => %s, from_time => %s,"
              " to_time => %s, force => %s)", (name, start, end, force), _fires, dict_row)


def list_schedules(name: str | None = None) -> Op[list[Schedule]]:
    """``schedules``: all, or the one named."""
    return Op("select * from pgbatch.schedules(schedule_id => %s)", (name,), _schedules,
              dict_row)


def get(name: str) -> Op[Schedule]:
    """``schedules(name)``: the one named (ScheduleNotFound otherwise)."""
    return Op("select * from pgbatch.schedules(schedule_id => %s)", (name,), _schedule,
              dict_row)


def history(name: str, limit: int) -> Op[list[ScheduleFire]]:
    """``schedule_fires``."""
    return Op('select * from pgbatch.schedule_fires(schedule_id => %s, "limit" => %s)',
              (name, limit), _fires, dict_row)


def tick(node_id: str | None, max_schedules: int) -> Op[list[ScheduleFire]]:
    """``tick_schedules``."""
    return Op("select * from pgbatch.tick_schedules(node_id => %s, max_schedules => %s)",
              (node_id, max_schedules), _fires, dict_row)
