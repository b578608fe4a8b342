# Test names carry BATCH.md acceptance ids (G1-G4): upper case on purpose.
# ruff: noqa: N802
"""Approval gates through the SQL API (BATCH.md §3 T13-T15, T7, T17, §4.4, §10;
acceptance G1-G4): a worker parks an execution at a gate, approve_gate and
reject_gate decide it with a double compare-and-set (exactly one effect under
concurrency, deterministic lock interleaving and a 32-way random variant), the
restart rules of a gate step, the gate-timeout sweep with several sweepers,
stop/abandon of a waiting execution, idempotent retries, the listing, and bad
input. The batch and gate invariants are checked after every test."""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from pgbatch.batch.parking import PARKED_CHANNEL, parse_parked
from tests.batch_helpers import (
    batch_state,
    claim_item,
    event_count,
    events,
    execution,
    launch,
    start,
    start_step,
    steps,
)
from tests.conftest import TestDatabase
from tests.gate_helpers import (
    approval,
    await_gate,
    decide,
    gates_checked,  # noqa: F401 - the fixture of pytestmark
    reach_gate,
    register_gated,
    run_tasklet,
)
from tests.helpers import collect_notifies, db_now, listen, raises_sqlstate, scalar, set_clock

pytestmark = pytest.mark.usefixtures("gates_checked")

Conn = psycopg.Connection[Any]


def test_G1_reaching_a_gate_parks_the_execution_and_approval_runs_the_next_step(
        db: TestDatabase, conn: Conn) -> None:
    register_gated(conn)
    exec_id = launch(conn, "g")
    with db.connect() as listener:
        listen(listener, PARKED_CHANNEL)
        parked = reach_gate(conn, exec_id, timeout=timedelta(hours=1))
        payloads = collect_notifies(listener, conn, PARKED_CHANNEL)
    x = execution(conn, exec_id)
    assert parked["status"] == "AWAITING_APPROVAL"
    assert (x["status"], x["current_step"]) == ("AWAITING_APPROVAL", "check")
    # the lease is released and no work item is left: no worker holds or waits for it
    assert (x["lease_owner"], x["lease_expires_at"], x["queue_job_id"]) == (None, None, None)
    assert scalar(conn, "select count(*) from pgbatch.job") == 0
    a = approval(conn, exec_id)
    assert (a["status"], a["on_timeout"], a["decided_by"]) == ("PENDING", "reject", None)
    assert a["expires_at"] - a["requested_at"] == timedelta(hours=1)
    assert [(s["step_name"], s["status"]) for s in steps(conn, exec_id)] == [
        ("prepare", "COMPLETED"), ("check", "STARTED")]
    # the NOTIFY of the parking transaction, in the shared payload
    assert [parse_parked(p) for p in payloads] == [parse_parked(json.dumps({
        "execution_id": exec_id, "job_name": "g", "status": "AWAITING_APPROVAL",
        "step": "check", "reason": None, "gate": "check", "resume_at": None}))]

    assert decide(conn, "approve", exec_id, actor="alice", comment="numbers checked") == (
        True, "APPROVED", "STARTING")
    a = approval(conn, exec_id)
    assert (a["status"], a["decided_by"], a["comment"]) == ("APPROVED", "alice",
                                                             "numbers checked")
    assert a["decided_at"] is not None
    # the next step runs in the same execution
    item = claim_item(conn)
    assert (item.execution_id, item.step) == (exec_id, "publish")
    assert start(conn, item)["status"] == "STARTED"
    assert run_tasklet(conn, item, "publish")["job_status"] == "COMPLETED"
    assert [(s["step_name"], s["status"], s["exit_code"]) for s in steps(conn, exec_id)] == [
        ("prepare", "COMPLETED", "COMPLETED"), ("check", "COMPLETED", "APPROVED"),
        ("publish", "COMPLETED", "COMPLETED")]
    assert scalar(conn, "select count(*) from pgbatch.job_execution") == 1
    assert events(conn, exec_id) == [
        "launched", "claimed", "step_started", "step_handoff", "claimed", "step_started",
        "awaiting_approval", "approve", "claimed", "step_started", "completed"]


def test_approving_a_last_gate_completes_the_execution(conn: Conn) -> None:
    register_gated(conn, steps=[{"name": "work", "kind": "tasklet"},
                                {"name": "check", "kind": "gate"}])
    exec_id = launch(conn, "g")
    reach_gate(conn, exec_id)
    assert decide(conn, "approve", exec_id) == (True, "APPROVED", "COMPLETED")
    x = execution(conn, exec_id)
    assert (x["status"], x["exit_code"]) == ("COMPLETED", "COMPLETED")
    assert scalar(conn, "select count(*) from pgbatch.job") == 0


def test_a_stop_requested_before_the_gate_ends_stopped(conn: Conn) -> None:
    register_gated(conn, steps=[{"name": "check", "kind": "gate"},
                                {"name": "after", "kind": "tasklet"}])
    exec_id = launch(conn, "g")
    item = claim_item(conn)
    start(conn, item)
    assert start_step(conn, item, "check")["action"] == "run"
    assert conn.execute("select * from pgbatch.stop_execution(%s)",
                        [exec_id]).fetchone() == (True, "STOPPING")
    assert await_gate(conn, item)["status"] == "STOPPED"
    assert execution(conn, exec_id)["status"] == "STOPPED"
    assert scalar(conn, "select count(*) from pgbatch.approval") == 0
    assert steps(conn, exec_id)[0]["status"] == "STOPPED"


# -- G2: concurrent decisions ----------------------------------------------------------

def _decide_in_thread(db: TestDatabase, action: str, exec_id: int, name: str,
                      results: list[tuple[str, tuple[bool, str, str]]],
                      start_gate: threading.Barrier | None = None) -> None:
    with db.connect() as c:
        c.execute("select set_config('application_name', %s, false)", [name])
        if start_gate is not None:
            start_gate.wait(30)
        results.append((action, decide(c, action, exec_id, actor=name)))


def _wait_lock_waiters(db: TestDatabase, prefix: str, n: int) -> None:
    with db.connect() as watch:
        deadline = time.monotonic() + 60
        while scalar(watch, "select count(*) from pg_stat_activity where application_name"
                            " like %s and wait_event_type = 'Lock'", [prefix + "%"]) < n:
            assert time.monotonic() < deadline, "the decisions never all waited on the lock"
            time.sleep(0.02)


@pytest.mark.parametrize("actions", [("approve", "approve"), ("approve", "reject"),
                                     ("reject", "approve"), ("reject", "reject")])
def test_G2_concurrent_decisions_lock_interleaved(db: TestDatabase, conn: Conn,
                                                   actions: tuple[str, str]) -> None:
    register_gated(conn)
    exec_id = launch(conn, "g")
    reach_gate(conn, exec_id)
    holder = db.connect()
    holder.autocommit = False
    holder.execute("select 1 from pgbatch.job_execution where id = %s for update", [exec_id])
    results: list[tuple[str, tuple[bool, str, str]]] = []
    threads = [threading.Thread(target=_decide_in_thread,
                                args=(db, a, exec_id, f"gate-{i}", results))
               for i, a in enumerate(actions)]
    for t in threads:
        t.start()
    _wait_lock_waiters(db, "gate-", 2)
    holder.rollback()
    holder.close()
    for t in threads:
        t.join(60)
    applied = [(a, r) for a, r in results if r[0]]
    assert len(results) == 2, results
    assert len(applied) == 1, results
    winner, (_, status, x_status) = applied[0]
    loser = next(r for _, r in results if not r[0])
    # the loser sees the winner's decision, and nothing changed for it
    assert loser == (False, status, x_status)
    assert status == ("APPROVED" if winner == "approve" else "REJECTED")
    assert execution(conn, exec_id)["status"] == ("STARTING" if winner == "approve" else "FAILED")
    assert event_count(conn, exec_id, "approve") + event_count(conn, exec_id, "reject") == 1
    expected_jobs = 1 if winner == "approve" else 0
    assert scalar(conn, "select count(*) from pgbatch.job") == expected_jobs


def test_G2_32_concurrent_random_decisions(db: TestDatabase, conn: Conn) -> None:
    register_gated(conn)
    rng = random.Random(20261202)
    for _round in range(3):
        exec_id = launch(conn, "g", {"round": _round})
        reach_gate(conn, exec_id)
        actions = [rng.choice(["approve", "reject"]) for _ in range(32)]
        results: list[tuple[str, tuple[bool, str, str]]] = []
        barrier = threading.Barrier(32)
        threads = [threading.Thread(target=_decide_in_thread,
                                    args=(db, a, exec_id, f"r{i}", results, barrier))
                   for i, a in enumerate(actions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(results) == 32
        applied = [(a, r) for a, r in results if r[0]]
        assert len(applied) == 1, applied
        winner = applied[0][0]
        status = "APPROVED" if winner == "approve" else "REJECTED"
        assert {r[1] for _, r in results} == {status}
        assert event_count(conn, exec_id, "approve") + event_count(conn, exec_id, "reject") == 1
        if winner == "approve":
            # finish it so the next round's instance is independent
            item = claim_item(conn)
            start(conn, item)
            run_tasklet(conn, item, "publish")
        assert execution(conn, exec_id)["status"] in ("COMPLETED", "FAILED")


def test_G2_approve_races_stop_exactly_one_wins(db: TestDatabase, conn: Conn) -> None:
    register_gated(conn)
    for first in ("approve", "stop"):
        exec_id = launch(conn, "g", {"first": first})
        reach_gate(conn, exec_id)
        holder = db.connect()
        holder.autocommit = False
        holder.execute("select 1 from pgbatch.job_execution where id = %s for update",
                       [exec_id])
        out: dict[str, Any] = {}

        def approve(out: dict[str, Any] = out, exec_id: int = exec_id) -> None:
            with db.connect() as c:
                c.execute("select set_config('application_name', 'race-approve', false)")
                out["approve"] = decide(c, "approve", exec_id)

        def stop(out: dict[str, Any] = out, exec_id: int = exec_id) -> None:
            with db.connect() as c:
                c.execute("select set_config('application_name', 'race-stop', false)")
                out["stop"] = c.execute("select * from pgbatch.stop_execution(%s)",
                                        [exec_id]).fetchone()

        order = [approve, stop] if first == "approve" else [stop, approve]
        threads = []
        for n, fn in enumerate(order, start=1):
            t = threading.Thread(target=fn)
            t.start()
            threads.append(t)
            _wait_lock_waiters(db, "race-", n)  # the first one queues first on the lock
        holder.rollback()
        holder.close()
        for t in threads:
            t.join(60)
        if first == "approve":
            assert out["approve"] == (True, "APPROVED", "STARTING")
            # the stop found a STARTING execution: it stopped it at once
            assert tuple(out["stop"]) == (True, "STOPPED")
            assert approval(conn, exec_id)["status"] == "APPROVED"
        else:
            assert tuple(out["stop"]) == (True, "STOPPED")
            assert out["approve"] == (False, "EXPIRED", "STOPPED")
            assert approval(conn, exec_id)["status"] == "EXPIRED"
        assert execution(conn, exec_id)["status"] == "STOPPED"


# -- G3: restart semantics --------------------------------------------------------------

def test_G3_reject_fails_the_execution_and_a_restart_asks_again(conn: Conn) -> None:
    register_gated(conn)
    first = launch(conn, "g")
    reach_gate(conn, first)
    assert decide(conn, "reject", first, actor="bob", comment="totals are off") == (
        True, "REJECTED", "FAILED")
    x = execution(conn, first)
    assert (x["status"], x["exit_code"]) == ("FAILED", "APPROVAL_REJECTED")
    assert "totals are off" in x["exit_message"]
    assert "bob" in x["exit_message"]
    gate_step = steps(conn, first)[1]
    assert (gate_step["status"], gate_step["exit_code"]) == ("FAILED", "APPROVAL_REJECTED")

    second = int(scalar(conn, "select pgbatch.restart_execution(%s)", [first]))
    # the completed tasklet is skipped; the failed gate asks again: a new approval row
    assert reach_gate(conn, second)["status"] == "AWAITING_APPROVAL"
    assert approval(conn, second)["status"] == "PENDING"
    assert approval(conn, first)["status"] == "REJECTED"
    assert [s["step_name"] for s in steps(conn, second)] == ["check"]
    assert decide(conn, "approve", second) == (True, "APPROVED", "STARTING")


def test_G3_an_approved_gate_is_skipped_on_restart_of_a_later_failure(conn: Conn) -> None:
    register_gated(conn)
    first = launch(conn, "g")
    reach_gate(conn, first)
    decide(conn, "approve", first)
    item = claim_item(conn)
    start(conn, item)
    s = start_step(conn, item, "publish")
    conn.execute("select pgbatch.end_step(%s, %s, %s, 'FAILED')",
                 [s["step_execution_id"], item.job_id, item.claim_token])
    assert execution(conn, first)["status"] == "FAILED"

    second = int(scalar(conn, "select pgbatch.restart_execution(%s)", [first]))
    item = claim_item(conn)
    start(conn, item)
    assert item.step == "prepare"
    assert start_step(conn, item, "prepare")["action"] == "skip"
    assert start_step(conn, item, "check")["action"] == "skip"  # approved: not asked again
    assert run_tasklet(conn, item, "publish")["job_status"] == "COMPLETED"
    assert scalar(conn, "select count(*) from pgbatch.approval where job_execution_id = %s",
                  [second]) == 0


def test_G3_allow_start_if_complete_asks_again(conn: Conn) -> None:
    register_gated(conn, steps=[{"name": "check", "kind": "gate", "allow_start_if_complete": True},
                                {"name": "publish", "kind": "tasklet"}])
    first = launch(conn, "g")
    reach_gate(conn, first)
    decide(conn, "approve", first)
    item = claim_item(conn)
    start(conn, item)
    s = start_step(conn, item, "publish")
    conn.execute("select pgbatch.end_step(%s, %s, %s, 'FAILED')",
                 [s["step_execution_id"], item.job_id, item.claim_token])
    second = int(scalar(conn, "select pgbatch.restart_execution(%s)", [first]))
    assert reach_gate(conn, second)["status"] == "AWAITING_APPROVAL"
    assert approval(conn, second)["status"] == "PENDING"


# -- G4: timeouts -------------------------------------------------------------------------

@pytest.mark.parametrize("on_timeout", ["reject", "approve"])
def test_G4_gate_timeouts_are_applied_once_with_several_sweepers(
        db: TestDatabase, conn: Conn, on_timeout: str) -> None:
    register_gated(conn)
    ids: list[int] = []
    for n in range(12):
        ids.append(launch(conn, "g", {"n": n}))
        # half of them time out, the other half not yet
        reach_gate(conn, ids[-1], timeout=timedelta(minutes=10 if n % 2 == 0 else 60),
                   on_timeout=on_timeout)
    # one decided by a person first: the timeout does not apply to it
    decide(conn, "approve", ids[2])
    later = db_now(conn) + timedelta(minutes=30)
    applied: list[int] = []
    barrier = threading.Barrier(4)

    def sweeper() -> None:
        with db.connect() as c:
            set_clock(c, later)
            barrier.wait(30)
            for _ in range(5):
                applied.append(int(scalar(c, "select pgbatch.expire_gates(2)")))

    threads = [threading.Thread(target=sweeper) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    due = [i for n, i in enumerate(ids) if n % 2 == 0 and i != ids[2]]
    assert sum(applied) == len(due)
    decision = {"reject": ("REJECTED", "FAILED"), "approve": ("APPROVED", "STARTING")}[on_timeout]
    for i in ids:
        a = approval(conn, i)
        if i in due:
            assert (a["status"], execution(conn, i)["status"]) == decision
            assert a["decided_by"] == "timeout"
            assert event_count(conn, i, on_timeout) == 1
        elif i == ids[2]:
            assert a["status"] == "APPROVED"
            assert a["decided_by"] != "timeout"
        else:
            assert (a["status"], execution(conn, i)["status"]) == ("PENDING", "AWAITING_APPROVAL")
    if on_timeout == "reject":
        assert {execution(conn, i)["exit_code"] for i in due} == {"APPROVAL_REJECTED"}
    # a sweep after the decisions finds nothing more to do
    set_clock(conn, later)
    assert scalar(conn, "select pgbatch.expire_gates()") == 0
    set_clock(conn, None)


def test_a_gate_without_timeout_never_expires(conn: Conn) -> None:
    register_gated(conn)
    exec_id = launch(conn, "g")
    reach_gate(conn, exec_id)
    set_clock(conn, db_now(conn) + timedelta(days=3000))
    assert scalar(conn, "select pgbatch.expire_gates()") == 0
    set_clock(conn, None)
    assert approval(conn, exec_id)["status"] == "PENDING"


# -- stop / abandon while awaiting approval -----------------------------------------------

@pytest.mark.parametrize(("call", "status"), [("stop_execution", "STOPPED"),
                                              ("abandon_execution", "ABANDONED"),
                                              ("cancel_execution", "STOPPED")])
def test_stop_or_abandon_of_an_awaiting_execution_expires_its_approval(
        conn: Conn, call: str, status: str) -> None:
    register_gated(conn)
    exec_id = launch(conn, "g")
    reach_gate(conn, exec_id, timeout=timedelta(minutes=1))
    assert conn.execute(f"select * from pgbatch.{call}(%s)", [exec_id]).fetchone() == (
        True, status)
    a = approval(conn, exec_id)
    assert a["status"] == "EXPIRED"
    assert a["decided_at"] is not None
    assert execution(conn, exec_id)["status"] == status
    before = batch_state(conn)
    assert decide(conn, "approve", exec_id) == (False, "EXPIRED", status)
    assert decide(conn, "reject", exec_id) == (False, "EXPIRED", status)
    set_clock(conn, db_now(conn) + timedelta(hours=1))
    assert scalar(conn, "select pgbatch.expire_gates()") == 0
    set_clock(conn, None)
    assert batch_state(conn) == before


# -- idempotency, listing, bad input ------------------------------------------------------

def test_a_retry_with_the_same_request_id_returns_the_first_result(conn: Conn) -> None:
    register_gated(conn)
    exec_id = launch(conn, "g")
    reach_gate(conn, exec_id)
    assert decide(conn, "approve", exec_id, request_id="ops-1") == (True, "APPROVED", "STARTING")
    item = claim_item(conn)
    start(conn, item)  # the execution moved on
    before = batch_state(conn)
    assert decide(conn, "approve", exec_id, request_id="ops-1") == (True, "APPROVED", "STARTING")
    assert batch_state(conn) == before
    assert event_count(conn, exec_id, "approve") == 1
    # another request is a lost race, not an error
    assert decide(conn, "approve", exec_id, request_id="ops-2") == (False, "APPROVED", "STARTED")
    assert decide(conn, "reject", exec_id, request_id="ops-1") == (False, "APPROVED", "STARTED")
    run_tasklet(conn, item, "publish")


def test_approvals_lists_the_inbox_and_the_decisions(conn: Conn) -> None:
    register_gated(conn)
    waiting = launch(conn, "g", {"n": 1})
    reach_gate(conn, waiting, timeout=timedelta(minutes=5))
    decided = launch(conn, "g", {"n": 2})
    reach_gate(conn, decided)
    decide(conn, "reject", decided, actor="carol", comment="no")

    def listed(status: str | None) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in conn.execute(
            "select execution_id, job_name, gate_name, approval_status, execution_status,"
            " decided_by, comment, expires_at is not null from pgbatch.approvals(%s)",
            [status]).fetchall()]

    assert listed("PENDING") == [(waiting, "g", "check", "PENDING", "AWAITING_APPROVAL", None,
                                  None, True)]
    assert listed("DECIDED") == [(decided, "g", "check", "REJECTED", "FAILED", "carol", "no",
                                  False)]
    assert listed("REJECTED") == listed("DECIDED")
    assert listed("APPROVED") == []
    assert [r[0] for r in listed(None)] == [decided, waiting]  # newest first
    assert scalar(conn, "select count(*) from pgbatch.approvals(\"limit\" => 1)") == 1


def test_bad_input_gets_a_specific_error_and_changes_nothing(conn: Conn) -> None:
    register_gated(conn)
    waiting = launch(conn, "g", {"n": 1})
    reach_gate(conn, waiting)
    not_yet = launch(conn, "g", {"n": 2})
    before = batch_state(conn)
    cases: list[tuple[str, str, list[Any]]] = [
        ("PB047", "select pgbatch.approve_gate(0, 'check')", []),
        ("PB047", "select pgbatch.reject_gate(0, 'check')", []),
        ("PB055", "select pgbatch.approve_gate(%s, 'chekc')", [waiting]),
        ("PB055", "select pgbatch.reject_gate(%s, 'prepare')", [waiting]),  # not a gate
        ("PB056", "select pgbatch.approve_gate(%s, 'check')", [not_yet]),
        ("PB007", "select pgbatch.approve_gate(%s, 'check', repeat('a', 201))", [waiting]),
        ("PB007", "select pgbatch.reject_gate(%s, 'check', comment => repeat('c', 10001))",
         [waiting]),
        ("PB007", "select * from pgbatch.approvals('WAITING')", []),
        ("PB007", "select * from pgbatch.approvals(\"limit\" => 0)", []),
        ("PB007", "select pgbatch.expire_gates(0)", []),
    ]
    for code, query, args in cases:
        with raises_sqlstate(code):
            conn.execute(query, args)
    assert batch_state(conn) == before


def test_await_gate_refuses_bad_arguments_and_non_gates(conn: Conn) -> None:
    register_gated(conn)
    exec_id = launch(conn, "g")
    item = claim_item(conn)
    start(conn, item)
    s = start_step(conn, item, "prepare")
    before = batch_state(conn)
    with raises_sqlstate("PB048", "no gate step"):
        await_gate(conn, item, "prepare")
    with raises_sqlstate("PB048", "not STARTED"):
        await_gate(conn, item, "check")
    for bad in (timedelta(0), timedelta(seconds=-5), timedelta(days=4000)):
        with raises_sqlstate("PB007", "timeout"):
            await_gate(conn, item, "check", timeout=bad)
    with raises_sqlstate("PB007", "on_timeout"):
        await_gate(conn, item, "check", on_timeout="ignore")
    assert batch_state(conn) == before
    conn.execute("select pgbatch.end_step(%s, %s, %s, 'COMPLETED')",
                 [s["step_execution_id"], item.job_id, item.claim_token])
    reach_gate(conn, exec_id)


def test_recovery_leaves_an_awaiting_execution_alone(conn: Conn) -> None:
    register_gated(conn)
    exec_id = launch(conn, "g")
    reach_gate(conn, exec_id)
    before = batch_state(conn)
    assert conn.execute("select * from pgbatch.recover_execution(%s)",
                        [exec_id]).fetchone() == (False, "AWAITING_APPROVAL")
    assert scalar(conn, "select pgbatch.recover_executions('0 seconds', 100)") == 0
    assert batch_state(conn) == before
    with raises_sqlstate("PB044"):
        launch(conn, "g")  # the instance is active: approve it instead
    assert batch_state(conn) == before
