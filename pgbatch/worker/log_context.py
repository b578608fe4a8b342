"""The job being run, on every log record: job id, queue, task, attempt.

The runner sets the current job (a ``contextvars.ContextVar``) while a job
runs, in the job's own context: an async task's coroutine and a sync task's
thread both see it. ``JobContextFilter`` copies it onto log records
(``record.job_id``, ``record.queue``, ``record.task``, ``record.attempt``,
each ``None`` outside a job), so a format string or a JSON formatter can
show it::

    handler = logging.StreamHandler()
    handler.addFilter(pgbatch.JobContextFilter())
    handler.setFormatter(logging.Formatter(
        "%(levelname)s %(name)s [job %(job_id)s %(task)s #%(attempt)s] %(message)s"))

With structlog, a processor reads ``pgbatch.current_job()``.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True, slots=True)
class JobLogContext:
    """What identifies the job being run, for logs."""

    job_id: UUID
    queue: str
    task: str
    attempt: int


_current: ContextVar[JobLogContext | None] = ContextVar("pgbatch_current_job", default=None)


def current_job() -> JobLogContext | None:
    """The job running in this context (a task, or code it calls), or None."""
    return _current.get()


class JobContextFilter(logging.Filter):
    """Adds ``job_id``, ``queue``, ``task`` and ``attempt`` to every record (None outside a job).

    Attach it to a handler (``handler.addFilter(JobContextFilter())``), so
    every record that handler writes has the fields, whichever logger made it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Set the fields; never drops a record."""
        job = _current.get()
        record.job_id = None if job is None else str(job.job_id)
        record.queue = None if job is None else job.queue
        record.task = None if job is None else job.task
        record.attempt = None if job is None else job.attempt
        return True
