"""The scheduler's Python API: ``Schedules`` (sync, on a ``Client``) and
``AsyncSchedules`` (asyncio, on an ``AsyncClient``).

Each method is one SQL function call in one transaction (``ops.py``); the
database validates and decides (docs/schedules.md). Errors are the SQL API's,
translated: ``ScheduleNotFound``, ``InvalidSchedule``,
``ScheduleAlreadyExists``, ``InvalidCron``, ``InvalidTimeZone``, ...
Pass ``conn`` to run a call in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from pgbatch._aio_client import AsyncClient
from pgbatch._client import Client
from pgbatch.schedule import ops
from pgbatch.schedule.definition import ScheduleDefinition
from pgbatch.schedule.types import Schedule, ScheduleFire

Conn = psycopg.Connection[Any]
AsyncConn = psycopg.AsyncConnection[Any]
#: Fires and schedules as the methods return them (``list`` is a method name here).
FireList = list[ScheduleFire]
ScheduleList = list[Schedule]


class Schedules:
    """Create, change, pause, resume, trigger, backfill, list and read schedules."""

    def __init__(self, client: Client) -> None:
        """Use ``client``'s pool."""
        self.client = client

    def create(self, definition: ScheduleDefinition, *, conn: Conn | None = None) -> Schedule:
        """Create a schedule (``ScheduleAlreadyExists`` if the name is taken)."""
        return self.client.run(ops.create(definition), conn)

    def ensure(self, definition: ScheduleDefinition, *, conn: Conn | None = None) -> Schedule:
        """Create the schedule, or bring an existing one of that name to ``definition``
        (``pgbatch.ensure_schedule``, one call; workers may make it).

        What workers do at start for the schedules defined in code
        (``App.schedule``): an unchanged definition changes nothing (the
        version stays); a changed timing moves ``effective_from`` to now and
        keeps the watermark, so nothing fires retroactively; other changes
        apply from the next decision. Pausing is the operator's: ``enabled``
        of an existing schedule is left alone.
        """
        return self.client.run(ops.ensure(definition), conn)

    def update(self, name: str, *, conn: Conn | None = None, **changes: Any) -> Schedule:
        """Change the given fields (``update_schedule``'s argument names: ``cron_expr``,
        ``tz``, ``every``, ``catchup_window``, ...); None leaves a field as it is."""
        return self.client.run(ops.update(name, changes), conn)

    def delete(self, name: str, *, conn: Conn | None = None) -> bool:
        """Delete a schedule and its fire ledger."""
        return self.client.run(ops.delete(name), conn)

    def pause(self, name: str, *, conn: Conn | None = None) -> Schedule:
        """Pause a schedule: nothing fires until ``resume``."""
        return self.client.run(ops.pause(name), conn)

    def resume(self, name: str, *, catch_up: bool = False,
               conn: Conn | None = None) -> Schedule:
        """Resume a paused schedule; ``catch_up`` fires the latest occurrence missed
        during the pause once, if it is within the schedule's window."""
        return self.client.run(ops.resume(name, catch_up), conn)

    def trigger(self, name: str, *, request_id: str | None = None,
                conn: Conn | None = None) -> ScheduleFire:
        """Fire now (source ``manual``); the same ``request_id`` fires once."""
        return self.client.run(ops.trigger(name, request_id), conn)

    def backfill(self, name: str, start: datetime, end: datetime, *, force: bool = False,
                 conn: Conn | None = None) -> FireList:
        """Fire the occurrences from ``start`` to ``end`` (source ``backfill``)."""
        return self.client.run(ops.backfill(name, start, end, force), conn)

    def list(self, *, conn: Conn | None = None) -> ScheduleList:
        """Every schedule with its state, by name."""
        return self.client.run(ops.list_schedules(), conn)

    def get(self, name: str, *, conn: Conn | None = None) -> Schedule:
        """One schedule (``ScheduleNotFound`` if there is none)."""
        return self.client.run(ops.get(name), conn)

    def history(self, name: str, *, limit: int = 50,
                conn: Conn | None = None) -> FireList:
        """The schedule's fires, newest first, with the state of each run."""
        return self.client.run(ops.history(name, limit), conn)

    def tick(self, node_id: str | None = None, *, max_schedules: int = 100,
             conn: Conn | None = None) -> FireList:
        """Decide the due schedules once (what every worker does each second)."""
        return self.client.run(ops.tick(node_id, max_schedules), conn)


class AsyncSchedules:
    """``Schedules`` for asyncio, on an ``AsyncClient``."""

    def __init__(self, client: AsyncClient) -> None:
        """Use ``client``'s pool."""
        self.client = client

    async def create(self, definition: ScheduleDefinition, *,
                     conn: AsyncConn | None = None) -> Schedule:
        """Create a schedule (``ScheduleAlreadyExists`` if the name is taken)."""
        return await self.client.run(ops.create(definition), conn)

    async def ensure(self, definition: ScheduleDefinition, *,
                     conn: AsyncConn | None = None) -> Schedule:
        """Create the schedule, or bring an existing one to ``definition`` (see
        ``Schedules.ensure``)."""
        return await self.client.run(ops.ensure(definition), conn)

    async def update(self, name: str, *, conn: AsyncConn | None = None,
                     **changes: Any) -> Schedule:
        """Change the given fields (see ``Schedules.update``)."""
        return await self.client.run(ops.update(name, changes), conn)

    async def delete(self, name: str, *, conn: AsyncConn | None = None) -> bool:
        """Delete a schedule and its fire ledger."""
        return await self.client.run(ops.delete(name), conn)

    async def pause(self, name: str, *, conn: AsyncConn | None = None) -> Schedule:
        """Pause a schedule."""
        return await self.client.run(ops.pause(name), conn)

    async def resume(self, name: str, *, catch_up: bool = False,
                     conn: AsyncConn | None = None) -> Schedule:
        """Resume a paused schedule (see ``Schedules.resume``)."""
        return await self.client.run(ops.resume(name, catch_up), conn)

    async def trigger(self, name: str, *, request_id: str | None = None,
                      conn: AsyncConn | None = None) -> ScheduleFire:
        """Fire now (source ``manual``); the same ``request_id`` fires once."""
        return await self.client.run(ops.trigger(name, request_id), conn)

    async def backfill(self, name: str, start: datetime, end: datetime, *, force: bool = False,
                       conn: AsyncConn | None = None) -> FireList:
        """Fire the occurrences from ``start`` to ``end`` (source ``backfill``)."""
        return await self.client.run(ops.backfill(name, start, end, force), conn)

    async def list(self, *, conn: AsyncConn | None = None) -> ScheduleList:
        """Every schedule with its state, by name."""
        return await self.client.run(ops.list_schedules(), conn)

    async def get(self, name: str, *, conn: AsyncConn | None = None) -> Schedule:
        """One schedule (``ScheduleNotFound`` if there is none)."""
        return await self.client.run(ops.get(name), conn)

    async def history(self, name: str, *, limit: int = 50,
                      conn: AsyncConn | None = None) -> FireList:
        """The schedule's fires, newest first."""
        return await self.client.run(ops.history(name, limit), conn)

    async def tick(self, node_id: str | None = None, *, max_schedules: int = 100,
                   conn: AsyncConn | None = None) -> FireList:
        """Decide the due schedules once."""
        return await self.client.run(ops.tick(node_id, max_schedules), conn)
