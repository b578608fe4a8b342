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

The client's ``enqueue_many`` gives every job its id before the first attempt
(so that a retried call makes its jobs once): ``ids_for`` mints the missing
ones for the whole call with one clock reading and one random draw
(``new_job_ids``), and without dedup keys the call reads back only how many
ids the server returned, since they are the ids it sent.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Final
from uuid import UUID, SafeUUID

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
_ARRAYS_CALL = ("pgbatch.enqueue_arrays(%b::text[], %s::jsonb, %s::timestamptz[],"
                " %b::integer[], %b::text[], %b::integer[], %b::uuid[])")
_ENQUEUE_ARRAYS = f"select {_ARRAYS_CALL}"
#: Without dedup keys the ids that come back are the ids sent: only their count is read.
_ENQUEUE_ARRAYS_COUNT = f"select cardinality({_ARRAYS_CALL})"


#: The variant and version bits of a version-7 UUID, as an int to OR in.
_V7_BITS: Final = (0x7 << 76) | (0b10 << 62)
_COUNTER_START_MASK: Final = (1 << 61) - 1
_new_object = object.__new__
_set_slot = object.__setattr__
_SAFE_UNKNOWN: Final = SafeUUID.unknown


def _uuid(value: int) -> UUID:
    """``UUID(int=value)`` without the range check: ``value`` is a 128-bit int by
    construction (``new_job_ids``), and the check costs as much as the rest of minting."""
    u: UUID = _new_object(UUID)
    _set_slot(u, "int", value)
    _set_slot(u, "is_safe", _SAFE_UNKNOWN)
    return u


def new_job_ids(n: int) -> list[UUID]:
    """``n`` fresh version-7 UUIDs in order, from one clock reading and one random draw.

    Like ``pgbatch._mint_ids`` (RFC 9562 section 6.2, method 2, "monotonic random"):
    the ids share the millisecond and 12 random bits (rand_a), and their last 62 bits
    are a counter from a random 61-bit start plus the ordinal, so they are unique,
    ordered as the requests, and cost a fraction of ``n`` calls of ``new_job_id``.
    """
    ms = time.time_ns() // 1_000_000
    draw = int.from_bytes(secrets.token_bytes(10), "big")
    prefix = ((ms & ((1 << 48) - 1)) << 80) | _V7_BITS | ((draw >> 68) << 64)
    start = prefix | (draw & _COUNTER_START_MASK)
    return [_uuid(start + i) for i in range(n)]


def ids_for(requests: Sequence[EnqueueRequest]) -> list[UUID]:
    """The id of every request: its own, else a fresh one (``new_job_ids``)."""
    given = [r.id for r in requests]
    missing = given.count(None)
    if missing == len(given):
        return new_job_ids(missing)
    fresh = iter(new_job_ids(missing))
    return [g if g is not None else next(fresh) for g in given]



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


def enqueue_many(requests: Sequence[EnqueueRequest],
                 ids: list[UUID] | None = None) -> Op[list[UUID]]:
    """``pgbatch.enqueue_arrays`` with one column per field of ``requests``.

    ``ids``: the id of every request (``ids_for``: a request's own id, else a fresh
    one), or None to send the requests' own ids and let the server mint the rest.
    With ``ids`` and no dedup key the server's answer is ``ids`` itself, so the call
    reads back only its length instead of decoding every id.
    """
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
    own = [r.id for r in requests]
    if own.count(None) != len(own):
        for i, u in enumerate(own):
            if u is not None and not isinstance(u, UUID):
                raise _bad(i, "id must be a UUID")
    sent: list[UUID] | list[UUID | None] | None = ids
    if ids is None:
        sent = own if own.count(None) != len(own) else None
    elif dedup is None:
        given = ids

        def _given(rows: list[Row]) -> list[UUID]:
            if not rows or rows[0][0] != len(given):
                raise RuntimeError(f"enqueue_arrays answered {rows!r} for {len(given)} jobs")
            return given

        return Op(_ENQUEUE_ARRAYS_COUNT,
                  (queues, body, run_ats, priorities, dedup, attempts, ids), _given)
    return Op(_ENQUEUE_ARRAYS, (queues, body, run_ats, priorities, dedup, attempts, sent), _ids)
