"""The REST API (/api/v1) against a real PostgreSQL: every endpoint, and bad input that
gets a 4xx with its PB code and changes nothing.

The server connects as a login that is only a ``pgbatch_admin`` member
(``web_login``); setup and checks use the test's superuser connection.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

import httpx
import psycopg
import pytest

from pgbatch.web import create_app
from pgbatch.web.openapi import ApiRoute
from tests.helpers import enqueue, set_clock, state_snapshot
from tests.web_helpers import (  # noqa: F401 - fixtures
    ADMIN,
    WebFactory,
    WebServer,
    claimed_job,
    dead_job,
    done_job,
    web_login_fixture,
    web_server_fixture,
)

Conn = psycopg.Connection[Any]


@pytest.fixture
def server(web_server: WebFactory) -> WebServer:
    """A server with an admin token (API calls send it as a bearer token)."""
    return web_server(credentials=(ADMIN,))


@pytest.fixture
def http(server: WebServer) -> Any:
    with server.client(ADMIN) as client:
        yield client


def assert_error(r: httpx.Response, status: int, code: str, error: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert (body["code"], body["error"]) == (code, error), body
    assert body["message"]
    return body


# -- queues ---------------------------------------------------------------------------------


def test_queues_list_and_get_show_the_counts_of_queue_stats(http: httpx.Client,
                                                             conn: Conn) -> None:
    enqueue(conn, "emails", {"to": "a@example.com"})
    enqueue(conn, "emails", {"to": "b@example.com"}, run_at=datetime.now(UTC) + timedelta(hours=1))
    dead_job(conn, "reports")
    r = http.get("/api/v1/queues")
    assert r.status_code == 200, r.text
    by_queue = {q["queue"]: q for q in r.json()}
    assert set(by_queue) == {"emails", "reports"}
    assert (by_queue["emails"]["pending"], by_queue["emails"]["scheduled"]) == (1, 1)
    assert by_queue["reports"]["dead"] == 1
    one = http.get("/api/v1/queues/emails").json()
    assert one["queue"] == "emails"
    assert one["paused"] is False
    assert isinstance(one["oldest_pending_age"], float)


def test_unknown_and_malformed_queue_names_are_4xx(http: httpx.Client, conn: Conn) -> None:
    before = state_snapshot(conn)
    assert_error(http.get("/api/v1/queues/nope"), 404, "HTTP404", "QueueNotFound")
    assert_error(http.post("/api/v1/queues/nope/pause"), 404, "HTTP404", "QueueNotFound")
    assert_error(http.get("/api/v1/queues/" + "q" * 1000), 400, "PB005", "InvalidQueueName")
    assert_error(http.post("/api/v1/queues/%20%20/pause"), 400, "PB005", "InvalidQueueName")
    assert state_snapshot(conn) == before


def test_pause_and_resume_a_queue(http: httpx.Client, conn: Conn) -> None:
    enqueue(conn, "emails")
    r = http.post("/api/v1/queues/emails/pause")
    assert r.status_code == 200, r.text
    assert r.json()["paused"] is True
    assert conn.execute("select paused from pgbatch.queue where name = 'emails'").fetchone() == (
        True,)
    assert conn.execute("select count(*) from pgbatch.claim('emails', 1)").fetchone() == (0,)
    r = http.post("/api/v1/queues/emails/resume")
    assert r.json()["paused"] is False
    assert conn.execute("select count(*) from pgbatch.claim('emails', 1)").fetchone() == (1,)


def test_a_queue_name_with_slashes_and_markup_round_trips(http: httpx.Client,
                                                          conn: Conn) -> None:
    name = "a/b <script>?#&"
    enqueue(conn, name)
    r = http.get("/api/v1/queues/" + quote(name, safe=""))
    assert r.status_code == 200, r.text
    assert r.json()["queue"] == name


# -- jobs: reading --------------------------------------------------------------------------


def test_get_job_returns_payload_attempts_error_and_never_a_claim_token(
        http: httpx.Client, conn: Conn) -> None:
    job_id = dead_job(conn, "emails", {"to": "a@example.com"})
    r = http.get(f"/api/v1/jobs/{job_id}")
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["id"] == str(job_id)
    assert job["state"] == "dead"
    assert job["payload"] == {"to": "a@example.com"}
    assert (job["attempt"], job["max_attempts"]) == (1, 1)
    assert "ValueError: bad row 7" in job["last_error"]["traceback"]
    assert "claim_token" not in job


def test_get_job_unknown_and_malformed_ids(http: httpx.Client, conn: Conn) -> None:
    assert_error(http.get(f"/api/v1/jobs/{uuid4()}"), 404, "PB003", "JobNotFound")
    assert_error(http.get("/api/v1/jobs/not-a-uuid"), 400, "PB007", "InvalidArgument")
    assert_error(http.get("/api/v1/jobs/'%3B%20drop%20table%20pgbatch.job%3B--"), 400, "PB007",
                 "InvalidArgument")
    assert conn.execute("select to_regclass('pgbatch.job')").fetchone() == ("pgbatch.job",)


def test_list_jobs_pages_by_cursor_without_repeating_or_skipping(http: httpx.Client,
                                                                  conn: Conn) -> None:
    ids = [enqueue(conn, "emails", {"n": i}) for i in range(7)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        r = http.get("/api/v1/jobs", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [j["id"] for j in body["jobs"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [str(i) for i in reversed(ids)]  # newest first, each once


def test_list_jobs_filters_by_queue_state_and_creation_time(http: httpx.Client,
                                                            conn: Conn) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    mid = t0 + timedelta(hours=1)
    set_clock(conn, t0)
    old = enqueue(conn, "emails", {"n": "old"})
    set_clock(conn, t0 + timedelta(hours=2))
    new = enqueue(conn, "emails", {"n": "new"})
    other = enqueue(conn, "reports", {"n": "other"})
    dead = dead_job(conn, "emails")
    set_clock(conn, None)

    def ids(**params: Any) -> set[str]:
        r = http.get("/api/v1/jobs", params=params)
        assert r.status_code == 200, r.text
        return {j["id"] for j in r.json()["jobs"]}

    assert ids(queue="reports") == {str(other)}
    assert ids(queue="emails", state="dead") == {str(dead)}
    assert ids(queue="emails", created_before=mid.isoformat()) == {str(old)}
    assert ids(queue="emails", state="scheduled") == set()
    no_offset = mid.replace(tzinfo=None).isoformat()  # no offset: UTC
    after = ids(queue="emails", created_after=no_offset)
    assert after == {str(new), str(dead)}


@pytest.mark.parametrize(("params", "code", "error"), [
    ({"state": "bogus"}, "PB007", "InvalidArgument"),
    ({"limit": "0"}, "PB007", "InvalidArgument"),
    ({"limit": "ten"}, "PB007", "InvalidArgument"),
    ({"cursor": "not-a-cursor"}, "PB007", "InvalidArgument"),
    ({"created_after": "yesterday"}, "PB007", "InvalidArgument"),
    ({"queue": "x" * 1000}, "PB005", "InvalidQueueName"),
    ({"queue": "   "}, "PB005", "InvalidQueueName"),
])
def test_list_jobs_bad_filters_are_400_with_the_pb_code(
        http: httpx.Client, params: dict[str, str], code: str, error: str) -> None:
    assert_error(http.get("/api/v1/jobs", params=params), 400, code, error)


# -- jobs: actions --------------------------------------------------------------------------


def test_retry_makes_a_dead_job_pending_with_a_fresh_attempt_count(http: httpx.Client,
                                                                   conn: Conn) -> None:
    job_id = dead_job(conn, "emails")
    r = http.post(f"/api/v1/jobs/{job_id}/retry")
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["attempt"]) == ("pending", 0)
    assert conn.execute("select state from pgbatch.job where id = %s", [job_id]).fetchone() == (
        "pending",)


def test_retry_of_a_job_that_is_not_dead_is_409_and_changes_nothing(http: httpx.Client,
                                                                    conn: Conn) -> None:
    pending = enqueue(conn, "emails")
    done = done_job(conn, "emails")
    before = state_snapshot(conn)
    assert_error(http.post(f"/api/v1/jobs/{pending}/retry"), 409, "PB004", "InvalidState")
    assert_error(http.post(f"/api/v1/jobs/{done}/retry"), 409, "PB004", "InvalidState")
    assert_error(http.post(f"/api/v1/jobs/{uuid4()}/retry"), 404, "PB003", "JobNotFound")
    assert state_snapshot(conn) == before


def test_cancel_a_pending_job_and_flag_a_claimed_one(http: httpx.Client, conn: Conn) -> None:
    pending = enqueue(conn, "emails")
    running = claimed_job(conn, "emails")
    r = http.post(f"/api/v1/jobs/{pending}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "cancelled"
    assert r.json()["job"]["state"] == "cancelled"
    r = http.post(f"/api/v1/jobs/{running}/cancel")
    assert r.json()["outcome"] == "cancel_requested"
    assert r.json()["job"]["cancel_requested"] is True
    # cancelling again is the same answer (cancel_job is idempotent)
    assert http.post(f"/api/v1/jobs/{pending}/cancel").json()["outcome"] == "cancelled"


def test_cancel_of_a_done_job_is_409_and_changes_nothing(http: httpx.Client, conn: Conn) -> None:
    done = done_job(conn, "emails")
    before = state_snapshot(conn)
    assert_error(http.post(f"/api/v1/jobs/{done}/cancel"), 409, "PB004", "InvalidState")
    assert state_snapshot(conn) == before


def test_requeue_enqueues_a_copy_of_a_finished_job(http: httpx.Client, conn: Conn) -> None:
    done = done_job(conn, "emails", {"to": "a@example.com"})
    r = http.post(f"/api/v1/jobs/{done}/requeue")
    assert r.status_code == 200, r.text
    copy = r.json()["job"]
    assert copy["id"] != str(done)
    assert copy["state"] == "pending"
    assert (copy["queue"], copy["payload"]) == ("emails", {"to": "a@example.com"})
    assert r.json()["replayed"] is False
    # without a key, each request makes a new job
    again = http.post(f"/api/v1/jobs/{done}/requeue").json()["job"]["id"]
    assert again not in (copy["id"], str(done))


def test_requeue_with_an_idempotency_key_makes_one_job(http: httpx.Client, conn: Conn) -> None:
    done = done_job(conn, "emails")
    headers = {"Idempotency-Key": "requeue-once-42"}
    first = http.post(f"/api/v1/jobs/{done}/requeue", headers=headers).json()
    second = http.post(f"/api/v1/jobs/{done}/requeue", headers=headers).json()
    assert first["job"]["id"] == second["job"]["id"]
    assert (first["replayed"], second["replayed"]) == (False, True)
    rows = conn.execute("select count(*) from pgbatch.job where queue = 'emails'").fetchone()
    assert rows == (1,)
    assert_error(http.post(f"/api/v1/jobs/{done}/requeue", headers={"Idempotency-Key": "k" * 201}),
                 400, "PB007", "InvalidArgument")


def test_requeue_of_a_live_job_is_409_and_changes_nothing(http: httpx.Client,
                                                          conn: Conn) -> None:
    pending = enqueue(conn, "emails")
    before = state_snapshot(conn)
    assert_error(http.post(f"/api/v1/jobs/{pending}/requeue"), 409, "PB004", "InvalidState")
    assert state_snapshot(conn) == before


# -- the document and the meta routes ------------------------------------------------------


def test_openapi_lists_every_api_route(server: WebServer, http: httpx.Client) -> None:
    r = http.get("/api/v1/openapi.json")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    app = create_app(server.config)
    api = [r for r in app.routes if getattr(r, "path", "").startswith("/api/")]
    assert api
    assert all(isinstance(r, ApiRoute) for r in api)
    served = {(re.sub(r":\w+}", "}", r.path), "post" if r.action else "get")
              for r in api if isinstance(r, ApiRoute)}
    assert documented == served
    retry = doc["paths"]["/api/v1/jobs/{job_id}/retry"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in retry["parameters"]]
    assert "409" in retry["responses"]


def test_unknown_api_route_is_a_json_404(http: httpx.Client) -> None:
    assert_error(http.get("/api/v1/nothing-here"), 404, "HTTP404", "NotFound")


def test_csrf_endpoint_says_who_is_asking(http: httpx.Client) -> None:
    body = http.get("/api/v1/csrf").json()
    assert body["principal"] == {"name": "ops", "kind": "admin"}
    assert "." in body["token"]


def test_job_ids_in_responses_are_uuids(http: httpx.Client, conn: Conn) -> None:
    enqueue(conn, "emails")
    jobs = http.get("/api/v1/jobs").json()["jobs"]
    assert UUID(jobs[0]["id"])
