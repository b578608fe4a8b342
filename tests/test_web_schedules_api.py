"""The REST API of schedules (/api/v1/schedules) against a real PostgreSQL: create with
scheduleCatchUpWindow, list, one schedule with its history, edit, pause, resume with and
without catch-up, trigger (Idempotency-Key fires once), backfill, the preview of the next
occurrences across a DST change, and bad input (malformed cron, unknown time zone,
unknown names, hostile strings): 4xx with the PB code and nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.conftest import TestDatabase
from tests.schedule_helpers import digest, fires, jobs_of, schedule
from tests.web_helpers import (  # noqa: F401 - fixtures
    ADMIN,
    WebFactory,
    WebServer,
    start_web,
    web_login_fixture,
    web_server_fixture,
)

Conn = psycopg.Connection[Any]
#: The database clock of these tests: a Friday before the US DST change of 2030-03-10.
NOW = "2030-03-08 12:00:00+00"


@pytest.fixture(name="api")
def api_fixture(web_server: WebFactory) -> Iterator[httpx.Client]:
    """An admin bearer client of a server connected as the pgbatch_admin login."""
    server: WebServer = web_server(credentials=(ADMIN,))
    with server.client(ADMIN) as http:
        yield http


@pytest.fixture(name="clocked_api")
def clocked_api_fixture(db: TestDatabase, conn: Conn) -> Iterator[httpx.Client]:
    """An admin bearer client of a server whose sessions all see the database clock NOW.

    Only a superuser session may move pgbatch.now() (sql/testing), so this server
    connects as the test database's superuser, with pgbatch.fake_now set for the
    database (its new sessions) and for ``conn``.
    """
    conn.execute(sql.SQL("alter database {} set pgbatch.fake_now = {}").format(
        sql.Identifier(db.name), sql.Literal(NOW)))
    conn.execute("select set_config('pgbatch.fake_now', %s, false)", [NOW])
    server = start_web(db.dsn, credentials=(ADMIN,))
    try:
        with server.client(ADMIN) as http:
            yield http
    finally:
        server.stop()


def make(api: httpx.Client, name: str = "nightly", **fields: Any) -> httpx.Response:
    body = {"name": name, "cron": "0 3 * * *", "tz": "UTC", "queue": "q",
            "payload": {"k": 1}, **fields}
    return api.post("/api/v1/schedules", json=body)


def test_create_with_catch_up_window_then_list_and_get(clocked_api: httpx.Client,
                                                        conn: Conn) -> None:
    api = clocked_api
    r = make(api, scheduleCatchUpWindow=3600, misfireThreshold=30)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "nightly"
    row = schedule(conn, "nightly")
    assert row["catchup_window"] == timedelta(hours=1)
    assert row["misfire_threshold"] == timedelta(seconds=30)
    listed = api.get("/api/v1/schedules").json()
    assert [s["name"] for s in listed] == ["nightly"]
    assert listed[0]["next_due_at"].startswith("2030-03-09T03:00:00")
    one = api.get("/api/v1/schedules/nightly").json()
    assert one["schedule"]["cron"] == "0 3 * * *"
    assert one["history"] == []


def test_trigger_with_idempotency_key_fires_once(api: httpx.Client, conn: Conn) -> None:
    assert make(api).status_code == 201
    headers = {"Idempotency-Key": "fire-it-once"}
    a = api.post("/api/v1/schedules/nightly/trigger", headers=headers)
    b = api.post("/api/v1/schedules/nightly/trigger", headers=headers)
    assert a.status_code == b.status_code == 200, a.text
    assert a.json()["fire_at"] == b.json()["fire_at"]
    assert a.json()["source"] == "manual"
    assert len(fires(conn, "nightly", "manual")) == 1
    assert jobs_of(conn, "nightly") == 1
    history = api.get("/api/v1/schedules/nightly").json()["history"]
    assert [(h["source"], h["outcome"]) for h in history] == [("manual", "fired")]
    assert history[0]["job_id"] is not None


def test_pause_resume_with_and_without_catch_up(api: httpx.Client, conn: Conn) -> None:
    assert make(api, scheduleCatchUpWindow=86400).status_code == 201
    paused = api.post("/api/v1/schedules/nightly/pause").json()
    assert paused["paused_at"] is not None
    assert schedule(conn, "nightly")["paused_at"]
    plain = api.post("/api/v1/schedules/nightly/resume").json()
    assert plain["paused_at"] is None
    api.post("/api/v1/schedules/nightly/pause")
    caught = api.post("/api/v1/schedules/nightly/resume", json={"catch_up": True})
    assert caught.status_code == 200, caught.text
    assert caught.json()["paused_at"] is None
    bad = api.post("/api/v1/schedules/nightly/resume", json={"catch_up": "perhaps"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "PB007"


def test_edit_and_backfill(clocked_api: httpx.Client, conn: Conn) -> None:
    api = clocked_api
    assert make(api).status_code == 201
    r = api.post("/api/v1/schedules/nightly/update",
                 json={"cron": "0 6 * * *", "timeZone": "Europe/Paris",
                       "scheduleCatchUpWindow": 600})
    assert r.status_code == 200, r.text
    row = schedule(conn, "nightly")
    assert (row["cron_expr"], row["tz"], row["catchup_window"]) == \
        ("0 6 * * *", "Europe/Paris", timedelta(minutes=10))
    filled = api.post("/api/v1/schedules/nightly/backfill",
                      json={"start": "2030-03-01T00:00:00Z", "end": "2030-03-04T00:00:00Z"})
    assert filled.status_code == 200, filled.text
    assert len(filled.json()) == 3
    assert len(fires(conn, "nightly", "backfill")) == 3
    missing = api.post("/api/v1/schedules/nightly/backfill", json={"start": "2030-03-01"})
    assert missing.status_code == 400
    assert missing.json()["code"] == "PB007"


def test_preview_crosses_the_dst_change(clocked_api: httpx.Client) -> None:
    r = clocked_api.get("/api/v1/schedules/preview",
                params={"cron": "0 12 * * *", "tz": "America/New_York", "count": 4})
    assert r.status_code == 200, r.text
    got = [(o["local"], o["utc_offset"], o["offset_changed"]) for o in r.json()]
    assert got == [("2030-03-08 Fri 12:00", "-05:00", False),
                   ("2030-03-09 Sat 12:00", "-05:00", False),
                   ("2030-03-10 Sun 12:00", "-04:00", True),
                   ("2030-03-11 Mon 12:00", "-04:00", False)]
    assert r.json()[2]["at"].startswith("2030-03-10T16:00:00")


HOSTILE = "<img src=x onerror=window.__pwned=true>'; drop table pgbatch.schedule;--"


@pytest.mark.parametrize(("method", "url", "body", "status", "code"), [
    ("post", "/api/v1/schedules", {"name": "x", "cron": "61 * * * *", "queue": "q"}, 400,
     "PB020"),
    ("post", "/api/v1/schedules", {"name": "x", "cron": "* * * * *", "tz": "Mars/Olympus",
                                   "queue": "q"}, 400, "PB021"),
    ("post", "/api/v1/schedules", {"name": "x", "cron": 5, "queue": "q"}, 400, "PB061"),
    ("post", "/api/v1/schedules", {"name": "x", "cron": "* * * * *", "bogus": 1}, 400,
     "PB061"),
    ("post", "/api/v1/schedules", {"name": HOSTILE, "cron": "* * * * *", "queue": "q"}, 400,
     "PB061"),
    ("post", "/api/v1/schedules", {"name": "nightly", "cron": "* * * * *", "queue": "q"}, 409,
     ""),
    ("post", "/api/v1/schedules", [1, 2], 400, "PB007"),
    ("get", "/api/v1/schedules/no-such", None, 404, ""),
    ("get", f"/api/v1/schedules/{HOSTILE}", None, 404, ""),
    ("post", "/api/v1/schedules/no-such/pause", None, 404, ""),
    ("post", "/api/v1/schedules/no-such/trigger", None, 404, ""),
    ("post", "/api/v1/schedules/nightly/update", {"cron": "nope"}, 400, "PB020"),
    ("post", "/api/v1/schedules/nightly/update", {"tz": "No/Where"}, 400, "PB021"),
    ("post", "/api/v1/schedules/nightly/update", {"color": "red"}, 400, "PB061"),
    ("post", "/api/v1/schedules/nightly/backfill", {"start": "yesterday", "end": "x"}, 400,
     "PB007"),
    ("get", "/api/v1/schedules/preview?cron=%2A%2F0+%2A+%2A+%2A+%2A", None, 400, "PB020"),
    ("get", "/api/v1/schedules/preview?cron=0+1+%2A+%2A+%2A&tz=Nowhere%2FLand", None, 400,
     "PB021"),
    ("get", "/api/v1/schedules/preview?cron=0+1+%2A+%2A+%2A&count=999", None, 400, "PB007"),
])
def test_bad_input_is_4xx_with_the_pb_code_and_changes_nothing(
        api: httpx.Client, conn: Conn, method: str, url: str, body: Any, status: int,
        code: str) -> None:
    assert make(api).status_code == 201
    before = digest(conn)
    r = api.request(method.upper(), url, json=body) if body is not None else \
        api.request(method.upper(), url)
    assert r.status_code == status, r.text
    err = r.json()
    assert set(err) == {"code", "error", "message"}
    assert err["code"].startswith("PB"), err
    assert not code or err["code"] == code, err
    assert digest(conn) == before
