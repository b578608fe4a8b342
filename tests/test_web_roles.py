"""The web server's database role: a read-only server as a login granted only
``pgbatch_viewer`` serves every page and GET endpoint; a server that may act refuses
to start without the admin rights; Idempotency-Key makes a retried POST retry repeat
the first answer.

Setup and checks use the test's superuser connection; the servers connect as
login roles that are members of one group role only.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from typing import Any, Final
from uuid import UUID

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb
from starlette.routing import Route

from pgbatch.web import WebConfig, create_app
from pgbatch.web import db as web_db
from tests.batch_helpers import launch, register
from tests.conftest import PgTestServer, TestDatabase
from tests.helpers import enqueue, state_snapshot
from tests.web_helpers import (  # noqa: F401 - fixtures
    ADMIN,
    WebFactory,
    dead_job,
    done_job,
    start_web,
    web_login_fixture,
    web_server_fixture,
)

Conn = psycopg.Connection[Any]
VIEWER_LOGIN: Final = "pgbatch_test_web_viewer"
PRODUCER_LOGIN: Final = "pgbatch_test_web_producer"
#: Query strings of the GET routes that need one (by route name).
QUERIES: Final = {"api_schedule_preview": {"cron": "*/5 * * * *"}}
#: Pages whose actions are buttons: a read-only server shows none of them.
BUTTONLESS: Final = frozenset({"overview", "job", "run", "approvals", "schedule"})


@pytest.fixture(name="viewer_login", scope="session")
def viewer_login_fixture(pg_server: PgTestServer) -> str:
    """A login role that is a member of pgbatch_viewer only."""
    _login(pg_server, VIEWER_LOGIN, "pgbatch_viewer")
    return VIEWER_LOGIN


@pytest.fixture(name="producer_login", scope="session")
def producer_login_fixture(pg_server: PgTestServer) -> str:
    """A login role that is a member of pgbatch_producer only."""
    _login(pg_server, PRODUCER_LOGIN, "pgbatch_producer")
    return PRODUCER_LOGIN


def _login(pg_server: PgTestServer, login: str, group: str) -> None:
    with psycopg.connect(pg_server.admin_dsn(), autocommit=True) as c, c.transaction():
        c.execute("select pg_advisory_xact_lock(8099550625553147908)")
        if c.execute("select from pg_roles where rolname = %s", [login]).fetchone() is None:
            c.execute(sql.SQL("create role {} login").format(sql.Identifier(login)))
        c.execute(sql.SQL("grant {} to {}").format(sql.Identifier(group), sql.Identifier(login)))


def _objects(conn: Conn) -> dict[str, str]:
    """One of each thing a page shows: a dead job, a queue, a run, a schedule."""
    job_id = dead_job(conn, "emails", {"to": "<b>a@example.com</b>"})
    done_job(conn, "emails")
    enqueue(conn, "reports")
    register(conn, "nightly-etl")
    run_id = launch(conn, "nightly-etl", {"day": "2026-12-01"})
    conn.execute("select pgbatch.create_schedule('nightly', 'cron', cron_expr => '0 3 * * *',"
                 " queue => 'reports', payload => %s)", [Jsonb({"k": 1})])
    return {"job_id": str(job_id), "queue": "emails", "run_id": str(run_id),
            "schedule": "nightly"}


def _get_paths(app_routes: list[Any], values: dict[str, str]) -> list[tuple[str, str]]:
    """``(route name, path)`` of every GET route, its path parameters filled from ``values``."""
    out: list[tuple[str, str]] = []
    for route in app_routes:
        if not isinstance(route, Route) or "GET" not in (route.methods or ()):
            continue
        path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values[m.group(1)], route.path)
        out.append((str(route.name), path))
    return out


def test_a_read_only_server_as_a_viewer_serves_every_page_and_get_endpoint(
        db: TestDatabase, conn: Conn, viewer_login: str) -> None:
    values = _objects(conn)
    server = start_web(make_conninfo(db.dsn, user=viewer_login), read_only=True)
    try:
        paths = _get_paths(create_app(server.config).routes, values)
        assert {"overview", "jobs", "job", "api_jobs", "api_job", "metrics", "api_runs",
                "api_run", "api_schedules", "api_schedule", "approvals"} <= {n for n, _ in paths}
        before = state_snapshot(conn)
        with server.client() as http:
            for name, path in paths:
                r = http.get(path, params=QUERIES.get(name, {}))
                assert r.status_code == 200, (name, path, r.status_code, r.text[:500])
                if name in BUTTONLESS:
                    assert 'method="post"' not in r.text.lower(), (name, "shows a button")
            job = http.get(f"/api/v1/jobs/{values['job_id']}").json()
            assert job["payload"] == {"to": "<b>a@example.com</b>"}  # a viewer sees payloads
            assert job["last_error"]["message"] == "bad row 7"
            assert "claim_token" not in job
            page = http.get(f"/jobs/{values['job_id']}").text
            assert "read-only" in page
            assert "&lt;b&gt;a@example.com&lt;/b&gt;" in page
            token = http.get("/api/v1/csrf").json()["token"]
            for action in (f"/api/v1/jobs/{values['job_id']}/retry",
                           f"/api/v1/jobs/{values['job_id']}/cancel", "/api/v1/queues/emails/pause",
                           f"/api/v1/runs/{values['run_id']}/stop",
                           "/api/v1/schedules/nightly/trigger"):
                r = http.post(action, headers={"X-CSRF-Token": token})
                assert (r.status_code, r.json()["error"]) == (403, "ReadOnly"), action
        assert state_snapshot(conn) == before
    finally:
        server.stop()


def _start_problem(dsn: str, read_only: bool) -> str:
    """The error the app's startup (its lifespan) raises for a server on ``dsn``."""
    app = create_app(WebConfig(dsn=dsn, read_only=read_only))

    async def start() -> None:
        async with web_db.lifespan(app):
            pass

    with pytest.raises(web_db.RoleRightsError) as info:
        asyncio.run(start())
    return str(info.value)


def test_a_server_that_may_act_refuses_to_start_as_a_viewer(db: TestDatabase,
                                                            viewer_login: str) -> None:
    message = _start_problem(make_conninfo(db.dsn, user=viewer_login), read_only=False)
    assert f"database role '{viewer_login}' may not execute the actions" in message
    assert "requeue_dead_job" in message
    assert "--read-only" in message


def test_a_read_only_server_refuses_to_start_as_a_role_that_may_not_read(
        db: TestDatabase, producer_login: str) -> None:
    message = _start_problem(make_conninfo(db.dsn, user=producer_login), read_only=True)
    assert f"database role '{producer_login}' may not execute" in message
    assert "list_jobs" in message
    assert "pgbatch_viewer" in message


def test_pgbatch_web_refuses_to_start_as_a_viewer_unless_read_only(
        db: TestDatabase, viewer_login: str) -> None:
    dsn = make_conninfo(db.dsn, user=viewer_login)
    proc = subprocess.run([sys.executable, "-m", "pgbatch", "web", "--dsn", dsn, "--port", "9"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert "may not execute the actions" in proc.stderr, proc.stderr
    assert "Uvicorn running" not in proc.stdout + proc.stderr


def test_an_admin_server_starts(db: TestDatabase, web_login: str) -> None:
    app = create_app(WebConfig(dsn=make_conninfo(db.dsn, user=web_login)))

    async def start() -> bool:
        async with web_db.lifespan(app):
            return app.state.client is not None

    assert asyncio.run(start())


# -- Idempotency-Key of retry ----------------------------------------------------------------


def test_retry_twice_with_the_same_key_answers_200_twice_with_the_same_body(
        web_server: WebFactory, conn: Conn) -> None:
    job_id = dead_job(conn, "emails")
    server = web_server(credentials=(ADMIN,))
    key = {"Idempotency-Key": "retry-7"}
    with server.client(ADMIN) as http:
        first = http.post(f"/api/v1/jobs/{job_id}/retry", headers=key)
        assert first.status_code == 200, first.text
        assert (first.json()["state"], first.json()["attempt"]) == ("pending", 0)
        before = state_snapshot(conn)
        second = http.post(f"/api/v1/jobs/{job_id}/retry", headers=key)
        assert second.status_code == 200, second.text
        assert second.content == first.content
        assert state_snapshot(conn) == before
        # without the key (or with another one) a retry of a job that is not dead is refused
        r = http.post(f"/api/v1/jobs/{job_id}/retry")
        assert (r.status_code, r.json()["error"]) == (409, "InvalidState")
        r = http.post(f"/api/v1/jobs/{job_id}/retry", headers={"Idempotency-Key": "other"})
        assert (r.status_code, r.json()["error"]) == (409, "InvalidState")
    assert state_snapshot(conn) == before
    recorded = conn.execute("select job_id from pgbatch.job_request").fetchall()
    assert recorded == [(UUID(str(job_id)),)]
