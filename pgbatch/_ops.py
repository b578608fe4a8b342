"""Each SQL API call as data: the statement, its parameters, and how to read
its rows. The sync and async clients run the same ``Op`` objects, so neither
re-implements anything the SQL functions do, and both stay in step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from uuid import UUID

from pgbatch._types import (
    AckEffects,
    AckOutcome,
    AckRequest,
    ClaimedJob,
    EnqueueRequest,
    Json,
    QueueStats,
    dump_json,
)

T = TypeVar("T")
Row = tuple[Any, ...]


@dataclass(frozen=True)
class Op(Generic[T]):
    """One call of the SQL API."""

    query: str
    params: tuple[Any, ...]
    decode: Callable[[list[Row]], T]


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


def enqueue(queue: str, payload: Json, run_at: datetime | None, priority: int,
            dedup_key: str | None, max_attempts: int, id: UUID | None) -> Op[UUID]:
    return Op(
        "select pgbatch.enqueue(%s, %s::jsonb, %s, %s, %s, %s, %s)",
        (queue, dump_json({} if payload is None else payload), run_at, priority, dedup_key,
         max_attempts, id),
        lambda rows: UUID(str(_scalar(rows))),
    )


def enqueue_many(requests: Sequence[EnqueueRequest]) -> Op[list[UUID]]:
    return Op("select pgbatch.enqueue_many(%s::jsonb)",
              (dump_json([r.to_json() for r in requests], what="enqueue requests"),), _uuids)


def claim(
    queue: str, max_jobs: int, lease: timedelta, worker_id: str | None
) -> Op[list[ClaimedJob]]:
    return Op(
        "select id, queue, payload, priority, attempt, max_attempts, run_at, claim_token,"
        " lease_expires_at, created_at, dedup_key, last_error"
        " from pgbatch.claim(%s, %s, %s, %s)",
        (queue, max_jobs, lease, worker_id),
        lambda rows: [ClaimedJob(*row) for row in rows],
    )


def ack(job_id: UUID, claim_token: UUID, effects: AckEffects | None) -> Op[list[UUID]]:
    return Op("select pgbatch.ack(%s, %s, %s::jsonb)",
              (job_id, claim_token, _effects_json(effects)), _uuids)


def ack_many(acks: Sequence[AckRequest]) -> Op[list[AckOutcome]]:
    return Op(
        "select job_id, status, error_code, message, follow_ups from pgbatch.ack_many(%s::jsonb)",
        (dump_json([a.to_json() for a in acks], what="ack entries"),),
        lambda rows: [AckOutcome(r[0], r[1], r[2], r[3], list(r[4] or [])) for r in rows],
    )


def ack_ids(job_ids: Sequence[UUID], claim_tokens: Sequence[UUID]) -> Op[list[AckOutcome]]:
    return Op(
        "select job_id, status, error_code, message, follow_ups"
        " from pgbatch.ack_ids(%s::uuid[], %s::uuid[])",
        (list(job_ids), list(claim_tokens)),
        lambda rows: [AckOutcome(r[0], r[1], r[2], r[3], []) for r in rows],
    )


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


def requeue_dead_job(job_id: UUID, run_at: datetime | None) -> Op[UUID]:
    return Op("select pgbatch.requeue_dead_job(%s, %s)", (job_id, run_at),
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
    return Op(
        "select queue, pending, scheduled, claimed, done, dead, cancelled, oldest_pending_age,"
        " paused from pgbatch.queue_stats(%s)",
        (queue,),
        lambda rows: [QueueStats(*row) for row in rows],
    )


def channel_name(queue: str) -> Op[str]:
    return Op("select pgbatch.channel_name(%s)", (queue,), lambda rows: str(_scalar(rows)))


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


def check_compat(supported: int) -> Op[int]:
    return Op("select pgbatch.check_compat(%s)", (supported,), _int)
