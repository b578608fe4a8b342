"""``/metrics`` is derived from SQL in one query per scrape: counted on the wire.

The web server connects through a recording proxy (tests/wire_proxy.py) that
reads every statement its pool sends to PostgreSQL, prepared or not. After
warm-up (the pool open, the throughput sampler's first sample, one scrape),
each scrape sends exactly one statement, the ``pgbatch.metrics()`` call, and
nothing else reaches the server in between, with jobs, runs and schedules in
the database or none.
"""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
from psycopg.conninfo import make_conninfo

from pgbatch.web import db as web_db
from tests.batch_helpers import launch, register
from tests.conftest import TestDatabase
from tests.helpers import enqueue
from tests.web_helpers import (  # noqa: F401 - fixtures
    ADMIN,
    dead_job,
    start_web,
    web_login_fixture,
)
from tests.wire_proxy import StatementRecorder

Conn = psycopg.Connection[Any]
#: Scrapes counted after warm-up (more than psycopg's prepare threshold of 5, so both
#: the unprepared and the prepared form of the statement are counted).
SCRAPES = 8
METRICS_SQL = web_db.metrics().query


def scrape(http: httpx.Client) -> str:
    r = http.get("/metrics")
    assert r.status_code == 200, r.text
    return r.text


def statements_per_scrape(db: TestDatabase, web_login: str) -> list[list[str]]:
    """The statements the server was sent during each of SCRAPES scrapes (after warm-up)."""
    with StatementRecorder(make_conninfo(db.dsn, user=web_login)) as wire:
        # no second throughput sample during the test (the first is taken at start)
        server = start_web(wire.dsn(), credentials=(ADMIN,), sample_seconds=3600)
        try:
            wire.wait_for("queue_stats")  # the sampler's first sample went out
            with server.client(ADMIN) as http:
                scrape(http)  # warm-up
                found: list[list[str]] = []
                for _ in range(SCRAPES):
                    mark = wire.count()
                    scrape(http)
                    found.append(wire.since(mark))
                mark = wire.count()
                http.get("/api/v1/openapi.json")  # a request that runs no SQL: nothing sent
                assert wire.since(mark) == []
        finally:
            server.stop()
    return found


def test_each_scrape_sends_exactly_one_statement(db: TestDatabase, conn: Conn,
                                                 web_login: str) -> None:
    enqueue(conn, "emails")
    dead_job(conn, "emails")
    conn.execute("select pgbatch.pause_queue('reports')")
    register(conn, "nightly")
    launch(conn, "nightly", {"day": "1"})
    conn.execute("select pgbatch.create_schedule('hourly', 'interval', every => '1 hour', "
                 "queue => 'emails', payload => '{}')")
    assert statements_per_scrape(db, web_login) == [[METRICS_SQL]] * SCRAPES


def test_an_empty_database_too(db: TestDatabase, web_login: str) -> None:
    assert statements_per_scrape(db, web_login) == [[METRICS_SQL]] * SCRAPES
