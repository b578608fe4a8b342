"""Schedules defined in code: ``App.schedule(...)`` builds a
``ScheduleDefinition`` here, the App collects it, and every worker of the App
registers it at start (``register_schedules``: ``pgbatch.ensure_schedule``,
create or bring up to date; docs/schedules.md "Schedules in code").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from pgbatch._types import Json
from pgbatch.schedule import ops
from pgbatch.schedule.definition import DEFAULT_MISFIRE_THRESHOLD, ScheduleDefinition
from pgbatch.schedule.types import OverlapPolicy, Schedule

if TYPE_CHECKING:
    from pgbatch._aio_client import AsyncClient
    from pgbatch._task import Task
    from pgbatch.batch.definition import Job

log = logging.getLogger("pgbatch.schedule")


@dataclass(frozen=True)
class CodeSchedule:
    """A schedule defined in code, and the batch job it launches when the App
    was given the ``Job`` itself (registered before the schedule)."""

    definition: ScheduleDefinition
    job: Job | None = None


def _td(value: float | timedelta | None) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    return timedelta(seconds=value)


def code_schedule(
    name: str, *, cron: str | None = None, every: float | timedelta | None = None,
    anchor: datetime | None = None, once_at: datetime | None = None, manual: bool = False,
    tz: str = "UTC", task: Task[Any, Any] | str | None = None,
    kwargs: Mapping[str, Json] | None = None, queue: str | None = None,
    payload: Mapping[str, Json] | None = None, job: Job | str | None = None,
    params: Mapping[str, Json] | None = None,
    misfire_threshold: float | timedelta = DEFAULT_MISFIRE_THRESHOLD,
    catch_up_missed_within: float | timedelta | None = None,
    overlap_policy: OverlapPolicy = "allow", enabled: bool = True,
) -> CodeSchedule:
    """The ``CodeSchedule`` of ``App.schedule``'s arguments (see there)."""
    task_name: str | None = None
    if task is not None and not isinstance(task, str):
        task_name = task.name
        if queue is None:
            queue = task.options.queue
    else:
        task_name = task
    job_obj: Job | None = None
    job_name: str | None = None
    if job is not None and not isinstance(job, str):
        job_obj, job_name = job, job.name
    else:
        job_name = job
    threshold = _td(misfire_threshold)
    assert threshold is not None
    definition = ScheduleDefinition(
        name, cron=cron, every=_td(every), anchor=anchor, once_at=once_at, manual=manual, tz=tz,
        queue=queue, payload=payload, task=task_name, kwargs=dict(kwargs or {}),
        job_name=job_name, params=params, misfire_threshold=threshold,
        catch_up_missed_within=_td(catch_up_missed_within), overlap_policy=overlap_policy,
        enabled=enabled)
    return CodeSchedule(definition, job_obj)


def _known_jobs(executors: Iterable[object]) -> dict[str, Job]:
    """The batch jobs the App's executors run (a ``BatchExecutor``'s ``jobs``), by name."""
    found: dict[str, Job] = {}
    from pgbatch.batch.executor import BatchExecutor  # noqa: PLC0415 - the batch side is optional

    for executor in executors:
        if isinstance(executor, BatchExecutor):
            for job in executor.jobs:
                found.setdefault(job.name, job)
    return found


async def register_schedules(client: AsyncClient, schedules: Mapping[str, CodeSchedule],
                             executors: Iterable[object] = ()) -> list[Schedule]:
    """Create the schedules defined in code, or bring them up to date (one
    ``ensure_schedule`` call each). The batch job a schedule launches is
    registered first when it is known here: given as a ``Job``, or a job of one
    of ``executors`` (the App's) by name. A database without ``ensure_schedule`` (an older schema)
    or a role that may not call it is logged, not raised; a definition the
    database refuses (``InvalidCron``, ``InvalidSchedule``, ...) is raised."""
    done: list[Schedule] = []
    if not schedules:
        return done
    known = _known_jobs(executors)
    try:
        for entry in schedules.values():
            name = entry.definition.job_name
            job = entry.job if entry.job is not None else known.get(name or "")
            if job is not None:
                async with client.pool.connection() as conn:
                    await conn.execute("select pgbatch.register_job(%s, %s)",
                                       [job.name, Jsonb(job.definition())])
            done.append(await client.run(ops.ensure(entry.definition)))
    except (psycopg.errors.UndefinedFunction, psycopg.errors.InsufficientPrivilege) as exc:
        log.warning("could not register the schedules defined in code (%s); create them with "
                    "`pgbatch schedules create` or pgbatch.create_schedule",
                    exc.diag.message_primary or exc)
    return done
