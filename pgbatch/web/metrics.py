"""``GET /metrics``: Prometheus text format (prometheus-client), from one query per scrape.

Every value comes from one call of ``pgbatch.metrics()``; a fresh
``CollectorRegistry`` per scrape holds them, so nothing is cached between
scrapes and several replicas report the same numbers. Metric names:

- ``pgbatch_queue_jobs{queue,state}``: pending / scheduled / claimed jobs
- ``pgbatch_queue_finished_jobs{queue,state}``: archived done / dead /
  cancelled jobs not yet swept (they rise with work; a sweep lowers them)
- ``pgbatch_queue_oldest_pending_seconds{queue}``, ``pgbatch_queue_paused{queue}``
- ``pgbatch_runs{status}``: batch executions by status
- ``pgbatch_approvals_pending``: approval gates waiting for a decision
- ``pgbatch_schedule_lag_seconds{schedule}``: now minus next due of each
  enabled schedule (0 while not due)
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pgbatch.web import db

#: SQL metric -> (Prometheus name, help, label names).
GAUGES: Final = {
    "queue_jobs": ("pgbatch_queue_jobs", "live jobs per queue and state", ("queue", "state")),
    "queue_finished": ("pgbatch_queue_finished_jobs",
                       "archived jobs per queue and final state, not yet swept",
                       ("queue", "state")),
    "queue_oldest_pending_seconds": ("pgbatch_queue_oldest_pending_seconds",
                                     "age of the oldest claimable job", ("queue",)),
    "queue_paused": ("pgbatch_queue_paused", "1 when the queue is paused", ("queue",)),
    "runs": ("pgbatch_runs", "batch job executions by status", ("status",)),
    "approvals_pending": ("pgbatch_approvals_pending", "approval gates waiting", ()),
    "schedule_lag_seconds": ("pgbatch_schedule_lag_seconds",
                             "now minus next due of an enabled schedule (0 when not due)",
                             ("schedule",)),
}


async def scrape(request: Request) -> Response:
    """One ``pgbatch.metrics()`` query, rendered in the Prometheus text format."""
    rows = await db.client(request).run(db.metrics())
    registry = CollectorRegistry()
    gauges = {key: Gauge(name, text, labels, registry=registry)
              for key, (name, text, labels) in GAUGES.items()}
    for row in rows:
        gauge = gauges.get(row["metric"])
        if gauge is None:
            continue
        labels = GAUGES[row["metric"]][2]
        values = [v for v in (row["queue"], row["label"]) if v is not None]
        if row["metric"] == "queue_oldest_pending_seconds" or row["metric"] == "queue_paused":
            values = [row["queue"]]
        (gauge.labels(*values) if labels else gauge).set(row["value"])
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def routes() -> list[Route]:
    """``/metrics``."""
    return [Route("/metrics", scrape, name="metrics")]
