"""``/api/v1/jobs``: list (keyset pages), get, retry, cancel, requeue.

Reads are ``list_jobs()`` and ``get_job()``; actions are one call each:
retry is ``requeue_dead_job()`` (a dead job back to pending, fresh attempt
count), cancel is ``cancel_job()`` (idempotent by itself: a repeat answers
the outcome again and changes nothing), requeue enqueues a new job with a
finished job's queue, payload, priority and max_attempts (``enqueue()``).
An ``Idempotency-Key`` makes a retried request repeat the first answer: for
retry it becomes ``requeue_dead_job``'s ``request_id`` (a repeat revives
nothing, even if the job died again since); for requeue the new job's id is
derived from the key and the source job, so a retried request returns the
job the first one made instead of making another.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pgbatch._errors import DuplicateJobId, InvalidState
from pgbatch._types import JOB_STATES, JobInfo
from pgbatch.web import db, params
from pgbatch.web.api.common import as_json, ok
from pgbatch.web.openapi import IDEMPOTENCY_KEY, ApiRoute, Param

JOB_ID = Param("job_id", "path", "the job's id", fmt="uuid")
FILTERS = (
    Param("queue", "query", "only this queue"),
    Param("state", "query", f"only this state: {', '.join(JOB_STATES)}"),
    Param("created_after", "query", "only jobs created at or after (ISO 8601; no offset: UTC)",
          fmt="date-time"),
    Param("created_before", "query", "only jobs created before (ISO 8601)", fmt="date-time"),
    Param("limit", "query", f"page size, 1 to {params.MAX_LIMIT} (default "
                            f"{params.DEFAULT_LIMIT})", schema_type="integer"),
    Param("cursor", "query", "next_cursor of the previous page"),
)
JOB_SCHEMA: dict[str, Any] = {"type": "object", "description": "pgbatch.job_info (no claim token)"}
#: States a job can be requeued from (it is finished).
REQUEUE_STATES = ("done", "dead", "cancelled")


async def list_page(request: Request) -> tuple[list[JobInfo], str | None, dict[str, Any]]:
    """One page of jobs by the request's filters, the next page's cursor, the filters."""
    q = request.query_params
    filters: dict[str, Any] = {
        "queue": params.queue(q.get("queue")), "state": params.state(q.get("state")),
        "created_after": params.time("created_after", q.get("created_after")),
        "created_before": params.time("created_before", q.get("created_before")),
    }
    limit = params.limit(q.get("limit"))
    cursor = params.decode_cursor(q.get("cursor"))
    jobs = await db.client(request).list_jobs(
        filters["queue"], filters["state"], created_after=filters["created_after"],
        created_before=filters["created_before"], limit=limit + 1, cursor=cursor)
    more = len(jobs) > limit
    jobs = jobs[:limit]
    return jobs, params.encode_cursor(jobs[-1].cursor) if more else None, filters


async def list_jobs(request: Request) -> Response:
    """A page of jobs, newest first."""
    jobs, next_cursor, _ = await list_page(request)
    return ok({"jobs": as_json(jobs), "next_cursor": next_cursor})


async def get_job(request: Request) -> Response:
    """One job."""
    job_id = params.job_id(request.path_params["job_id"])
    return ok(await db.client(request).get_job(job_id))


async def retry(request: Request) -> Response:
    """A dead job back to pending (``requeue_dead_job``, Idempotency-Key as its request_id)."""
    job_id = params.job_id(request.path_params["job_id"])
    client = db.client(request)
    await client.requeue_dead_job(job_id, request_id=params.request_id(request, f"retry:{job_id}"))
    return ok(await client.get_job(job_id))


async def cancel(request: Request) -> Response:
    """Cancel a pending job, or flag a claimed one (``cancel_job``)."""
    job_id = params.job_id(request.path_params["job_id"])
    client = db.client(request)
    outcome = await client.cancel_job(job_id)
    return ok({"outcome": outcome, "job": as_json(await client.get_job(job_id))})


async def requeue_job(request: Request, job_id: Any) -> tuple[JobInfo, bool]:
    """Enqueue a copy of finished job ``job_id``; returns it and whether it was a replay."""
    client = db.client(request)
    source = await client.get_job(job_id)
    new_id = params.request_id(request, f"requeue:{job_id}")
    if source.state not in REQUEUE_STATES:
        raise InvalidState(f"job {job_id} is {source.state}: only a finished job (done, dead, "
                           "cancelled) can be requeued")
    try:
        made = await client.enqueue(source.queue, source.payload, priority=source.priority,
                                    max_attempts=source.max_attempts, id=new_id)
        replay = False
    except DuplicateJobId:
        if new_id is None:
            raise
        made, replay = new_id, True
    return await client.get_job(made), replay


async def requeue(request: Request) -> Response:
    """A new job with a finished job's queue, payload, priority and max_attempts."""
    job, replay = await requeue_job(request, params.job_id(request.path_params["job_id"]))
    return ok({"job": as_json(job), "replayed": replay})


def routes() -> list[Route]:
    """The job routes."""
    return [
        ApiRoute("/jobs", list_jobs, name="api_jobs", params=FILTERS,
                 summary="jobs newest first, live and archived (list_jobs), one keyset page",
                 result={"type": "object", "properties": {
                     "jobs": {"type": "array", "items": JOB_SCHEMA},
                     "next_cursor": {"type": ["string", "null"]}}}),
        ApiRoute("/jobs/{job_id}", get_job, name="api_job", params=[JOB_ID], result=JOB_SCHEMA,
                 summary="one job, live or archived (get_job): payload, attempts, last_error "
                         "with its history, result"),
        ApiRoute("/jobs/{job_id}/retry", retry, name="api_job_retry", action=True,
                 params=[JOB_ID, IDEMPOTENCY_KEY], result=JOB_SCHEMA,
                 summary="revive a dead job as pending with a fresh attempt count "
                         "(requeue_dead_job); 409 InvalidState when it is not dead; a "
                         "retried request with the same Idempotency-Key answers 200 again "
                         "and revives nothing, even if the job died again since"),
        ApiRoute("/jobs/{job_id}/cancel", cancel, name="api_job_cancel", action=True,
                 params=[JOB_ID, IDEMPOTENCY_KEY],
                 summary="cancel a pending job, or flag a claimed one (cancel_job); outcome "
                         "'cancelled' or 'cancel_requested'; 409 for a done or dead job; "
                         "idempotent without a key: a repeat answers the outcome again "
                         "and changes nothing"),
        ApiRoute("/jobs/{job_id}/requeue", requeue, name="api_job_requeue", action=True,
                 params=[JOB_ID, IDEMPOTENCY_KEY],
                 summary="enqueue a new job with a finished job's queue, payload, priority and "
                         "max_attempts; with Idempotency-Key a retried request returns the "
                         "same new job (replayed: true)"),
    ]
