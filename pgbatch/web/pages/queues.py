"""The overview page (``/``): every queue's counts, throughput, worker nodes;
pause and resume buttons per queue (``pause_queue``, ``resume_queue``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from pgbatch import _checks
from pgbatch.web import db
from pgbatch.web.charts import bar_chart
from pgbatch.web.errors import WebError
from pgbatch.web.templating import path_for, render


async def overview(request: Request) -> Response:
    """Queues, the throughput chart and the nodes."""
    client = db.client(request)
    stats = await client.queue_stats()
    nodes = await client.run(db.nodes())
    sampler = request.app.state.sampler
    return render(request, "overview.html", {
        "queues": stats,
        "nodes": nodes,
        "chart": bar_chart(sampler.bars(), sampler.every),
        "charts": {s.queue: bar_chart(sampler.bars(s.queue), sampler.every, small=True)
                   for s in stats},
    })


async def _queue_action(request: Request, pause: bool) -> Response:
    name = _checks.check_queue_name(request.path_params["queue"])
    client = db.client(request)
    if not await client.queue_stats(name):
        raise WebError(404, "QueueNotFound", f"no queue named {name[:200]!r}")
    if pause:
        await client.pause_queue(name)
    else:
        await client.resume_queue(name)
    return RedirectResponse(path_for(request, "overview"), status_code=303)


async def pause(request: Request) -> Response:
    """Form action: pause a queue."""
    return await _queue_action(request, pause=True)


async def resume(request: Request) -> Response:
    """Form action: resume a queue."""
    return await _queue_action(request, pause=False)


def routes() -> list[Route]:
    """The overview and the queue actions."""
    return [
        Route("/", overview, name="overview"),
        Route("/queues/{queue:path}/pause", pause, methods=["POST"], name="queue_pause"),
        Route("/queues/{queue:path}/resume", resume, methods=["POST"], name="queue_resume"),
    ]
