"""The scheduler: persisted cron, interval, once and manual schedules (docs/schedules.md).

``ScheduleDefinition`` says what to create; ``Schedules`` / ``AsyncSchedules``
call the SQL functions; ``Schedule`` and ``ScheduleFire`` are what they
return. Every worker ticks the due schedules (``service.py``).
"""

from pgbatch.schedule.client import AsyncSchedules, Schedules
from pgbatch.schedule.definition import ScheduleDefinition
from pgbatch.schedule.types import FireSource, OverlapPolicy, Schedule, ScheduleFire, ScheduleKind

__all__ = [
    "AsyncSchedules",
    "FireSource",
    "OverlapPolicy",
    "Schedule",
    "ScheduleDefinition",
    "ScheduleFire",
    "ScheduleKind",
    "Schedules",
]
