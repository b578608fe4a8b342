"""Value types of the client API: requests you build and rows you get back."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pgbatch import _limits
from pgbatch._errors import InvalidPayload

#: A JSON value as Python sees it.
Json = Any


def dump_json(value: Json, *, what: str = "payload") -> str:
    """Serialise ``value`` as strict JSON text, or raise InvalidPayload."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidPayload(f"invalid {what}: not JSON-serialisable ({exc})") from exc


@dataclass(frozen=True)
class EnqueueRequest:
    """One job to enqueue: the shape of ``enqueue_many`` and of ack effects."""

    queue: str
    payload: Json = None
    run_at: datetime | None = None
    priority: int = 0
    dedup_key: str | None = None
    max_attempts: int = _limits.DEFAULT_MAX_ATTEMPTS
    id: UUID | None = None

    def to_json(self) -> dict[str, Json]:
        """The request as the JSON object the SQL API takes."""
        out: dict[str, Json] = {"queue": self.queue, "priority": self.priority,
                                "max_attempts": self.max_attempts}
        if self.payload is not None:
            out["payload"] = self.payload  # serialised (and checked) with the whole request
        if self.run_at is not None:
            out["run_at"] = self.run_at.isoformat()
        if self.dedup_key is not None:
            out["dedup_key"] = self.dedup_key
        if self.id is not None:
            out["id"] = str(self.id)
        return out


@dataclass(frozen=True)
class AckEffects:
    """What an ack applies in its own transaction: all of it, or none.

    ``enqueue``: follow-up jobs; ``kv_put``: keys to set in ``pgbatch.kv``;
    ``kv_delete``: keys to remove; ``return_value``: the task's result, kept
    with the done job (``JobInfo.return_value``; None keeps nothing; at most
    ``limits()["max_result_bytes"]`` of stored jsonb).
    """

    enqueue: Sequence[EnqueueRequest] = ()
    kv_put: Mapping[str, Json] = field(default_factory=dict)
    kv_delete: Sequence[str] = ()
    return_value: Json = None

    def is_empty(self) -> bool:
        """True when the effects change nothing."""
        return not (self.enqueue or self.kv_put or self.kv_delete) and self.return_value is None

    def to_json(self) -> dict[str, Json]:
        """The effects as the JSON object ``ack`` takes."""
        out: dict[str, Json] = {}
        if self.enqueue:
            out["enqueue"] = [r.to_json() for r in self.enqueue]
        if self.kv_put:
            out["kv_put"] = dict(self.kv_put)
        if self.kv_delete:
            out["kv_delete"] = list(self.kv_delete)
        if self.return_value is not None:
            out["return_value"] = self.return_value
        return out


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds until it settles it or the lease expires."""

    id: UUID
    queue: str
    payload: Json
    priority: int
    attempt: int
    max_attempts: int
    run_at: datetime
    claim_token: UUID
    lease_expires_at: datetime
    created_at: datetime
    dedup_key: str | None
    last_error: Json


@dataclass(frozen=True)
class AckRequest:
    """One entry of ``ack_many``."""

    job_id: UUID
    claim_token: UUID
    effects: AckEffects | None = None

    def to_json(self) -> dict[str, Json]:
        """The entry as the JSON object ``ack_many`` takes."""
        out: dict[str, Json] = {"job_id": str(self.job_id), "claim_token": str(self.claim_token)}
        if self.effects is not None and not self.effects.is_empty():
            out["effects"] = self.effects.to_json()
        return out


@dataclass(frozen=True)
class AckOutcome:
    """The outcome of one ``ack_many`` entry."""

    job_id: UUID
    status: str  # 'acked' | 'claim_lost' | 'not_found' | 'error'
    error_code: str | None
    message: str | None
    follow_ups: list[UUID]

    @property
    def ok(self) -> bool:
        """True when the entry was acked."""
        return self.status == "acked"


@dataclass(frozen=True)
class QueueStats:
    """Counts for one queue (see ``pgbatch.queue_stats``)."""

    queue: str
    pending: int
    scheduled: int
    claimed: int
    done: int
    dead: int
    cancelled: int
    oldest_pending_age: timedelta | None
    paused: bool


#: Every state a job can be listed in (see ``pgbatch.list_jobs``): ``scheduled``
#: is a pending job whose ``run_at`` is still ahead (by the database clock).
JOB_STATES: tuple[str, ...] = ("pending", "scheduled", "claimed", "done", "dead", "cancelled")


@dataclass(frozen=True)
class JobCursor:
    """Where a page of ``list_jobs`` ended: pass it as ``cursor=`` for the next page.

    The listing order is ``created_at``, then ``seq`` (enqueue order, strict
    even for jobs made in one statement), then ``id``, newest first.
    """

    created_at: datetime
    seq: int
    id: UUID


@dataclass(frozen=True)
class JobInfo:
    """One job, live or archived, as ``get_job``/``list_jobs`` return it.

    It never carries a claim token. ``finished_at`` and ``result`` are set for
    archived jobs (done, dead, cancelled); ``claimed_at`` and
    ``lease_expires_at`` for live claims. ``return_value`` is what a done job's
    task returned (``result["return_value"]``); ``last_error["history"]`` holds
    the earlier attempts' errors, newest first.
    """

    id: UUID
    seq: int
    queue: str
    state: str
    payload: Json
    priority: int
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    dedup_key: str | None
    claimed_by: str | None
    claimed_at: datetime | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    finished_at: datetime | None
    last_error: Json
    result: Json

    @property
    def cursor(self) -> JobCursor:
        """The keyset cursor of this row: the next page starts after it."""
        return JobCursor(self.created_at, self.seq, self.id)

    @property
    def return_value(self) -> Json:
        """What the task returned, kept with the done job (``result["return_value"]``) or None."""
        if isinstance(self.result, dict):
            return self.result.get("return_value")
        return None

    @property
    def task(self) -> str | None:
        """The task name of an App job (``payload["task"]``), else None."""
        if isinstance(self.payload, dict):
            task = self.payload.get("task")
            return task if isinstance(task, str) else None
        return None


@dataclass(frozen=True)
class LeaderLease:
    """The answer of ``pgbatch.try_lead``: who leads a scope, under which term, until when.

    ``is_leader`` says whether the calling node holds the lease now; ``term``,
    ``leader_node_id`` and ``lease_expires_at`` (database time) describe the
    holder's lease, the caller's own when ``is_leader``.
    """

    is_leader: bool
    term: int
    leader_node_id: str
    lease_expires_at: datetime


@dataclass(frozen=True)
class VacuumStat:
    """One table the maintenance leader keeps vacuumed (see ``pgbatch.vacuum_stats``)."""

    schema_name: str
    table_name: str
    dead_tuples: int
    may_vacuum: bool
