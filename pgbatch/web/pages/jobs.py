"""The jobs pages: ``/jobs`` (filters by queue, state and creation time; keyset
pages) and ``/jobs/{job_id}`` (payload, attempts, errors with tracebacks,
result) with the retry, cancel and requeue buttons. The reads and actions
are the API's (:mod:`pgbatch.web.api.jobs`): one SQL function each."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from pgbatch._types import JOB_STATES
from pgbatch.web import db, params
from pgbatch.web.api.jobs import REQUEUE_STATES, list_page, requeue_job
from pgbatch.web.templating import path_for, render

#: What the job page says after an action (the redirect names one of these keys).
NOTICES: Final = {
    "retried": "Retried: the job is pending again with a fresh attempt count.",
    "cancelled": "Cancelled.",
    "cancel_requested": "Cancel requested: the running attempt is told at its next lease "
                        "renewal.",
    "requeued": "Requeued as this new job.",
}


async def jobs_page(request: Request) -> Response:
    """A page of jobs by the filters in the query string."""
    jobs, next_cursor, filters = await list_page(request)
    q = request.query_params
    keep = {k: q[k] for k in ("queue", "state", "created_after", "created_before", "limit")
            if q.get(k)}
    next_url = (path_for(request, "jobs") + "?" + urlencode({**keep, "cursor": next_cursor})
                if next_cursor else None)
    first_url = (path_for(request, "jobs") + "?" + urlencode(keep)) if q.get("cursor") else None
    return render(request, "jobs.html", {
        "jobs": jobs, "filters": filters, "form": keep, "states": JOB_STATES,
        "queues": [s.queue for s in await db.client(request).queue_stats()],
        "next_url": next_url, "first_url": first_url,
    })


async def job_page(request: Request) -> Response:
    """One job."""
    job_id = params.job_id(request.path_params["job_id"])
    job = await db.client(request).get_job(job_id)
    error = job.last_error if isinstance(job.last_error, dict) else None
    history = error.get("history", []) if error else []
    return render(request, "job.html", {
        "job": job, "error": error, "history": history if isinstance(history, list) else [],
        "notice": NOTICES.get(request.query_params.get("notice", "")),
        "can_retry": job.state == "dead",
        "can_cancel": job.state in ("pending", "scheduled", "claimed") and not job.cancel_requested,
        "can_requeue": job.state in REQUEUE_STATES,
    })


def _back(request: Request, job_id: object, notice: str) -> Response:
    return RedirectResponse(path_for(request, "job", job_id=job_id) + f"?notice={notice}",
                            status_code=303)


async def retry(request: Request) -> Response:
    """Form action: ``requeue_dead_job``."""
    job_id = params.job_id(request.path_params["job_id"])
    await db.client(request).requeue_dead_job(
        job_id, request_id=params.request_id(request, f"retry:{job_id}"))
    return _back(request, job_id, "retried")


async def cancel(request: Request) -> Response:
    """Form action: ``cancel_job``."""
    job_id = params.job_id(request.path_params["job_id"])
    outcome = await db.client(request).cancel_job(job_id)
    return _back(request, job_id, outcome)


async def requeue(request: Request) -> Response:
    """Form action: a new job from a finished one (shows the new job)."""
    job, _ = await requeue_job(request, params.job_id(request.path_params["job_id"]))
    return _back(request, job.id, "requeued")


def routes() -> list[Route]:
    """The jobs pages and their actions."""
    return [
        Route("/jobs", jobs_page, name="jobs"),
        Route("/jobs/{job_id}", job_page, name="job"),
        Route("/jobs/{job_id}/retry", retry, methods=["POST"], name="job_retry"),
        Route("/jobs/{job_id}/cancel", cancel, methods=["POST"], name="job_cancel"),
        Route("/jobs/{job_id}/requeue", requeue, methods=["POST"], name="job_requeue"),
    ]
