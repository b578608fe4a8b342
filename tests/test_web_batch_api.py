"""The REST API of batch runs and approvals (/api/v1/runs, /api/v1/approvals) against a
real PostgreSQL: keyset pages, the run with steps and timeline, every operator action
with its typed result for lost races, Idempotency-Key, and bad input (4xx with the PB
code, nothing changed). Pause/resume and approvals run where the schema has them; on a
schema without them the routes answer 501 NotAvailable."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from pgbatch.batch.records import ExecutionEvent
from pgbatch.web.timeline import TIMES, timeline
from tests.batch_helpers import (
    assert_invariants,
    batch_state,
    claim_item,
    launch,
    register,
    run_to_end,
    start,
)
from tests.web_helpers import (  # noqa: F401 - fixtures
    ADMIN,
    WebFactory,
    WebServer,
    web_login_fixture,
    web_server_fixture,
)

Conn = psycopg.Connection[Any]


def has_function(conn: Conn, name: str) -> bool:
    """Whether the schema has ``pgbatch.<name>`` (pause and gates come with newer schemas)."""
    row = conn.execute("select exists (select from pg_proc p join pg_namespace n"
                       " on n.oid = p.pronamespace where n.nspname = 'pgbatch'"
                       " and p.proname = %s)", [name]).fetchone()
    return bool(row and row[0])


@pytest.fixture(name="api")
def api_fixture(web_server: WebFactory) -> Iterator[httpx.Client]:
    """An admin bearer client of a server with credentials (actions need no CSRF token)."""
    server: WebServer = web_server(credentials=(ADMIN,))
    with server.client(ADMIN) as http:
        yield http


def launch_many(conn: Conn, count: int, job: str = "j") -> list[int]:
    """Launch ``count`` instances of ``job`` (each its own identifying parameter)."""
    return [launch(conn, job, {"n": i}) for i in range(count)]


def test_runs_list_walks_keyset_pages_newest_first(api: httpx.Client, conn: Conn) -> None:
    register(conn, "j")
    register(conn, "other")
    ids = launch_many(conn, 5)
    other = launch(conn, "other", {"n": 1})
    seen: list[int] = []
    cursor: str | None = None
    while True:
        r = api.get("/api/v1/runs", params={"job": "j", "limit": 2,
                                            **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["runs"]) <= 2
        seen += [run["execution_id"] for run in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    everything = api.get("/api/v1/runs").json()["runs"]
    assert [r["execution_id"] for r in everything] == sorted([*ids, other], reverse=True)
    by_status = api.get("/api/v1/runs", params={"status": "STARTING", "job": "other"}).json()
    assert [r["execution_id"] for r in by_status["runs"]] == [other]
    assert api.get("/api/v1/runs", params={"status": "COMPLETED"}).json()["runs"] == []


def test_run_shows_steps_counts_and_a_timeline(api: httpx.Client, conn: Conn) -> None:
    register(conn, "j")
    execution_id = launch(conn, "j")
    assert run_to_end(conn, execution_id, chunks=3) == "COMPLETED"
    r = api.get(f"/api/v1/runs/{execution_id}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["execution"]["execution_status"] == "COMPLETED"
    load = {s["step_name"]: s for s in body["steps"]}["load"]
    assert (load["read_count"], load["write_count"], load["commit_count"]) == (30, 30, 3)
    assert load["total"] is None
    assert load["percent"] is None
    labels = [t["label"] for t in body["timeline"]]
    assert labels[0] == "launched"
    assert body["event_count"] == len(api.get(f"/api/v1/runs/{execution_id}/events").json())
    assert body["actions"]["stop"] is False
    assert body["actions"]["restart"] is False


def test_stop_then_lost_race_says_so(api: httpx.Client, conn: Conn) -> None:
    register(conn, "j")
    execution_id = launch(conn, "j")
    first = api.post(f"/api/v1/runs/{execution_id}/stop")
    assert first.status_code == 200, first.text
    assert (first.json()["applied"], first.json()["status"]) == (True, "STOPPED")
    second = api.post(f"/api/v1/runs/{execution_id}/stop").json()
    assert (second["applied"], second["status"]) == (False, "STOPPED")
    assert second["message"] == ("Not stopped: already stopped by another request "
                                 "(the run is STOPPED).")
    assert_invariants(conn)


def test_idempotency_key_repeats_the_same_call(api: httpx.Client, conn: Conn) -> None:
    register(conn, "j")
    execution_id = launch(conn, "j")
    headers = {"Idempotency-Key": "stop-once-7"}
    a = api.post(f"/api/v1/runs/{execution_id}/stop", headers=headers).json()
    b = api.post(f"/api/v1/runs/{execution_id}/stop", headers=headers).json()
    assert a["applied"]
    assert b["applied"]
    assert a["request_id"] == b["request_id"]
    stops = conn.execute("select count(*) from pgbatch.execution_event where"
                         " job_execution_id = %s and to_status = 'STOPPED'",
                         [execution_id]).fetchone()
    assert stops is not None
    assert stops[0] == 1
    restart_headers = {"Idempotency-Key": "restart-once"}
    r1 = api.post(f"/api/v1/runs/{execution_id}/restart", headers=restart_headers).json()
    r2 = api.post(f"/api/v1/runs/{execution_id}/restart", headers=restart_headers).json()
    assert r1["new_execution_id"] == r2["new_execution_id"] != execution_id


def test_abandon_recover_cancel_and_restart(api: httpx.Client, conn: Conn) -> None:
    register(conn, "j")
    stopped = launch(conn, "j", {"n": 1})
    api.post(f"/api/v1/runs/{stopped}/stop")
    restarted = api.post(f"/api/v1/runs/{stopped}/restart").json()
    assert restarted["applied"]
    assert restarted["new_execution_id"] > stopped
    new_id = restarted["new_execution_id"]
    assert api.get(f"/api/v1/runs/{new_id}").json()["execution"]["execution_status"] == \
        "STARTING"
    recover = api.post(f"/api/v1/runs/{new_id}/recover").json()
    assert recover["applied"] is False
    assert recover["status"] == "STARTING"
    assert recover["message"].startswith("Not recovered:")
    early = api.post(f"/api/v1/runs/{new_id}/abandon").json()
    assert early["applied"] is False
    assert early["message"] == ("Not abandoned: a STARTING run cannot be abandoned "
                                "(the run is STARTING).")
    api.post(f"/api/v1/runs/{new_id}/stop")
    abandon = api.post(f"/api/v1/runs/{new_id}/abandon").json()
    assert (abandon["applied"], abandon["status"]) == (True, "ABANDONED")
    running = launch(conn, "j", {"n": 2})
    start(conn, claim_item(conn))
    cancel = api.post(f"/api/v1/runs/{running}/cancel")
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["action"] == "cancel"
    refused = api.post(f"/api/v1/runs/{new_id}/restart")
    assert refused.status_code == 409
    assert refused.json()["code"].startswith("PB")
    assert_invariants(conn)


def test_bad_input_is_4xx_with_the_pb_code_and_changes_nothing(api: httpx.Client,
                                                                conn: Conn) -> None:
    register(conn, "j")
    execution_id = launch(conn, "j")
    before = batch_state(conn)
    cases: list[tuple[str, str, int, str]] = [
        ("get", "/api/v1/runs/abc", 400, "PB007"),
        ("get", "/api/v1/runs/0", 400, "PB007"),
        ("get", "/api/v1/runs/99999999", 404, ""),
        ("get", "/api/v1/runs?status=RUNNING%27%3B--", 400, "PB007"),
        ("get", "/api/v1/runs?limit=0", 400, "PB007"),
        ("get", "/api/v1/runs?cursor=%3Cscript%3E", 400, "PB007"),
        ("get", "/api/v1/runs/99999999/events", 404, ""),
        ("post", "/api/v1/runs/99999999/stop", 404, ""),
        ("post", "/api/v1/runs/99999999/restart", 404, ""),
        ("post", "/api/v1/runs/x%3Cb%3E/abandon", 400, "PB007"),
        ("get", "/api/v1/approvals?status=%3Cimg%3E", 400, "PB007"),
    ]
    for method, url, status, code in cases:
        r = api.request(method.upper(), url)
        assert r.status_code in (status, 501), (url, r.status_code, r.text)
        body = r.json()
        assert set(body) == {"code", "error", "message"}, body
        if r.status_code != 501:
            assert body["code"].startswith("PB"), body
            assert not code or body["code"] == code, body
    hostile = api.get("/api/v1/runs", params={"job": "<script>window.__pwned=true</script>"})
    assert hostile.status_code == 200
    assert hostile.json()["runs"] == []
    assert batch_state(conn) == before
    assert api.get(f"/api/v1/runs/{execution_id}").status_code == 200


def test_pause_resume_without_the_schema_is_501(api: httpx.Client, conn: Conn) -> None:
    if has_function(conn, "pause_execution"):
        pytest.skip("this schema has pause_execution (see the pause tests)")
    register(conn, "j")
    execution_id = launch(conn, "j")
    before = batch_state(conn)
    for action in ("pause", "resume"):
        r = api.post(f"/api/v1/runs/{execution_id}/{action}")
        assert r.status_code == 501, r.text
        assert r.json()["error"] == "NotAvailable"
    assert api.get(f"/api/v1/runs/{execution_id}").json()["actions"]["pause"] is False
    assert api.get("/api/v1/approvals").status_code == (
        200 if has_function(conn, "approvals") else 501)
    assert batch_state(conn) == before


def test_pause_and_resume_with_a_lost_race(api: httpx.Client, conn: Conn) -> None:
    if not has_function(conn, "pause_execution"):
        pytest.skip("this schema has no pause_execution yet")
    register(conn, "j")
    execution_id = launch(conn, "j")
    paused = api.post(f"/api/v1/runs/{execution_id}/pause").json()
    assert (paused["applied"], paused["status"]) == (True, "PAUSED")
    resumed = api.post(f"/api/v1/runs/{execution_id}/resume").json()
    assert (resumed["applied"], resumed["status"]) == (True, "STARTING")
    lost = api.post(f"/api/v1/runs/{execution_id}/resume").json()
    assert lost["applied"] is False
    assert "already resumed by another request" in lost["message"]
    assert_invariants(conn)


def test_approvals_inbox_and_decisions(api: httpx.Client, conn: Conn) -> None:
    if not has_function(conn, "approve_gate"):
        pytest.skip("this schema has no approval gates yet")
    gates: Any = importlib.import_module("tests.gate_helpers")  # merged with the gates
    gates.register_gated(conn, "g")
    execution_id, gate = launch(conn, "g"), "check"
    gates.reach_gate(conn, execution_id)
    inbox = api.get("/api/v1/approvals", params={"status": "PENDING"}).json()
    assert [(a["execution_id"], a["gate_name"]) for a in inbox] == [(execution_id, gate)]
    ok = api.post(f"/api/v1/runs/{execution_id}/gates/{gate}/approve",
                  json={"comment": "<b>looks fine</b>"}).json()
    assert ok["applied"] is True
    assert ok["status"] == "APPROVED"
    again = api.post(f"/api/v1/runs/{execution_id}/gates/{gate}/reject").json()
    assert again["applied"] is False
    assert "already approved" in again["message"]
    decided = api.get("/api/v1/approvals", params={"status": "DECIDED"}).json()
    assert decided[0]["decided_by"] == ADMIN.name
    assert decided[0]["comment"] == "<b>looks fine</b>"
    bad = api.post(f"/api/v1/runs/{execution_id}/gates/{gate}/approve", json={"comment": 7})
    assert bad.status_code == 400
    assert bad.json()["code"] == "PB007"


def _event(i: int, kind: str) -> ExecutionEvent:
    at = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=i)
    return ExecutionEvent(i, None, at, kind, None, kind.upper(), "ops", None, None)


def test_timeline_folds_repeated_cycles_in_order() -> None:
    kinds = ["launched", "claimed", *["paused", "resumed"] * 500, "recovered", "completed"]
    folded = timeline([_event(i, k) for i, k in enumerate(kinds)])
    assert [t.label for t in folded] == ["launched", "claimed", f"paused → resumed {TIMES}500",
                                         "recovered", "completed"]
    cycle = folded[2]
    assert cycle.first_at == _event(2, "x").at
    assert cycle.last_at == _event(1001, "x").at
    assert [t.label for t in timeline([_event(0, "a"), _event(1, "b"), _event(2, "a")])] == \
        ["a", "b", "a"]
    assert timeline([]) == []
