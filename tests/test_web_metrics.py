"""``/metrics``: the Prometheus text format from one ``pgbatch.metrics()`` query."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from tests.batch_helpers import launch, register, run_to_end
from tests.helpers import enqueue, raises_sqlstate
from tests.web_helpers import (  # noqa: F401 - fixtures
    ADMIN,
    READER,
    WebFactory,
    claimed_job,
    dead_job,
    done_job,
    web_login_fixture,
    web_server_fixture,
)

Conn = psycopg.Connection[Any]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(http: httpx.Client) -> Samples:
    r = http.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_report_queues_runs_approvals_and_schedule_lag(web_server: WebFactory,
                                                                conn: Conn) -> None:
    enqueue(conn, "emails")
    enqueue(conn, "emails")
    claimed_job(conn, "emails")
    done_job(conn, "emails")
    dead_job(conn, "emails")
    conn.execute("select pgbatch.cancel_job(%s)", [enqueue(conn, "emails")])
    conn.execute("select pgbatch.pause_queue('reports')")
    register(conn, "nightly")
    first = launch(conn, "nightly", {"day": "1"})
    assert run_to_end(conn, first) == "COMPLETED"
    second = launch(conn, "nightly", {"day": "2"})
    # a pending approval gate of the second run (a state factory: the row as a gate leaves it)
    conn.execute("insert into pgbatch.approval (job_execution_id, gate_name, status, "
                 "requested_at) values (%s, 'sign-off', 'PENDING', pgbatch.now())", [second])
    conn.execute("select pgbatch.create_schedule('hourly', 'interval', every => '1 hour', "
                 "anchor => pgbatch.now() - interval '90 minutes', queue => 'emails', "
                 "payload => '{}')")
    conn.execute("select pgbatch.create_schedule('later', 'interval', every => '1 hour', "
                 "anchor => pgbatch.now() + interval '1 hour', queue => 'emails', "
                 "payload => '{}')")
    # the schedule's next due is 30 minutes ago once its watermark is an hour back
    conn.execute("update pgbatch.schedule set next_due_at = pgbatch.now() - %s "
                 "where id = 'hourly'", [timedelta(minutes=30)])

    server = web_server(credentials=(ADMIN, READER))
    with server.client(READER) as http:
        m = scrape(http)

    def q(name: str, **labels: str) -> float:
        return m[(name, tuple(sorted(labels.items())))]

    assert q("pgbatch_queue_jobs", queue="emails", state="pending") == 2
    assert q("pgbatch_queue_jobs", queue="emails", state="claimed") == 1
    assert q("pgbatch_queue_jobs", queue="emails", state="scheduled") == 0
    assert q("pgbatch_queue_finished_jobs", queue="emails", state="done") == 1
    assert q("pgbatch_queue_finished_jobs", queue="emails", state="dead") == 1
    assert q("pgbatch_queue_finished_jobs", queue="emails", state="cancelled") == 1
    assert q("pgbatch_queue_oldest_pending_seconds", queue="emails") > 0
    assert q("pgbatch_queue_paused", queue="reports") == 1
    assert q("pgbatch_queue_paused", queue="emails") == 0
    assert q("pgbatch_runs", status="COMPLETED") == 1
    assert q("pgbatch_runs", status="STARTING") == 1
    assert q("pgbatch_approvals_pending") == 1
    assert 1790 < q("pgbatch_schedule_lag_seconds", schedule="hourly") < 1900
    assert q("pgbatch_schedule_lag_seconds", schedule="later") == 0


def test_metrics_of_an_empty_database(web_server: WebFactory) -> None:
    server = web_server()
    with server.client() as http:
        m = scrape(http)
    assert ("pgbatch_approvals_pending", ()) in m
    assert not [k for k in m if k[0] == "pgbatch_queue_jobs"]


def test_web_nodes_judges_liveness_by_heartbeat_age_and_refuses_bad_input(conn: Conn) -> None:
    conn.execute("select pgbatch.register_node('fresh', gen_random_uuid(), '{}')")
    conn.execute("select pgbatch.register_node('silent', gen_random_uuid(), '{}')")
    conn.execute("update pgbatch.node set heartbeat_at = pgbatch.now() - interval '5 minutes' "
                 "where node_id = 'silent'")
    rows = conn.execute("select node_id, alive from pgbatch.web_nodes()").fetchall()
    assert rows == [("fresh", True), ("silent", False)]
    rows = conn.execute("select node_id, alive from pgbatch.web_nodes('1 hour')").fetchall()
    assert rows == [("fresh", True), ("silent", True)]
    for bad in ("null", "'0 seconds'", "'-1 minute'", "'2 days'"):
        with raises_sqlstate("PB007", "invalid stale_after"):
            conn.execute(f"select * from pgbatch.web_nodes({bad}::interval)")
