"""``/api/v1/queues``: queue counts, pause and resume (``queue_stats``, ``pause_queue``,
``resume_queue``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pgbatch import _checks
from pgbatch.web import db
from pgbatch.web.api.common import ok
from pgbatch.web.errors import WebError
from pgbatch.web.openapi import IDEMPOTENCY_KEY, ApiRoute, Param

QUEUE = Param("queue", "path", "queue name (URL-encoded)")
STATS_SCHEMA = {"type": "object", "properties": {
    name: {"type": t} for name, t in (
        ("queue", "string"), ("pending", "integer"), ("scheduled", "integer"),
        ("claimed", "integer"), ("done", "integer"), ("dead", "integer"),
        ("cancelled", "integer"), ("oldest_pending_age", "number"), ("paused", "boolean"))}}


async def list_queues(request: Request) -> Response:
    """Every queue's counts."""
    return ok(await db.client(request).queue_stats())


async def _known(request: Request) -> str:
    name = _checks.check_queue_name(request.path_params["queue"])
    stats = await db.client(request).queue_stats(name)
    if not stats:
        raise WebError(404, "QueueNotFound",
                       f"no queue named {name[:200]!r}: a queue exists once a job was enqueued "
                       "to it or it was configured")
    return name


async def get_queue(request: Request) -> Response:
    """One queue's counts."""
    name = await _known(request)
    return ok((await db.client(request).queue_stats(name))[0])


async def pause(request: Request) -> Response:
    """Pause a known queue (claims return nothing until resumed)."""
    name = await _known(request)
    await db.client(request).pause_queue(name)
    return ok((await db.client(request).queue_stats(name))[0])


async def resume(request: Request) -> Response:
    """Resume a known queue."""
    name = await _known(request)
    await db.client(request).resume_queue(name)
    return ok((await db.client(request).queue_stats(name))[0])


def routes() -> list[Route]:
    """The queue routes."""
    return [
        ApiRoute("/queues", list_queues, name="api_queues", summary="every queue's counts",
                 result={"type": "array", "items": STATS_SCHEMA}),
        ApiRoute("/queues/{queue:path}", get_queue, name="api_queue", params=[QUEUE],
                 summary="one queue's counts (404 QueueNotFound for a queue pgbatch never saw)",
                 result=STATS_SCHEMA),
        ApiRoute("/queues/{queue:path}/pause", pause, name="api_queue_pause", action=True,
                 params=[QUEUE, IDEMPOTENCY_KEY], result=STATS_SCHEMA,
                 summary="pause the queue (pause_queue): claims return nothing until resumed; "
                         "pausing a paused queue is a no-op"),
        ApiRoute("/queues/{queue:path}/resume", resume, name="api_queue_resume", action=True,
                 params=[QUEUE, IDEMPOTENCY_KEY], result=STATS_SCHEMA,
                 summary="resume the queue (resume_queue); resuming a running queue is a no-op"),
    ]
