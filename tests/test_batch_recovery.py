# Test names carry BATCH.md acceptance ids (H3, H4, H11, ...): upper case on purpose.
# ruff: noqa: N802
"""Recovery of batch executions in SQL (BATCH.md §7, docs/batch.md "Recovery"):
the policies applied by the recovery sweep and by start_execution, the recovery
limit, stranded work items, many sweepers at once, recover_execution,
cancel_execution, the hand-off and the definition rules of register_job."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from tests.batch_helpers import (
    WorkItem,
    batch_state,
    claim_item,
    commit_chunk,
    end_step,
    event_count,
    events,
    execution,
    invariants_checked,  # noqa: F401 - the fixture of pytestmark
    launch,
    register,
    start,
    start_step,
    steps,
)
from tests.conftest import TestDatabase
from tests.helpers import expire_lease, raises_sqlstate, run_threads, scalar

pytestmark = pytest.mark.usefixtures("invariants_checked")

Conn = psycopg.Connection[Any]

#: Three steps: a tasklet, a chunk step, a tasklet.
THREE: list[dict[str, Any]] = [{"name": "a", "kind": "tasklet"},
         {"name": "b", "kind": "chunk", "reader": "r.R", "writer": "w.W", "chunk_size": 10},
         {"name": "c", "kind": "tasklet"}]


def sweep(conn: Conn) -> int:
    """One recovery sweep, after every claim's lease was backdated."""
    expire_lease(conn)
    return int(scalar(conn, "select pgbatch.recover_executions()"))


def run_to(conn: Conn, exec_id: int, step: str) -> tuple[WorkItem, int]:
    """Run the steps of a claimable execution until ``step`` has started and committed
    one chunk (or, for a tasklet, just started); return its item and step row id."""
    while True:
        item = claim_item(conn)
        assert item.execution_id == exec_id
        assert start(conn, item)["status"] == "STARTED"
        s = start_step(conn, item)
        assert s["action"] == "run", s
        if item.step == step:
            if step == "b":
                commit_chunk(conn, item, s["step_execution_id"], int(s["chunk_seq"]),
                             {"done": 10}, read_count=10)
            return item, int(s["step_execution_id"])
        assert end_step(conn, item, s["step_execution_id"])["job_status"] == "STARTING"


def newest(conn: Conn) -> int:
    return int(scalar(conn, "select max(id) from pgbatch.job_execution"))


def test_H3_restart_all_runs_every_step_again_from_scratch(conn: Conn) -> None:
    register(conn, steps=THREE, recovery_policy="RestartAll")
    old = launch(conn)
    run_to(conn, old, "b")
    assert sweep(conn) == 1
    x = execution(conn, old)
    assert (x["status"], x["exit_code"]) == ("FAILED", "HOST_LOST")
    new = newest(conn)
    assert new != old
    n = execution(conn, new)
    assert (n["status"], n["current_step"], n["recovery_count"]) == ("STARTING", "a", 1)
    assert scalar(conn, "select count(*) from pgbatch.job_execution") == 2
    # every step runs again, the completed tasklet too, with empty contexts
    item = claim_item(conn)
    start(conn, item)
    s = start_step(conn, item)
    assert (s["action"], s["context"]) == ("run", {})
    end_step(conn, item, s["step_execution_id"])
    item = claim_item(conn)
    start(conn, item)
    s = start_step(conn, item)
    assert (s["action"], s["context"], s["chunk_seq"]) == ("run", {}, 0)
    assert events(conn, old)[-1] == "recovered"
    assert scalar(conn, "select pgbatch.recover_executions()") == 0, "recovered once"
    end_step(conn, item, s["step_execution_id"], "FAILED")


@pytest.mark.parametrize(("crashed_in", "starts_at"), [("c", "b"), ("a", "a")])
def test_H4_restart_from_never_skips_unfinished_work(conn: Conn, crashed_in: str,
                                                    starts_at: str) -> None:
    register(conn, steps=THREE, recovery_policy="RestartFrom:b")
    old = launch(conn)
    run_to(conn, old, crashed_in)
    assert sweep(conn) == 1
    assert execution(conn, old)["exit_code"] == "HOST_LOST"
    new = newest(conn)
    assert execution(conn, new)["current_step"] == starts_at
    item = claim_item(conn)
    assert item.step == starts_at
    start(conn, item)
    s = start_step(conn, item)
    assert (s["action"], s["context"]) == ("run", {}), "that step starts from scratch"
    end_step(conn, item, s["step_execution_id"], "FAILED")


def test_H5_fail_policy_fails_and_a_restart_resumes_from_the_checkpoint(conn: Conn) -> None:
    register(conn, steps=THREE, recovery_policy="Fail")
    old = launch(conn)
    run_to(conn, old, "b")
    assert sweep(conn) == 1
    x = execution(conn, old)
    assert (x["status"], x["exit_code"]) == ("FAILED", "HOST_LOST")
    assert scalar(conn, "select count(*) from pgbatch.job_execution") == 1, "nothing launched"
    assert scalar(conn, "select count(*) from pgbatch.job") == 0
    new = int(scalar(conn, "select pgbatch.restart_execution(%s)", [old]))
    item = claim_item(conn)
    assert item.step == "a"
    start(conn, item)
    assert start_step(conn, item)["action"] == "skip"
    s = start_step(conn, item, "b")
    assert (s["action"], s["context"]) == ("run", {"done": 10})
    end_step(conn, item, s["step_execution_id"], "FAILED")
    assert execution(conn, new)["status"] == "FAILED"


def test_resume_forward_counts_recoveries_up_to_the_limit(conn: Conn) -> None:
    register(conn, steps=THREE, max_recoveries=1)
    exec_id = launch(conn)
    _item, step_id = run_to(conn, exec_id, "b")
    assert sweep(conn) == 1
    x = execution(conn, exec_id)
    assert (x["status"], x["recovery_count"]) == ("STARTING", 1)
    # the same step row goes on from its checkpoint under a fresh work item
    item = claim_item(conn)
    assert (item.execution_id, item.step) == (exec_id, "b")
    assert start(conn, item)["status"] == "STARTED"
    s = start_step(conn, item)
    assert (s["step_execution_id"], s["context"], s["chunk_seq"]) == (step_id, {"done": 10}, 1)
    assert sweep(conn) == 1
    x = execution(conn, exec_id)
    assert (x["status"], x["exit_code"]) == ("FAILED", "RECOVERY_LIMIT")
    assert "max_recoveries 1" in x["exit_message"]
    assert [s["status"] for s in steps(conn, exec_id)] == ["COMPLETED", "FAILED"]
    assert scalar(conn, "select count(*) from pgbatch.job") == 0
    assert event_count(conn, exec_id, "recovered") == 2


def test_a_reclaimed_work_item_applies_the_policy_in_start_execution(conn: Conn) -> None:
    register(conn, steps=THREE, recovery_policy="Fail")
    exec_id = launch(conn)
    item, _ = run_to(conn, exec_id, "b")
    expire_lease(conn, item.job_id)
    assert scalar(conn, "select pgbatch.reap_expired()") == 1
    again = claim_item(conn)
    assert again.job_id == item.job_id
    assert start(conn, again)["status"] == "FAILED", "the worker acks its item"
    assert execution(conn, exec_id)["exit_code"] == "HOST_LOST"
    conn.execute("select pgbatch.ack(%s, %s)", [again.job_id, again.claim_token])


def test_S6_an_expired_stopping_execution_ends_stopped(conn: Conn) -> None:
    register(conn, steps=THREE)
    exec_id = launch(conn)
    run_to(conn, exec_id, "b")
    conn.execute("select pgbatch.stop_execution(%s)", [exec_id])
    assert sweep(conn) == 1
    x = execution(conn, exec_id)
    assert (x["status"], x["recovery_count"]) == ("STOPPED", 0)
    assert [s["status"] for s in steps(conn, exec_id)] == ["COMPLETED", "STOPPED"]


def test_a_work_item_dead_at_its_attempt_limit_fails_its_execution(conn: Conn) -> None:
    register(conn, steps=THREE)
    exec_id = launch(conn)
    item, _ = run_to(conn, exec_id, "b")
    conn.execute("select pgbatch.dead_letter(%s, %s, 'poison')", [item.job_id, item.claim_token])
    assert scalar(conn, "select pgbatch.recover_executions()") == 1
    x = execution(conn, exec_id)
    assert (x["status"], x["exit_code"]) == ("FAILED", "WORK_ITEM_DEAD")
    assert "poison" in x["exit_message"] or "dead" in x["exit_message"]
    # a STARTING execution whose first item died (no worker knew its definition)
    other = launch(conn, params={"n": 2})
    pending = claim_item(conn)
    conn.execute("select pgbatch.dead_letter(%s, %s)", [pending.job_id, pending.claim_token])
    assert scalar(conn, "select pgbatch.recover_executions()") == 1
    assert execution(conn, other)["exit_code"] == "WORK_ITEM_DEAD"
    restarted = int(scalar(conn, "select pgbatch.restart_execution(%s)", [exec_id]))
    assert execution(conn, restarted)["status"] == "STARTING"
    conn.execute("select pgbatch.cancel_execution(%s)", [restarted])


def test_H8_many_sweepers_recover_each_execution_exactly_once(db: TestDatabase, conn: Conn) -> None:
    register(conn, steps=[{"name": "only", "kind": "tasklet"}])
    ids = []
    for i in range(20):
        ids.append(launch(conn, params={"n": i}))
        item = claim_item(conn)
        start(conn, item)
        start_step(conn, item)
    expire_lease(conn)
    barrier = threading.Barrier(4)
    counts: list[int] = []

    def sweeper() -> None:
        with db.connect() as c:
            barrier.wait()
            counts.append(int(scalar(c, "select pgbatch.recover_executions()")))
            counts.append(int(scalar(c, "select pgbatch.recover_executions()")))

    run_threads([sweeper] * 4)
    assert sum(counts) == 20
    for exec_id in ids:
        assert event_count(conn, exec_id, "recovered") == 1
        assert execution(conn, exec_id)["status"] == "STARTING"
    assert scalar(conn, "select count(*) from pgbatch.job where state = 'pending'") == 20


def test_H11_recover_an_unknown_execution_then_restart(conn: Conn) -> None:
    register(conn, steps=THREE)
    exec_id = launch(conn)
    item, step_id = run_to(conn, exec_id, "b")
    assert end_step(conn, item, step_id, "UNKNOWN")["job_status"] == "UNKNOWN"
    x = execution(conn, exec_id)
    assert (x["status"], x["end_time"], x["lease_owner"]) == ("UNKNOWN", None, None)
    with raises_sqlstate("PB045", "UNKNOWN"):
        conn.execute("select pgbatch.restart_execution(%s)", [exec_id])
    row = conn.execute("select * from pgbatch.recover_execution(%s, 'r1')", [exec_id]).fetchone()
    assert row == (True, "FAILED")
    x = execution(conn, exec_id)
    assert (x["status"], x["exit_code"]) == ("FAILED", "RECOVERED")
    assert [s["status"] for s in steps(conn, exec_id)] == ["COMPLETED", "FAILED"]
    before = batch_state(conn)
    again = conn.execute("select * from pgbatch.recover_execution(%s, 'r1')", [exec_id]).fetchone()
    assert again == (True, "FAILED"), "the same request_id, the first call's result"
    assert conn.execute("select * from pgbatch.recover_execution(%s)", [exec_id]).fetchone() \
        == (False, "FAILED")
    assert batch_state(conn) == before
    new = int(scalar(conn, "select pgbatch.restart_execution(%s)", [exec_id]))
    item = claim_item(conn)
    start(conn, item)
    s = start_step(conn, item, "b")
    assert (s["action"], s["context"]) == ("run", {"done": 10}), "from the checkpoint"
    # a live lease: not recoverable, a typed result
    assert conn.execute("select * from pgbatch.recover_execution(%s)", [new]).fetchone() \
        == (False, "STARTED")
    with raises_sqlstate("PB047", "not found"):
        conn.execute("select * from pgbatch.recover_execution(%s)", [10**9])
    end_step(conn, item, s["step_execution_id"], "FAILED")


def test_cancel_ends_a_running_execution_and_fences_its_worker(conn: Conn) -> None:
    register(conn, steps=THREE)
    exec_id = launch(conn)
    item, step_id = run_to(conn, exec_id, "b")
    row = conn.execute("select * from pgbatch.cancel_execution(%s, 'c1')", [exec_id]).fetchone()
    assert row == (True, "STOPPED")
    x = execution(conn, exec_id)
    assert (x["status"], x["exit_code"]) == ("STOPPED", "CANCELLED")
    with raises_sqlstate("PB046", "fenced out"):
        commit_chunk(conn, item, step_id, 1, {"done": 20}, read_count=10)
    assert scalar(conn, "select cancel_requested from pgbatch.job where id = %s", [item.job_id])
    assert conn.execute("select * from pgbatch.cancel_execution(%s, 'c1')", [exec_id]).fetchone() \
        == (True, "STOPPED")
    assert conn.execute("select * from pgbatch.cancel_execution(%s)", [exec_id]).fetchone() \
        == (False, "STOPPED")
    assert event_count(conn, exec_id, "cancel") == 1
    # a cancelled run is a STOPPED one: it may be restarted from its checkpoint
    new = int(scalar(conn, "select pgbatch.restart_execution(%s)", [exec_id]))
    assert conn.execute("select * from pgbatch.cancel_execution(%s)", [new]).fetchone() \
        == (True, "STOPPED")
    conn.execute("select pgbatch.ack(%s, %s)", [item.job_id, item.claim_token])


def test_S8_hand_off_gives_the_same_execution_to_the_next_claim(conn: Conn) -> None:
    register(conn, steps=THREE)
    exec_id = launch(conn)
    item, step_id = run_to(conn, exec_id, "b")
    row = conn.execute("select * from pgbatch.handoff_execution(%s, %s, %s)",
                       [exec_id, item.job_id, item.claim_token]).fetchone()
    assert row is not None
    assert row[0] == "STARTING"
    x = execution(conn, exec_id)
    assert (x["status"], x["handoff_count"], x["lease_owner"]) == ("STARTING", 1, None)
    nxt = claim_item(conn)
    assert (nxt.execution_id, nxt.step, nxt.job_id) == (exec_id, "b", row[1])
    start(conn, nxt)
    s = start_step(conn, nxt)
    assert (s["step_execution_id"], s["context"], s["chunk_seq"]) == (step_id, {"done": 10}, 1)
    with raises_sqlstate("PB001"):
        commit_chunk(conn, item, step_id, 1, {}, read_count=1)
    end_step(conn, nxt, step_id, "FAILED")
    assert scalar(conn, "select count(*) from pgbatch.job_execution") == 1


def test_register_job_refuses_a_changed_definition_under_the_same_version(conn: Conn) -> None:
    register(conn, steps=THREE, version="1")
    before = batch_state(conn)
    with raises_sqlstate("PB049", "already registered with other steps"):
        register(conn, steps=THREE[:2], version="1")
    with raises_sqlstate("PB041", "needs a restartable job"):
        register(conn, steps=THREE, restartable=False, recovery_policy="RestartAll", version="2")
    with raises_sqlstate("PB041", "on_shutdown"):
        register(conn, steps=THREE, on_shutdown="sleep", version="2")
    assert batch_state(conn) == before
    register(conn, steps=THREE, version="1", max_recoveries=2)  # options are not the steps
    register(conn, steps=THREE[:2], version="2")
    register(conn, steps=THREE[:1])  # unversioned definitions may change
