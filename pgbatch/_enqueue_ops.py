"""The enqueue calls as ``Op`` data: the producer's hot path, kept lean.

``enqueue`` sends only the arguments that differ from the SQL defaults, so
the common call (a queue and a payload) is a two-parameter statement that
psycopg prepares once per connection. ``enqueue_many`` sends one array per
field to ``pgbatch.enqueue_arrays`` (the payloads as one JSON array, a field
that is the default for every request as NULL): serialising a batch costs one
``json.dumps`` and a few list comprehensions, and the server decodes no JSON
object per request. The values are checked here only as far as the arrays
need (each column's Python type, the SQL ``integer`` range), with the same
``invalid enqueue request <i>: ...`` messages the SQL API gives; everything
else (queue names, payload size, run_at, dedup keys, ids) is checked by the
SQL function, which names the request the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from pgbatch import _limits
from pgbatch._errors import InvalidArgument, InvalidQueueName
from pgbatch._ops import Op, Row
from pgbatch._types import EnqueueRequest, Json, dump_json

#: The range of an SQL ``integer`` (priority, max_attempts).
_INT_MIN = -(2**31)
_INT_MAX = 2**31 - 1

_ENQUEUE_SHORT = "select pgbatch.enqueue(%s, %s::jsonb)"
_ENQUEUE_WITH_ID = "select pgbatch.enqueue(%s, %s::jsonb, id_override => %s)"
_ENQUEUE_FULL = "select pgbatch.enqueue(%s, %s::jsonb, %s, %s, %s, %s, %s)"
_ENQUEUE_ARRAYS = ("select pgbatch.enqueue_arrays(%b::text[], %s::jsonb, %s::timestamptz[],"
                   " %b::integer[], %b::text[], %b::integer[], %b::uuid[])")


def _one_id(rows: list[Row]) -> UUID:
    value: UUID = rows[0][0]
    return value


def _ids(rows: list[Row]) -> list[UUID]:
    value = rows[0][0] if rows else None
    return list(value) if value else []


def enqueue(queue: str, payload: Json, run_at: datetime | None, priority: int,
            dedup_key: str | None, max_attempts: int, id: UUID | None) -> Op[UUID]:
    """``pgbatch.enqueue``: two parameters (three with an id) when every other
    argument is its default."""
    body = dump_json({} if payload is None else payload)
    if (run_at is None and priority == 0 and dedup_key is None
            and max_attempts == _limits.DEFAULT_MAX_ATTEMPTS):
        if id is None:
            return Op(_ENQUEUE_SHORT, (queue, body), _one_id)
        return Op(_ENQUEUE_WITH_ID, (queue, body, id), _one_id)
    return Op(_ENQUEUE_FULL, (queue, body, run_at, priority, dedup_key, max_attempts, id),
              _one_id)


def _bad(index: int, message: str) -> InvalidArgument:
    return InvalidArgument(f"invalid enqueue request {index}: {message}")


def _ints(values: list[int | None], what: str, default: int) -> list[int | None] | None:
    """``values`` as an SQL integer[] column (None: the default), or None when all are."""
    if all(v == default and type(v) is int for v in values):
        return None
    for i, v in enumerate(values):
        if v is not None and (type(v) is not int or not _INT_MIN <= v <= _INT_MAX):
            raise _bad(i, f"{what} must be an integer from {_INT_MIN} to {_INT_MAX}, "
                          f"got {v!r}")
    return values


def enqueue_many(requests: Sequence[EnqueueRequest]) -> Op[list[UUID]]:
    """``pgbatch.enqueue_arrays`` with one column per field of ``requests``."""
    queues = [r.queue for r in requests]
    for i, q in enumerate(queues):
        if type(q) is not str:
            raise InvalidQueueName(f"invalid enqueue request {i}: queue must be a string")
    payloads = [r.payload for r in requests]
    body = None if all(p is None for p in payloads) else dump_json(
        [{} if p is None else p for p in payloads], what="enqueue requests")
    run_ats: list[str | None] | None = None
    if any(r.run_at is not None for r in requests):
        run_ats = []
        for i, r in enumerate(requests):
            if r.run_at is not None and not isinstance(r.run_at, datetime):
                raise _bad(i, "run_at must be a datetime")
            run_ats.append(None if r.run_at is None else r.run_at.isoformat())
    priorities = _ints([r.priority for r in requests], "priority", 0)
    attempts = _ints([r.max_attempts for r in requests], "max_attempts",
                     _limits.DEFAULT_MAX_ATTEMPTS)
    dedup: list[str | None] | None = None
    if any(r.dedup_key is not None for r in requests):
        dedup = [r.dedup_key for r in requests]
        for i, k in enumerate(dedup):
            if k is not None and type(k) is not str:
                raise _bad(i, "dedup_key must be a string")
    ids: list[UUID | None] | None = None
    if any(r.id is not None for r in requests):
        ids = [r.id for r in requests]
        for i, u in enumerate(ids):
            if u is not None and not isinstance(u, UUID):
                raise _bad(i, "id must be a UUID")
    return Op(_ENQUEUE_ARRAYS, (queues, body, run_ats, priorities, dedup, attempts, ids), _ids)
