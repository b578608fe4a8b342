"""The REST API (/api/v1) against a real PostgreSQL: every endpoint, errors with PB codes."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.helpers import enqueue
from tests.web_helpers import (  # noqa: F401 - fixtures
    WebFactory,
    web_login_fixture,
    web_server_fixture,
)

Conn = psycopg.Connection[Any]


def test_queues_list_shows_counts(web_server: WebFactory, conn: Conn) -> None:
    enqueue(conn, "emails", {"to": "a@example.com"})
    server = web_server()
    with server.client() as http:
        r = http.get("/api/v1/queues")
    assert r.status_code == 200, r.text
    assert [q["queue"] for q in r.json()] == ["emails"]
    assert r.json()[0]["pending"] == 1
