"""Each SQL API call as data: the statement, its parameters, and how to read
its rows. The sync and async clients run the same ``Op`` objects, so neither
re-implements anything the SQL functions do, and both stay in step.

Calls that return a row type name their columns once, as the value type's
fields: ``claim``, ``queue_stats``, ``get_job`` and ``list_jobs`` select
exactly those fields by name (``_columns``) and build the value from the
tuple row by position (``_positional``), which costs a fraction of decoding a
``dict_row`` on the claim path; ``ack_many`` and ``ack_ids`` (whose rows are
rare: only entries that were not acked) decode by column name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from uuid import UUID

from psycopg.rows import RowFactory, dict_row

from pgbatch._types import (
    AckEffects,
    AckOutcome,
    AckRequest,
    ClaimedJob,
    JobCursor,
    JobInfo,
    Json,
    LeaderLease,
    QueueStats,
    VacuumStat,
    dump_json,
)

T = TypeVar("T")
Row = Any  # a tuple, or a dict when the Op has a row_factory
R = TypeVar("R")


@dataclass(frozen=True)
class Op(Generic[T]):
    """One call of the SQL API; ``row_factory`` None reads rows as tuples."""

    query: str
    params: tuple[Any, ...]
    decode: Callable[[list[Row]], T]
    row_factory: RowFactory[Any] | None = None


def _columns(cls: type[Any]) -> str:
    """The select list naming ``cls``'s (a dataclass's) fields, in field order."""
    return ", ".join(f.name for f in fields(cls))


def _positional(cls: Callable[..., R]) -> Callable[[list[Row]], list[R]]:
    """Decode tuple rows selected with ``_columns(cls)`` into ``cls``, by position."""

    def decode(rows: list[Row]) -> list[R]:
        return [cls(*row) for row in rows]

    return decode


def _scalar(rows: list[Row]) -> Any:
    return rows[0][0] if rows else None


def _uuids(rows: list[Row]) -> list[UUID]:
    value = _scalar(rows)
    return list(value) if value else []


def _none(rows: list[Row]) -> None:
    return None


def _int(rows: list[Row]) -> int:
    return int(_scalar(rows) or 0)


def _effects_json(effects: AckEffects | None) -> str | None:
    if effects is None or effects.is_empty():
        return None
    return dump_json(effects.to_json(), what="effects")


_CLAIM = f"select {_columns(ClaimedJob)} from pgbatch.claim(%s, %s, %s, %s)"
_claimed_jobs = _positional(ClaimedJob)


def claim(
    queue: str, max_jobs: int, lease: timedelta, worker_id: str | None
) -> Op[list[ClaimedJob]]:
    return Op(_CLAIM, (queue, max_jobs, lease, worker_id), _claimed_jobs)


def ack(job_id: UUID, claim_token: UUID, effects: AckEffects | None) -> Op[list[UUID]]:
    return Op("select pgbatch.ack(%s, %s, %s::jsonb)",
              (job_id, claim_token, _effects_json(effects)), _uuids)


def _ack_outcomes(rows: list[Row]) -> list[AckOutcome]:
    return [AckOutcome(**{**row, "follow_ups": list(row["follow_ups"] or [])}) for row in rows]


def ack_many(acks: Sequence[AckRequest]) -> Op[list[AckOutcome]]:
    return Op("select * from pgbatch.ack_many(%s::jsonb)",
              (dump_json([a.to_json() for a in acks], what="ack entries"),), _ack_outcomes,
              dict_row)


def ack_ids(job_ids: Sequence[UUID], claim_tokens: Sequence[UUID]) -> Op[list[AckOutcome]]:
    return Op("select * from pgbatch.ack_ids(%s::uuid[], %s::uuid[])",
              (list(job_ids), list(claim_tokens)), _ack_outcomes, dict_row)


def nack(job_id: UUID, claim_token: UUID, error: Json, retry_at: datetime | None,
         backoff_base: timedelta, backoff_cap: timedelta) -> Op[str]:
    return Op(
        "select pgbatch.nack(%s, %s, %s::jsonb, %s, %s, %s)",
        (job_id, claim_token, None if error is None else dump_json(error, what="error"),
         retry_at, backoff_base, backoff_cap),
        lambda rows: str(_scalar(rows)),
    )


def dead_letter(job_id: UUID, claim_token: UUID, reason: str | None) -> Op[None]:
    return Op("select pgbatch.dead_letter(%s, %s, %s)", (job_id, claim_token, reason), _none)


def renew_lease(job_id: UUID, claim_token: UUID, lease: timedelta) -> Op[datetime]:
    return Op("select pgbatch.renew_lease(%s, %s, %s)", (job_id, claim_token, lease), _scalar)


def fence_claim(job_id: UUID, claim_token: UUID, lease: timedelta) -> Op[tuple[datetime, bool]]:
    return Op("select expires_at, cancel_requested from pgbatch.fence_claim(%s, %s, %s)",
              (job_id, claim_token, lease), lambda rows: (rows[0][0], bool(rows[0][1])))


def release(job_id: UUID, claim_token: UUID) -> Op[None]:
    return Op("select pgbatch.release(%s, %s)", (job_id, claim_token), _none)


def requeue_dead_job(job_id: UUID, run_at: datetime | None,
                     request_id: UUID | None = None) -> Op[UUID]:
    return Op("select pgbatch.requeue_dead_job(%s, %s, %s)", (job_id, run_at, request_id),
              lambda rows: UUID(str(_scalar(rows))))


def cancel_job(job_id: UUID) -> Op[str]:
    return Op("select pgbatch.cancel_job(%s)", (job_id,), lambda rows: str(_scalar(rows)))


def reap_expired(limit: int) -> Op[int]:
    return Op("select pgbatch.reap_expired(%s)", (limit,), _int)


def sweep_retention(done_after: timedelta, dead_after: timedelta, limit: int) -> Op[int]:
    return Op("select pgbatch.sweep_retention(%s, %s, %s)", (done_after, dead_after, limit), _int)


def pause_queue(queue: str) -> Op[None]:
    return Op("select pgbatch.pause_queue(%s)", (queue,), _none)


def resume_queue(queue: str) -> Op[None]:
    return Op("select pgbatch.resume_queue(%s)", (queue,), _none)


def set_queue_notify(queue: str, enabled: bool) -> Op[None]:
    return Op("select pgbatch.set_queue_notify(%s, %s)", (queue, enabled), _none)


def queue_stats(queue: str | None) -> Op[list[QueueStats]]:
    return Op(f"select {_columns(QueueStats)} from pgbatch.queue_stats(%s)", (queue,),
              _positional(QueueStats))


_JOB_COLUMNS = _columns(JobInfo)
_job_infos = _positional(JobInfo)


def _one_job(rows: list[Row]) -> JobInfo:
    return _job_infos(rows)[0]


def get_job(job_id: UUID) -> Op[JobInfo]:
    return Op(f"select {_JOB_COLUMNS} from pgbatch.get_job(%s)", (job_id,), _one_job)


def list_jobs(queue: str | None, state: str | None, created_after: datetime | None,
              created_before: datetime | None, limit: int,
              cursor: JobCursor | None) -> Op[list[JobInfo]]:
    c_at, c_seq, c_id = (None, None, None) if cursor is None else (
        cursor.created_at, cursor.seq, cursor.id)
    return Op(
        f"select {_JOB_COLUMNS} from pgbatch.list_jobs(queue => %s, state => %s,"
        " created_after => %s,"
        " created_before => %s, \"limit\" => %s, cursor_created_at => %s, cursor_seq => %s,"
        " cursor_id => %s)",
        (queue, state, created_after, created_before, limit, c_at, c_seq, c_id),
        _job_infos)


def channel_name(queue: str) -> Op[str]:
    return Op("select pgbatch.channel_name(%s)", (queue,), lambda rows: str(_scalar(rows)))


def now() -> Op[datetime]:
    return Op("select pgbatch.now()", (), _scalar)


def kv_get(key: str) -> Op[Json]:
    return Op("select pgbatch.kv_get(%s)", (key,), _scalar)


def announce_due() -> Op[int]:
    return Op("select pgbatch.announce_due()", (), _int)


def compact_counters() -> Op[int]:
    return Op("select pgbatch.compact_counters()", (), _int)


def next_due(queues: Sequence[str]) -> Op[datetime | None]:
    return Op("select pgbatch.next_due(%s::text[])", (list(queues),), _scalar)


def register_node(node_id: str, boot_id: UUID, info: Json) -> Op[int]:
    return Op("select pgbatch.register_node(%s, %s, %s::jsonb)",
              (node_id, boot_id, dump_json(info or {}, what="node info")), _int)


def heartbeat_node(node_id: str, boot_id: UUID) -> Op[bool]:
    return Op("select pgbatch.heartbeat_node(%s, %s)", (node_id, boot_id),
              lambda rows: bool(_scalar(rows)))


def deregister_node(node_id: str, boot_id: UUID) -> Op[bool]:
    return Op("select pgbatch.deregister_node(%s, %s)", (node_id, boot_id),
              lambda rows: bool(_scalar(rows)))


def try_lead(node_id: str, boot_id: UUID, lease: timedelta, scope: str) -> Op[LeaderLease]:
    return Op("select is_leader, term, leader_node_id, lease_expires_at"
              " from pgbatch.try_lead(%s, %s, %s, %s)",
              (node_id, boot_id, lease, scope), lambda rows: LeaderLease(*rows[0]))


def resign_lead(node_id: str, boot_id: UUID, scope: str) -> Op[bool]:
    return Op("select pgbatch.resign_lead(%s, %s, %s)", (node_id, boot_id, scope),
              lambda rows: bool(_scalar(rows)))


def holds_lead(node_id: str, boot_id: UUID, term: int, scope: str) -> Op[bool]:
    return Op("select pgbatch.holds_lead(%s, %s, %s, %s)", (node_id, boot_id, term, scope),
              lambda rows: bool(_scalar(rows)))


def vacuum_stats() -> Op[list[VacuumStat]]:
    return Op("select schema_name, table_name, dead_tuples, may_vacuum from pgbatch.vacuum_stats()",
              (), lambda rows: [VacuumStat(*row) for row in rows])


def check_compat(supported: int) -> Op[int]:
    return Op("select pgbatch.check_compat(%s)", (supported,), _int)
