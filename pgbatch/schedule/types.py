"""What the scheduler's SQL functions return, as Python values.

``Schedule`` is a row of ``pgbatch.schedules()`` (a schedule and its state);
``ScheduleFire`` a row of ``pgbatch.schedule_fires()`` (one decided fire and
the state of the run it started). See docs/schedules.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from pgbatch._types import Json

#: How a schedule's occurrences are defined.
ScheduleKind = Literal["cron", "interval", "once", "manual"]
#: What a fire does when a previous fire's run is still active.
OverlapPolicy = Literal["allow", "skip", "queue"]
#: Where a fire came from.
FireSource = Literal["schedule", "manual", "backfill"]


@dataclass(frozen=True)
class Schedule:
    """A persisted schedule and its state.

    ``kind`` with ``cron``/``tz``, ``every``/``anchor`` or ``once_at`` says
    when; ``target`` ``"queue"`` (``queue``, ``payload``) or ``"batch"``
    (``job_name``, ``params``) says what. ``last_fire_at`` is the watermark
    (the latest occurrence decided), ``next_due_at`` the next occurrence
    after it, ``coalesced_total`` the missed occurrences folded into later
    fires, ``last_outcome`` the latest decision (``fired``, ``skipped_late``,
    ``skipped_overlap``, ``failed``, ``waiting_overlap``).
    """

    name: str
    kind: ScheduleKind
    cron: str | None
    tz: str
    every: timedelta | None
    anchor: datetime | None
    once_at: datetime | None
    target: Literal["queue", "batch"]
    queue: str | None
    payload: Json
    job_name: str | None
    params: Json
    misfire_threshold: timedelta
    catch_up_missed_within: timedelta | None
    overlap_policy: OverlapPolicy
    enabled: bool
    paused_at: datetime | None
    effective_from: datetime
    last_fire_at: datetime | None
    next_due_at: datetime | None
    coalesced_total: int
    last_outcome: str | None
    last_decided_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def paused(self) -> bool:
        """Whether the schedule is paused (``pause_schedule``)."""
        return self.paused_at is not None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Schedule:
        """Decode a ``pgbatch.schedule_info`` row read with ``dict_row``."""
        return cls(
            name=row["schedule_id"], kind=row["kind"], cron=row["cron_expr"], tz=row["tz"],
            every=row["every"], anchor=row["anchor"], once_at=row["once_at"],
            target=row["target"], queue=row["queue"], payload=row["payload"],
            job_name=row["job_name"], params=row["params"],
            misfire_threshold=row["misfire_threshold"],
            catch_up_missed_within=row["catchup_window"], overlap_policy=row["overlap_policy"],
            enabled=row["enabled"], paused_at=row["paused_at"],
            effective_from=row["effective_from"], last_fire_at=row["last_fire_at"],
            next_due_at=row["next_due_at"], coalesced_total=int(row["coalesced_total"]),
            last_outcome=row["last_outcome"], last_decided_at=row["last_decided_at"],
            version=int(row["version"]), created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


@dataclass(frozen=True)
class ScheduleFire:
    """One decided fire of a schedule (a row of the fire ledger).

    ``fire_at`` is the occurrence (its identity, with ``source``);
    ``outcome`` ``fired``, ``skipped_late``, ``skipped_overlap`` or
    ``failed`` (the launch was refused: ``error``); ``coalesced_count``
    older missed occurrences were folded into it (at least that many when
    ``coalesced_capped``). ``job_id`` / ``job_execution_id``: the queue job
    or batch execution it started; ``run_status`` that run's state
    (``pending``, ``running``, ``succeeded``, ``failed``, ``cancelled``,
    ``stopped``, ``abandoned``; None when nothing ran or its record is gone).
    """

    schedule: str
    source: FireSource
    fire_at: datetime
    outcome: str
    coalesced_count: int
    coalesced_capped: bool
    job_id: UUID | None
    job_execution_id: int | None
    error: str | None
    request_id: str | None
    node_id: str | None
    decided_at: datetime
    run_status: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ScheduleFire:
        """Decode a ``pgbatch.schedule_fire_info`` row read with ``dict_row``."""
        return cls(
            schedule=row["schedule_id"], source=row["source"], fire_at=row["fire_at"],
            outcome=row["outcome"], coalesced_count=int(row["coalesced_count"]),
            coalesced_capped=bool(row["coalesced_capped"]), job_id=row["job_id"],
            job_execution_id=row["job_execution_id"], error=row["error"],
            request_id=row["request_id"], node_id=row["node_id"],
            decided_at=row["decided_at"], run_status=row["run_status"],
        )
