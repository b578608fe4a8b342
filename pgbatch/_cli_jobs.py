"""Read-only job queries of ``pgbatch jobs list`` / ``jobs show``.

They read the tables through the SQLAlchemy Core objects of
:mod:`pgbatch.schema`: live jobs (pending, claimed) from ``pgbatch.job``,
settled ones (done, dead, cancelled) from ``pgbatch.job_archive``. They never
write: every change goes through the SQL functions.

``scheduled`` is not a stored state: it is a pending job whose ``run_at`` is
still in the future, by the database clock ``pgbatch.now()`` — the same rule
``queue_stats()`` counts with.

Listings are newest first by job id: ids are time-ordered (UUID v7), so each
table is read backwards along its primary key and a listing costs ``limit``
rows per table however large the archive is. (A job enqueued with an explicit
``id_override`` sorts by that id.)
"""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import TIMESTAMP

from pgbatch.schema import job, job_archive

#: Every state ``jobs list --state`` accepts.
STATES: Final = ("pending", "scheduled", "claimed", "done", "dead", "cancelled")
LIVE_STATES: Final = frozenset({"pending", "scheduled", "claimed"})

#: Characters of the payload shown by ``jobs list``.
PREVIEW_CHARS: Final = 60


def _now() -> ColumnElement[Any]:
    return func.pgbatch.now(type_=TIMESTAMP(timezone=True))


def _live_state() -> ColumnElement[Any]:
    return case(
        (and_(job.c.state == "pending", job.c.run_at > _now()), literal("scheduled")),
        else_=job.c.state,
    )


def _live_query(queue: str | None, state: str | None, limit: int) -> Select[Any]:
    query = select(
        job.c.id,
        job.c.queue,
        _live_state().label("state"),
        job.c.priority,
        job.c.attempt,
        job.c.max_attempts,
        job.c.run_at,
        job.c.created_at,
        cast(null(), TIMESTAMP(timezone=True)).label("finished_at"),
        job.c.claimed_by,
        job.c.payload["task"].astext.label("task"),
        func.left(cast(job.c.payload, Text), PREVIEW_CHARS + 1).label("preview"),
    )
    if queue is not None:
        query = query.where(job.c.queue == queue)
    if state == "pending":
        query = query.where(job.c.state == "pending", job.c.run_at <= _now())
    elif state == "scheduled":
        query = query.where(job.c.state == "pending", job.c.run_at > _now())
    elif state == "claimed":
        query = query.where(job.c.state == "claimed")
    return query.order_by(job.c.id.desc()).limit(limit)


def _archive_query(queue: str | None, state: str | None, limit: int) -> Select[Any]:
    a = job_archive
    query = select(
        a.c.id,
        a.c.queue,
        a.c.state,
        a.c.priority,
        a.c.attempt,
        a.c.max_attempts,
        a.c.run_at,
        a.c.created_at,
        a.c.finished_at,
        a.c.claimed_by,
        a.c.payload["task"].astext.label("task"),
        func.left(cast(a.c.payload, Text), PREVIEW_CHARS + 1).label("preview"),
    )
    if queue is not None:
        query = query.where(a.c.queue == queue)
    if state is not None:
        query = query.where(a.c.state == state)
    return query.order_by(a.c.id.desc()).limit(limit)


def list_jobs(conn: Connection, *, queue: str | None = None, state: str | None = None,
              limit: int = 50) -> list[dict[str, Any]]:
    """Up to ``limit`` jobs, newest first, live and settled (filtered by queue and state)."""
    parts: list[Select[Any]] = []
    if state is None or state in LIVE_STATES:
        parts.append(_live_query(queue, state, limit))
    if state is None or state not in LIVE_STATES:
        parts.append(_archive_query(queue, state, limit))
    if len(parts) == 1:
        query = parts[0]
    else:
        both = union_all(*(select(p.subquery()) for p in parts)).subquery()
        query = select(both).order_by(both.c.id.desc()).limit(limit)
    return [dict(row) for row in conn.execute(query).mappings()]


def get_job(conn: Connection, job_id: UUID) -> dict[str, Any] | None:
    """Every column of one job (live or archived) plus its ``state``; None if unknown.

    A pending job that is not due yet has state ``scheduled``. Archived jobs
    carry ``finished_at`` and ``result``; live ones ``claim_token``,
    ``lease_expires_at`` and the other claim columns.
    """
    row = conn.execute(
        select(job, _live_state().label("derived_state")).where(job.c.id == job_id)
    ).mappings().first()
    if row is not None:
        out = dict(row)
        out["state"] = out.pop("derived_state")
        return out
    arow = conn.execute(select(job_archive).where(job_archive.c.id == job_id)).mappings().first()
    return None if arow is None else dict(arow)
