"""What a schedule is made of, as given by code or JSON: ``ScheduleDefinition``.

A definition says when (exactly one of ``cron``, ``every``, ``once_at``, or
``manual=True``) and what (a queue job: ``queue`` and ``payload``, or a task
by name: ``task`` and ``kwargs``; or a batch job launch: ``job_name`` and
``params``). ``sql_args()`` gives the named arguments of
``pgbatch.create_schedule``; the database validates them (docs/schedules.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pgbatch._errors import InvalidSchedule
from pgbatch._types import Json
from pgbatch.schedule.types import OverlapPolicy, ScheduleKind

#: Lateness still counted as on time, when a definition does not say.
DEFAULT_MISFIRE_THRESHOLD = timedelta(seconds=60)

#: JSON field names of ``ScheduleDefinition.from_json`` (camelCase accepted too).
_JSON_ALIASES = {
    "scheduleCatchUpWindow": "catch_up_missed_within",
    "catchUpMissedWithin": "catch_up_missed_within",
    "catchup_window": "catch_up_missed_within",
    "misfireThreshold": "misfire_threshold",
    "overlapPolicy": "overlap_policy",
    "onceAt": "once_at",
    "jobName": "job_name",
    "timeZone": "tz",
}
_JSON_DURATIONS = ("every", "misfire_threshold", "catch_up_missed_within")


@dataclass(frozen=True)
class ScheduleDefinition:
    """A schedule to create (or keep up to date: ``Schedules.ensure``).

    ``catch_up_missed_within``: a missed occurrence at most this old still
    fires once after downtime (None: only lateness up to
    ``misfire_threshold`` fires). ``overlap_policy``: ``allow``, ``skip``
    (record ``skipped_overlap`` while a previous fire's run is active) or
    ``queue`` (wait for it, within the window).
    """

    name: str
    cron: str | None = None
    every: timedelta | None = None
    anchor: datetime | None = None
    once_at: datetime | None = None
    manual: bool = False
    tz: str = "UTC"
    queue: str | None = None
    payload: Mapping[str, Json] | None = None
    task: str | None = None
    kwargs: Mapping[str, Json] = field(default_factory=dict)
    job_name: str | None = None
    params: Mapping[str, Json] | None = None
    misfire_threshold: timedelta = DEFAULT_MISFIRE_THRESHOLD
    catch_up_missed_within: timedelta | None = None
    overlap_policy: OverlapPolicy = "allow"
    enabled: bool = True

    def __post_init__(self) -> None:
        given = [n for n, v in (("cron", self.cron), ("every", self.every),
                                ("once_at", self.once_at)) if v is not None]
        if self.manual:
            given.append("manual")
        if len(given) != 1:
            raise InvalidSchedule(f"schedule {self.name!r}: give exactly one of cron, every, "
                                  f"once_at or manual=True (got {', '.join(given) or 'none'})")
        if self.task is not None and self.payload is not None:
            raise InvalidSchedule(f"schedule {self.name!r}: give a task (and kwargs) or a "
                                  "payload, not both")
        if self.task is not None and self.job_name is not None:
            raise InvalidSchedule(f"schedule {self.name!r}: give a task or a job_name, not both")

    @property
    def kind(self) -> ScheduleKind:
        """``cron``, ``interval``, ``once`` or ``manual``."""
        if self.cron is not None:
            return "cron"
        if self.every is not None:
            return "interval"
        if self.once_at is not None:
            return "once"
        return "manual"

    def target_payload(self) -> dict[str, Json] | None:
        """The payload template of a queue target (a task's is ``{"task", "kwargs"}``)."""
        if self.task is not None:
            return {"task": self.task, "kwargs": dict(self.kwargs)}
        return None if self.payload is None else dict(self.payload)

    def sql_args(self) -> dict[str, Any]:
        """The named arguments of ``pgbatch.create_schedule`` (JSON still as Python values)."""
        queue = self.queue
        if queue is None and self.task is not None:
            queue = "default"
        if queue is None and self.job_name is None and self.payload is not None:
            queue = "default"
        return {
            "schedule_id": self.name, "kind": self.kind, "cron_expr": self.cron, "tz": self.tz,
            "every": self.every, "anchor": self.anchor, "once_at": self.once_at,
            "queue": queue, "payload": self.target_payload(), "job_name": self.job_name,
            "params": None if self.params is None else dict(self.params),
            "misfire_threshold": self.misfire_threshold,
            "catchup_window": self.catch_up_missed_within,
            "overlap_policy": self.overlap_policy, "enabled": self.enabled,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ScheduleDefinition:
        """A definition from a JSON object: the field names above, or their camelCase
        forms (``scheduleCatchUpWindow`` for ``catch_up_missed_within``); durations as
        seconds (a number) and instants as ISO 8601 strings."""
        values: dict[str, Any] = {}
        for key, value in obj.items():
            values[_JSON_ALIASES.get(key, key)] = value
        for name in _JSON_DURATIONS:
            value = values.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[name] = timedelta(seconds=value)
        for name in ("anchor", "once_at"):
            value = values.get(name)
            if isinstance(value, str):
                values[name] = datetime.fromisoformat(value)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidSchedule(f"schedule definition: unknown field(s) {', '.join(unknown)}")
        return cls(**values)
