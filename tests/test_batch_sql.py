# Test names carry BATCH.md acceptance ids (A1, R1, S7, ...): upper case on purpose.
# ruff: noqa: N802
"""The batch engine's SQL core (BATCH.md §2-§6, docs/batch.md): launch and restart
rules, the step and chunk transitions a step executor calls, stop and abandon, the
invariant checker. Test names carry the BATCH.md acceptance ids they prove."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.batch_helpers import (
    WorkItem,
    assert_invariants,
    batch_state,
    claim_item,
    commit_chunk,
    end_step,
    events,
    execution,
    invariant_violations,
    launch,
    register,
    run_to_end,
    start,
    start_step,
    steps,
)
from tests.conftest import TestDatabase
from tests.helpers import archive_row, expire_lease, job_row, raises_sqlstate, run_threads, scalar

Conn = psycopg.Connection[Any]

ACTIVE_BY_FUNCTIONS = ("STARTING", "STARTED", "STOPPING")
ACTIVE_BY_ROW = ("PAUSING", "PAUSED", "AWAITING_APPROVAL")


def restart(conn: Conn, execution_id: int, request_id: str | None = None) -> int:
    row = conn.execute(
        "select pgbatch.restart_execution(%s, %s)", [execution_id, request_id]
    ).fetchone()
    assert row is not None
    return int(row[0])


def stop(conn: Conn, execution_id: int, request_id: str | None = None) -> tuple[bool, str]:
    row = conn.execute(
        "select * from pgbatch.stop_execution(%s, %s)", [execution_id, request_id]
    ).fetchone()
    assert row is not None
    return bool(row[0]), str(row[1])


def abandon(conn: Conn, execution_id: int, request_id: str | None = None) -> tuple[bool, str]:
    row = conn.execute(
        "select * from pgbatch.abandon_execution(%s, %s)", [execution_id, request_id]
    ).fetchone()
    assert row is not None
    return bool(row[0]), str(row[1])


def started(
    conn: Conn, params: Any = None, job_name: str = "j"
) -> tuple[int, WorkItem, dict[str, Any]]:
    """Launch, claim, start the execution and its first step."""
    exec_id = launch(conn, job_name, params)
    item = claim_item(conn)
    assert start(conn, item)["status"] == "STARTED"
    return exec_id, item, start_step(conn, item)


def failed(conn: Conn, params: Any = None) -> int:
    """An execution whose first step FAILED."""
    exec_id, item, s = started(conn, params)
    assert end_step(conn, item, s["step_execution_id"], "FAILED")["job_status"] == "FAILED"
    return exec_id


def bring_to(conn: Conn, status: str, params: Any = None) -> int:
    """An execution in ``status``: through the SQL functions where they exist, by a
    direct row update for the states whose transitions a later increment adds."""
    if status == "STARTING":
        return launch(conn, "j", params)
    if status == "COMPLETED":
        exec_id = launch(conn, "j", params)
        assert run_to_end(conn, exec_id) == "COMPLETED"
        return exec_id
    if status == "FAILED":
        return failed(conn, params)
    if status == "STOPPED":
        exec_id = launch(conn, "j", params)
        assert stop(conn, exec_id) == (True, "STOPPED")
        return exec_id
    if status == "ABANDONED":
        exec_id = failed(conn, params)
        assert abandon(conn, exec_id) == (True, "ABANDONED")
        return exec_id
    exec_id, _item, _ = started(conn, params)
    if status == "STARTED":
        return exec_id
    if status == "STOPPING":
        assert stop(conn, exec_id) == (True, "STOPPING")
        return exec_id
    conn.execute("update pgbatch.job_execution set status = %s where id = %s", [status, exec_id])
    conn.execute(
        "insert into pgbatch.execution_event (job_execution_id, at, kind, to_status)"
        " values (%s, now(), 'test', %s)",
        [exec_id, status],
    )
    return exec_id


# ---- definitions ---------------------------------------------------------------------


def test_register_job_fingerprint(conn: Conn) -> None:
    fp = register(conn)
    assert len(fp) == 64
    assert fp == fp.lower()
    assert register(conn) == fp, "the same definition, the same fingerprint"
    other = register(
        conn,
        steps=[
            {"name": "prepare", "kind": "tasklet"},
            {
                "name": "load",
                "kind": "chunk",
                "reader": "r.Reader",
                "writer": "w.Writer",
                "chunk_size": 20,
            },
        ],
    )
    assert other != fp, "a changed chunk size changes the fingerprint"
    assert register(conn, version="2") not in (fp, other)
    # options that are not part of the fingerprint do not change it
    assert register(conn, max_recoveries=3) == fp
    assert scalar(conn, "select count(*) from pgbatch.job_definition") == 3
    # launches use the definition registered last
    exec_id = launch(conn)
    assert execution(conn, exec_id)["definition_fp"] == fp


BAD_DEFINITIONS: list[tuple[Any, str]] = [
    ([], "must be a JSON object"),
    ({"steps": []}, "non-empty array"),
    ({"steps": [{"kind": "tasklet"}]}, 'non-empty "name"'),
    ({"steps": [{"name": "a", "kind": "x"}]}, '"kind" must be'),
    (
        {"steps": [{"name": "a", "kind": "tasklet"}, {"name": "a", "kind": "tasklet"}]},
        "appears twice",
    ),
    ({"steps": [{"name": "a", "kind": "tasklet", "start_limit": 0}]}, "start_limit"),
    ({"steps": [{"name": "a", "kind": "chunk", "chunk_size": 1.5}]}, "chunk_size"),
    ({"steps": [{"name": "a", "kind": "tasklet", "colour": 1}]}, "unknown key"),
    (
        {"steps": [{"name": "a", "kind": "tasklet"}], "recovery_policy": "RestartFrom:b"},
        "recovery_policy",
    ),
    ({"steps": [{"name": "a", "kind": "tasklet"}], "queue": ""}, "queue name"),
    ({"steps": [{"name": "a", "kind": "tasklet"}], "extra": 1}, "unknown key"),
]


@pytest.mark.parametrize(("definition", "message"), BAD_DEFINITIONS)
def test_bad_definitions_are_refused(conn: Conn, definition: Any, message: str) -> None:
    code = "PB005" if message == "queue name" else "PB041"
    with raises_sqlstate(code, message):
        conn.execute("select pgbatch.register_job('j', %s)", [Jsonb(definition)])
    assert scalar(conn, "select count(*) from pgbatch.job_definition") == 0


def test_launching_an_unregistered_job_is_refused(conn: Conn) -> None:
    with raises_sqlstate("PB042", "not registered"):
        launch(conn, "nobody-registered-me")
    assert batch_state(conn)["job_instance"] == []


# ---- identity and launch (A1-A4) -----------------------------------------------------


def test_A1_identifying_params_decide_the_instance(conn: Conn) -> None:
    register(conn)
    first = launch(conn, "j", {"a": 1, "b": "x", "note": {"value": "one", "identifying": False}})
    with raises_sqlstate("PB044", "already has a running execution"):
        launch(conn, "j", {"b": "x", "note": {"value": "two", "identifying": False}, "a": 1})
    other = launch(conn, "j", {"a": "1", "b": "x"})
    assert execution(conn, other)["instance_id"] != execution(conn, first)["instance_id"]
    # all parameters are kept with the execution, the flag included
    assert execution(conn, first)["params"]["note"] == {
        "type": "str",
        "value": "one",
        "identifying": False,
    }
    # empty identifying set: one instance per job name
    register(conn, "empty")
    launch(conn, "empty")
    with raises_sqlstate("PB044"):
        launch(conn, "empty", {"only": {"value": 1, "identifying": False}})
    assert scalar(conn, "select count(*) from pgbatch.job_instance where job_name = 'empty'") == 1
    assert_invariants(conn)


def test_launch_enqueues_the_first_work_item_in_the_same_transaction(conn: Conn) -> None:
    register(conn, queue="batch-q")
    exec_id = launch(conn)
    x = execution(conn, exec_id)
    assert (x["status"], x["current_step"], x["queue"]) == ("STARTING", "prepare", "batch-q")
    job = job_row(conn, x["queue_job_id"])
    assert job is not None
    assert (job["queue"], job["state"]) == ("batch-q", "pending")
    assert job["payload"] == {"kind": "batch_step", "execution_id": exec_id, "step": "prepare"}
    assert events(conn, exec_id) == ["launched"]
    # a refused launch rolls the whole transaction back
    before = batch_state(conn)
    with raises_sqlstate("PB044"):
        launch(conn)
    assert batch_state(conn) == before
    assert_invariants(conn)


def test_A2_concurrent_launches_of_a_new_instance(db: TestDatabase) -> None:
    with db.connect() as setup:
        register(setup)
    barrier = threading.Barrier(16)
    results: list[Any] = []

    def one() -> None:
        with db.connect() as c:
            barrier.wait()
            try:
                results.append(launch(c, "j", {"day": "2026-12-01"}))
            except psycopg.Error as exc:
                results.append(exc.sqlstate)

    run_threads([one] * 16)
    ids = [r for r in results if isinstance(r, int)]
    assert len(ids) == 1
    assert sorted(r for r in results if not isinstance(r, int)) == ["PB044"] * 15
    with db.connect() as c:
        assert scalar(c, "select count(*) from pgbatch.job_instance") == 1
        assert scalar(c, "select count(*) from pgbatch.job_execution") == 1
        assert scalar(c, "select count(*) from pgbatch.job") == 1
        assert_invariants(c)


def test_A3_concurrent_restarts_of_a_failed_instance_lock_interleaved(db: TestDatabase) -> None:
    with db.connect() as setup:
        register(setup)
        old = failed(setup, {"day": "2026-12-01"})
        instance = execution(setup, old)["instance_id"]
    holder = db.connect()
    holder.autocommit = False
    holder.execute("select 1 from pgbatch.job_instance where id = %s for update", [instance])
    results: list[Any] = []

    def one(i: int) -> None:
        with db.connect() as c:
            c.execute("select set_config('application_name', %s, false)", [f"restart-{i}"])
            try:
                results.append(restart(c, old))
            except psycopg.Error as exc:
                results.append(exc.sqlstate)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    with db.connect() as watch:
        deadline = time.monotonic() + 60
        while (
            scalar(
                watch,
                "select count(*) from pg_stat_activity where application_name like 'restart-%%'"
                " and wait_event_type = 'Lock'",
            )
            < 16
        ):
            assert time.monotonic() < deadline, "the restarts never all waited on the instance lock"
            time.sleep(0.02)
    holder.rollback()
    holder.close()
    for t in threads:
        t.join(60)
    new = [r for r in results if isinstance(r, int)]
    assert len(new) == 1
    assert new[0] != old
    assert sorted(r for r in results if not isinstance(r, int)) == ["PB044"] * 15
    with db.connect() as c:
        assert scalar(c, "select count(*) from pgbatch.job_execution") == 2
        assert_invariants(c)


def test_A4_the_partial_unique_index_rejects_a_second_active_execution(conn: Conn) -> None:
    register(conn)
    exec_id = launch(conn)
    with raises_sqlstate("23505", "job_execution_one_active"):
        conn.execute(
            """insert into pgbatch.job_execution
                 (instance_id, status, params, definition_fp, recovery_policy, queue,
                  create_time, last_updated)
               select instance_id, 'STARTING', params, definition_fp, recovery_policy, queue,
                      now(), now()
                 from pgbatch.job_execution where id = %s""",
            [exec_id],
        )
    assert_invariants(conn)


def test_launch_request_id_is_idempotent(conn: Conn) -> None:
    register(conn)
    first = launch(conn, "j", {"n": 1}, request_id="req-1")
    assert launch(conn, "j", {"n": 1}, request_id="req-1") == first
    assert scalar(conn, "select count(*) from pgbatch.job_execution") == 1
    assert scalar(conn, "select count(*) from pgbatch.job") == 1
    assert events(conn, first) == ["launched"]
    with raises_sqlstate("PB044"):
        launch(conn, "j", {"n": 1}, request_id="req-2")
    assert_invariants(conn)


def test_next_instance_runs_the_job_again(conn: Conn) -> None:
    register(conn)
    p1 = scalar(conn, "select pgbatch.next_instance('j', '{\"day\": \"2026-12-01\"}')")
    assert p1["run_id"] == {"type": "int", "value": 1, "identifying": True}
    first = launch(conn, "j", p1)
    assert run_to_end(conn, first) == "COMPLETED"
    with raises_sqlstate("PB043"):
        launch(conn, "j", p1)
    p2 = scalar(conn, "select pgbatch.next_instance('j', '{\"day\": \"2026-12-01\"}')")
    assert p2["run_id"]["value"] == 2
    second = launch(conn, "j", p2)
    assert execution(conn, second)["instance_id"] != execution(conn, first)["instance_id"]
    assert_invariants(conn)


# ---- restart rules (R1-R5) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "code", "detail"),
    [
        ("COMPLETED", "PB043", None),
        ("ABANDONED", "PB045", "abandoned"),
        ("UNKNOWN", "PB045", "unknown"),
        *[(s, "PB044", None) for s in ACTIVE_BY_FUNCTIONS + ACTIVE_BY_ROW],
        ("FAILED", None, None),
        ("STOPPED", None, None),
    ],
)
def test_R1_restart_rules(conn: Conn, last: str, code: str | None, detail: str | None) -> None:
    register(conn)
    old = bring_to(conn, last, {"n": 1})
    conn.execute(
        "update pgbatch.job_execution_context set context = '{\"seen\": 5}'"
        " where job_execution_id = %s",
        [old],
    )
    before = batch_state(conn)
    if code is None:
        new = restart(conn, old)
        x = execution(conn, new)
        assert (x["status"], x["instance_id"]) == ("STARTING", execution(conn, old)["instance_id"])
        assert x["params"] == execution(conn, old)["params"]
        assert scalar(
            conn,
            "select context from pgbatch.job_execution_context where job_execution_id = %s",
            [new],
        ) == {"seen": 5}, "the job context is copied from the last execution"
        assert scalar(
            conn,
            "select detail from pgbatch.execution_event where job_execution_id = %s"
            " and kind = 'launched'",
            [new],
        ) == {"restart_of": old}
    else:
        with pytest.raises(psycopg.Error) as info:
            restart(conn, old)
        assert info.value.sqlstate == code
        if detail is not None:
            assert info.value.diag.message_detail == detail
        assert batch_state(conn) == before, "a refused restart changes nothing"
    if last not in ACTIVE_BY_ROW and last != "UNKNOWN":
        assert_invariants(conn)


@pytest.mark.parametrize("last", ["FAILED", "STOPPED"])
def test_R1_not_restartable(conn: Conn, last: str) -> None:
    register(conn, restartable=False)
    old = bring_to(conn, last)
    before = batch_state(conn)
    with raises_sqlstate("PB045", "not restartable"):
        restart(conn, old)
    assert batch_state(conn) == before
    assert execution(conn, old)["recovery_policy"] == "Fail"
    assert_invariants(conn)


def two_step_failure(conn: Conn) -> int:
    """prepare COMPLETED, load FAILED."""
    exec_id, item, s = started(conn)
    handoff = end_step(conn, item, s["step_execution_id"])
    assert (handoff["job_status"], handoff["next_step"]) == ("STARTING", "load")
    item = claim_item(conn)
    assert item.step == "load"
    start(conn, item)
    s = start_step(conn, item)
    assert s["action"] == "run"
    commit_chunk(
        conn, item, s["step_execution_id"], 0, {"offset": 10}, read_count=10, write_count=10
    )
    commit_chunk(
        conn, item, s["step_execution_id"], 1, {"offset": 20}, read_count=10, write_count=10
    )
    assert end_step(conn, item, s["step_execution_id"], "FAILED")["job_status"] == "FAILED"
    return exec_id


@pytest.mark.parametrize("allow", [False, True])
def test_R2_allow_start_if_complete(conn: Conn, allow: bool) -> None:
    prepare: dict[str, Any] = {"name": "prepare", "kind": "tasklet"}
    if allow:
        prepare["allow_start_if_complete"] = True
    register(conn, steps=[prepare, {"name": "load", "kind": "chunk", "chunk_size": 10}])
    old = two_step_failure(conn)
    new = restart(conn, old)
    item = claim_item(conn)
    start(conn, item)
    s = start_step(conn, item, "prepare")
    assert s["action"] == ("run" if allow else "skip")
    if not allow:
        s = start_step(conn, item, "load")
        assert s["action"] == "run"
    assert [r["step_name"] for r in steps(conn, new)] == (["prepare"] if allow else ["load"])
    assert_invariants(conn)


def test_R3_start_limit(conn: Conn) -> None:
    register(conn, steps=[{"name": "only", "kind": "tasklet", "start_limit": 2}])
    first = failed(conn)
    second = restart(conn, first)
    item = claim_item(conn)
    start(conn, item)
    s = start_step(conn, item)
    assert s["action"] == "run"
    # a ResumeForward recovery of the same execution does not count as a start
    expire_lease(conn, item.job_id)
    assert scalar(conn, "select pgbatch.reap_expired()") == 1
    item = claim_item(conn)
    row = start(conn, item)
    assert row["status"] == "STARTED"
    again = start_step(conn, item)
    assert (again["action"], again["step_execution_id"]) == ("run", s["step_execution_id"])
    assert execution(conn, second)["recovery_count"] == 1
    end_step(conn, item, s["step_execution_id"], "FAILED")
    third = restart(conn, second)
    item = claim_item(conn)
    start(conn, item)
    assert start_step(conn, item)["action"] == "start_limit_exceeded"
    x = execution(conn, third)
    assert (x["status"], x["exit_code"]) == ("FAILED", "START_LIMIT_EXCEEDED")
    assert steps(conn, third) == []
    conn.execute("select pgbatch.ack(%s, %s)", [item.job_id, item.claim_token])
    assert_invariants(conn)


def test_R4_restart_resumes_from_the_last_checkpoint(conn: Conn) -> None:
    register(conn)
    old = two_step_failure(conn)
    new = restart(conn, old)
    item = claim_item(conn)
    start(conn, item)
    assert start_step(conn, item, "prepare")["action"] == "skip"
    s = start_step(conn, item, "load")
    assert (s["action"], s["context"], s["chunk_seq"]) == ("run", {"offset": 20}, 0)
    old_load = next(r for r in steps(conn, old) if r["step_name"] == "load")
    assert s["step_execution_id"] != old_load["id"], "a restart is a new step execution"
    assert old_load["read_count"] == 20
    assert [r["read_count"] for r in steps(conn, new)] == [0]
    assert_invariants(conn)


def test_R5_abandoned_step_is_skipped_and_abandoned_instance_is_closed(conn: Conn) -> None:
    register(conn)
    old = two_step_failure(conn)
    assert abandon(conn, old) == (True, "ABANDONED")
    assert [(r["step_name"], r["status"]) for r in steps(conn, old)] == [
        ("prepare", "COMPLETED"),
        ("load", "ABANDONED"),
    ]
    with raises_sqlstate("PB045", "abandoned"):
        restart(conn, old)
    assert_invariants(conn)


# ---- chunks (C1, C3) and fencing (H7, I5) --------------------------------------------


def failing_chunk(conn: Conn, item: WorkItem, step_id: int, exec_id: int) -> None:
    """A chunk transaction whose writer fails after the checkpoint was written."""
    with conn.transaction():
        commit_chunk(conn, item, step_id, 2, {"last": 9}, read_count=3)
        conn.execute("insert into public.out values (6, %s, 2)", [exec_id])


def test_C1_chunk_commit_writes_checkpoint_counters_and_sink_atomically(conn: Conn) -> None:
    conn.execute(
        "create table public.out (item_id int primary key, execution_id bigint, chunk_seq bigint)"
    )
    register(conn, steps=[{"name": "load", "kind": "chunk", "chunk_size": 3}])
    exec_id, item, s = started(conn)
    step_id = s["step_execution_id"]
    for seq, items in enumerate([[1, 2, 3], [4, 5, 6]]):
        with conn.transaction():
            for i in items:
                conn.execute("insert into public.out values (%s, %s, %s)", [i, exec_id, seq])
            row = commit_chunk(
                conn,
                item,
                step_id,
                seq,
                {"last": items[-1]},
                read_count=3,
                write_count=2,
                filter_count=1,
                process_skip_count=1,
            )
        assert (row["chunk_seq"], row["applied"], row["status"], row["stop_requested"]) == (
            seq + 1,
            True,
            "STARTED",
            False,
        )
    # a chunk whose transaction fails leaves no trace: sink, checkpoint and counters roll back
    with pytest.raises(psycopg.errors.UniqueViolation):
        failing_chunk(conn, item, step_id, exec_id)
    (st,) = steps(conn, exec_id)
    assert (st["chunk_seq"], st["commit_count"], st["context"]) == (2, 2, {"last": 6})
    assert (st["read_count"], st["write_count"], st["filter_count"], st["process_skip_count"]) == (
        6,
        4,
        2,
        2,
    )
    assert scalar(conn, "select count(*) from public.out") == 6
    # the lease was extended on the work item and mirrored on the execution
    job = job_row(conn, item.job_id)
    assert job is not None
    assert execution(conn, exec_id)["lease_expires_at"] == job["lease_expires_at"]
    assert_invariants(conn)


def test_C3_a_retried_commit_of_the_same_chunk_is_recognised(conn: Conn) -> None:
    register(conn, steps=[{"name": "load", "kind": "chunk", "chunk_size": 3}])
    exec_id, item, s = started(conn)
    step_id = s["step_execution_id"]
    assert commit_chunk(conn, item, step_id, 0, {"n": 3}, read_count=3)["applied"] is True
    retry = commit_chunk(conn, item, step_id, 0, {"n": 3}, read_count=3)
    assert (retry["applied"], retry["chunk_seq"]) == (False, 1)
    (st,) = steps(conn, exec_id)
    assert (st["chunk_seq"], st["read_count"], st["commit_count"]) == (1, 3, 1)
    # out of sequence: neither this chunk nor the one after it
    for wrong in (2, 5):
        with raises_sqlstate("PB048", "committed chunks"):
            commit_chunk(conn, item, step_id, wrong, {"n": 99}, read_count=3)
    with raises_sqlstate("PB007", ">= 0"):
        commit_chunk(conn, item, step_id, 1, {"n": 99}, read_count=-1)
    assert steps(conn, exec_id)[0]["chunk_seq"] == 1
    assert_invariants(conn)


def test_H7_a_zombie_worker_is_fenced_out(conn: Conn) -> None:
    register(conn, steps=[{"name": "load", "kind": "chunk", "chunk_size": 3}])
    exec_id, zombie, s = started(conn)
    step_id = s["step_execution_id"]
    epoch = execution(conn, exec_id)["lease_epoch"]
    commit_chunk(conn, zombie, step_id, 0, {"n": 3}, read_count=3)
    expire_lease(conn, zombie.job_id)
    assert scalar(conn, "select pgbatch.reap_expired()") == 1
    successor = claim_item(conn)
    assert successor.job_id == zombie.job_id
    assert successor.claim_token != zombie.claim_token
    assert start(conn, successor)["lease_epoch"] == epoch + 1
    again = start_step(conn, successor)
    assert (again["step_execution_id"], again["context"], again["chunk_seq"]) == (
        step_id,
        {"n": 3},
        1,
    )
    commit_chunk(conn, successor, step_id, 1, {"n": 6}, read_count=3)
    before = batch_state(conn)
    with raises_sqlstate("PB001"):
        commit_chunk(conn, zombie, step_id, 2, {"n": 9}, read_count=3)
    with raises_sqlstate("PB001"):
        end_step(conn, zombie, step_id)
    assert batch_state(conn) == before
    assert events(conn, exec_id) == [
        "launched", "claimed", "step_started", "recovered", "claimed"]
    assert_invariants(conn)


def test_fenced_out_when_the_execution_stopped_before_its_claim_started(conn: Conn) -> None:
    register(conn)
    exec_id = launch(conn)
    item = claim_item(conn)
    assert stop(conn, exec_id) == (True, "STOPPED")
    assert start(conn, item)["status"] == "STOPPED", "start_execution reports it, changing nothing"
    with raises_sqlstate("PB046", "fenced out"):
        start_step(conn, item)
    job = job_row(conn, item.job_id)
    assert job is not None
    assert job["cancel_requested"] is True
    conn.execute("select pgbatch.ack(%s, %s)", [item.job_id, item.claim_token])
    assert_invariants(conn)


def test_step_hand_off_is_an_ack_enqueueing_the_next_step(conn: Conn) -> None:
    register(conn)
    exec_id, item, s = started(conn)
    result = end_step(conn, item, s["step_execution_id"])
    assert (result["job_status"], result["next_step"]) == ("STARTING", "load")
    done = archive_row(conn, item.job_id)
    assert done is not None
    assert done["state"] == "done"
    nxt = job_row(conn, result["next_job_id"])
    assert nxt is not None
    assert nxt["payload"] == {
        "kind": "batch_step",
        "execution_id": exec_id,
        "step": "load",
    }
    x = execution(conn, exec_id)
    assert (x["queue_job_id"], x["current_step"], x["lease_owner"]) == (
        result["next_job_id"],
        "load",
        None,
    )
    assert run_to_end(conn, exec_id) == "COMPLETED"
    x = execution(conn, exec_id)
    assert (x["status"], x["exit_code"]) == ("COMPLETED", "COMPLETED")
    assert x["end_time"] is not None
    assert scalar(conn, "select count(*) from pgbatch.job_execution") == 1, (
        "I6: hand-offs add no execution"
    )
    assert [r["status"] for r in steps(conn, exec_id)] == ["COMPLETED", "COMPLETED"]
    assert scalar(conn, "select count(*) from pgbatch.job") == 0
    assert events(conn, exec_id) == [
        "launched",
        "claimed",
        "step_started",
        "step_handoff",
        "claimed",
        "step_started",
        "completed",
    ]
    assert_invariants(conn)


def test_illegal_step_transitions_are_refused_and_change_nothing(conn: Conn) -> None:
    register(conn)
    _exec_id, item, s = started(conn)
    before = batch_state(conn)
    with raises_sqlstate("PB048", "has no step"):
        start_step(conn, item, "no-such-step")
    with raises_sqlstate("PB007", "COMPLETED, FAILED, STOPPED or UNKNOWN"):
        end_step(conn, item, s["step_execution_id"], "PAUSED")
    with raises_sqlstate("PB047", "not found"):
        commit_chunk(conn, item, 10**9, 0, {})
    with raises_sqlstate("PB047", "not found"):
        stop(conn, 10**9)
    assert batch_state(conn) == before
    assert_invariants(conn)


# ---- stop (S1-S4) and abandon (S7) ----------------------------------------------------


def test_S1_stop_while_a_chunk_runs(conn: Conn) -> None:
    register(conn, steps=[{"name": "load", "kind": "chunk", "chunk_size": 3}])
    exec_id, item, s = started(conn)
    step_id = s["step_execution_id"]
    assert stop(conn, exec_id) == (True, "STOPPING")
    row = commit_chunk(conn, item, step_id, 0, {"n": 3}, read_count=3)
    assert (row["applied"], row["status"], row["stop_requested"]) == (True, "STOPPING", True)
    assert end_step(conn, item, step_id, "STOPPED")["job_status"] == "STOPPED"
    x = execution(conn, exec_id)
    assert (x["status"], x["exit_code"]) == ("STOPPED", "STOPPED")
    assert steps(conn, exec_id)[0]["read_count"] == 3
    new = restart(conn, exec_id)
    item = claim_item(conn)
    start(conn, item)
    resumed = start_step(conn, item)
    assert (resumed["action"], resumed["context"]) == ("run", {"n": 3})
    assert new != exec_id
    assert_invariants(conn)


@pytest.mark.parametrize("status", ["STARTING", "PAUSED", "AWAITING_APPROVAL"])
def test_S2_stop_of_an_execution_nobody_runs(conn: Conn, status: str) -> None:
    register(conn)
    exec_id = launch(conn)
    job_id = execution(conn, exec_id)["queue_job_id"]
    if status != "STARTING":
        conn.execute(
            "update pgbatch.job_execution set status = %s where id = %s", [status, exec_id]
        )
        conn.execute(
            "insert into pgbatch.approval (job_execution_id, gate_name, status, requested_at)"
            " values (%s, 'gate', 'PENDING', now())",
            [exec_id],
        )
    assert stop(conn, exec_id, "stop-1") == (True, "STOPPED")
    assert stop(conn, exec_id, "stop-1") == (True, "STOPPED"), "a retry returns the first result"
    assert stop(conn, exec_id) == (False, "STOPPED")
    x = execution(conn, exec_id)
    assert (x["status"], x["exit_code"]) == ("STOPPED", "STOPPED")
    assert x["end_time"] is not None
    assert events(conn, exec_id) == ["launched", "stop"]
    if status == "STARTING":
        cancelled = archive_row(conn, job_id)
        assert cancelled is not None
        assert cancelled["state"] == "cancelled"
        assert_invariants(conn)
    else:
        assert (
            scalar(
                conn, "select status from pgbatch.approval where job_execution_id = %s", [exec_id]
            )
            == "EXPIRED"
        )


def test_S3_stop_between_steps_never_leaves_stopping(conn: Conn) -> None:
    register(conn)
    # stopped while the next step's work item waits
    exec_id, item, s = started(conn, {"n": 1})
    end_step(conn, item, s["step_execution_id"])
    assert stop(conn, exec_id) == (True, "STOPPED")
    assert_invariants(conn)
    # stopped while running, seen at the next step start
    exec_id, item, s = started(conn, {"n": 2})
    assert stop(conn, exec_id) == (True, "STOPPING")
    # the worker finished the step: work remains, so the job is STOPPED, not COMPLETED
    assert end_step(conn, item, s["step_execution_id"])["job_status"] == "STOPPED"
    assert execution(conn, exec_id)["status"] == "STOPPED"
    assert_invariants(conn)


def test_S3_stop_seen_at_step_start(conn: Conn) -> None:
    register(conn)
    exec_id = launch(conn)
    item = claim_item(conn)
    start(conn, item)
    assert stop(conn, exec_id) == (True, "STOPPING")
    assert start_step(conn, item)["action"] == "stopped"
    assert execution(conn, exec_id)["status"] == "STOPPED"
    conn.execute("select pgbatch.ack(%s, %s)", [item.job_id, item.claim_token])
    assert_invariants(conn)


def test_S4_stop_racing_the_last_step_ends_completed(conn: Conn) -> None:
    register(conn, steps=[{"name": "only", "kind": "tasklet"}])
    exec_id, item, s = started(conn)
    assert stop(conn, exec_id) == (True, "STOPPING")
    assert end_step(conn, item, s["step_execution_id"])["job_status"] == "COMPLETED"
    assert stop(conn, exec_id) == (False, "COMPLETED")
    assert_invariants(conn)


@pytest.mark.parametrize("status", ["STOPPED", "FAILED", "UNKNOWN", "PAUSED", "AWAITING_APPROVAL"])
def test_S7_abandon_from_each_allowed_state(conn: Conn, status: str) -> None:
    register(conn)
    exec_id = bring_to(conn, status)
    assert abandon(conn, exec_id, "ab-1") == (True, "ABANDONED")
    assert abandon(conn, exec_id, "ab-1") == (True, "ABANDONED")
    assert abandon(conn, exec_id) == (False, "ABANDONED")
    x = execution(conn, exec_id)
    assert (x["status"], x["exit_code"]) == ("ABANDONED", "ABANDONED")
    assert x["end_time"] is not None
    assert all(r["status"] in ("COMPLETED", "ABANDONED") for r in steps(conn, exec_id))
    assert (
        scalar(
            conn,
            "select count(*) from pgbatch.execution_event where job_execution_id = %s"
            " and kind = 'abandon'",
            [exec_id],
        )
        == 1
    )
    with raises_sqlstate("PB045", "abandoned"):
        restart(conn, exec_id)
    if status in ("STOPPED", "FAILED"):
        assert_invariants(conn)


def test_S7_abandon_of_a_running_execution_needs_an_expired_lease(conn: Conn) -> None:
    register(conn)
    exec_id, item, _ = started(conn)
    before = batch_state(conn)
    with raises_sqlstate("PB044", "live lease"):
        abandon(conn, exec_id)
    assert batch_state(conn) == before
    expire_lease(conn, item.job_id)
    assert abandon(conn, exec_id) == (True, "ABANDONED")
    assert [r["status"] for r in steps(conn, exec_id)] == ["ABANDONED"]
    # the dead worker's item is cancelled: its reap ends it, nothing runs it again
    assert scalar(conn, "select pgbatch.reap_expired()") == 1
    assert job_row(conn, item.job_id) is None
    assert_invariants(conn)


def test_abandon_refuses_starting_and_completed(conn: Conn) -> None:
    register(conn)
    done = bring_to(conn, "COMPLETED", {"n": 2})
    assert abandon(conn, done) == (False, "COMPLETED")
    starting = launch(conn, "j", {"n": 1})
    assert abandon(conn, starting) == (False, "STARTING")
    assert_invariants(conn)


# ---- the invariant checker -------------------------------------------------------------


def test_the_invariant_checker_reports_broken_rows(conn: Conn) -> None:
    register(conn, steps=[{"name": "load", "kind": "chunk", "chunk_size": 3}])
    exec_id, item, _s = started(conn)
    assert invariant_violations(conn) == []
    conn.execute("update pgbatch.step_execution_context set chunk_seq = 7")
    conn.execute("delete from pgbatch.job where id = %s", [item.job_id])
    found = {inv for inv, _ in invariant_violations(conn)}
    assert {"I4", "I5", "I7"} <= found or {"I4", "I5"} <= found
    conn.execute(
        "update pgbatch.job_execution set status = 'COMPLETED', end_time = now() where id = %s",
        [exec_id],
    )
    assert "I2" in {inv for inv, _ in invariant_violations(conn)}


# ---- history --------------------------------------------------------------------------


def test_history_functions(conn: Conn) -> None:
    register(conn)
    done = launch(conn, "j", {"n": 1})
    assert run_to_end(conn, done) == "COMPLETED"
    waiting = launch(conn, "j", {"n": 2})
    rows = conn.execute(
        "select execution_id, execution_status, job from pgbatch.job_executions('j')"
    ).fetchall()
    assert rows == [(waiting, "STARTING", "j"), (done, "COMPLETED", "j")]
    assert conn.execute(
        "select execution_id from pgbatch.job_executions(status => 'COMPLETED', \"limit\" => 1)"
    ).fetchall() == [(done,)]
    assert conn.execute("select * from pgbatch.job_executions('other')").fetchall() == []
    with raises_sqlstate("PB007", "limit"):
        conn.execute("select * from pgbatch.job_executions(\"limit\" => 0)")
    history = conn.execute(
        "select step_name, status, read_count, chunk_seq from pgbatch.step_executions(%s)", [done]
    ).fetchall()
    assert history == [("prepare", "COMPLETED", 20, 2), ("load", "COMPLETED", 20, 2)]
    kinds = [r[0] for r in conn.execute("select kind from pgbatch.execution_events(%s)", [done])]
    assert kinds == events(conn, done)
    assert kinds[0] == "launched"
    assert kinds[-1] == "completed"
    for fn in ("step_executions", "execution_events"):
        with raises_sqlstate("PB047", "not found"):
            conn.execute(f"select * from pgbatch.{fn}(0)")
    assert_invariants(conn)


def test_end_step_can_leave_the_ack_to_the_caller(conn: Conn) -> None:
    register(conn)
    exec_id, item, s = started(conn)
    with conn.transaction():
        row = conn.execute(
            "select job_status, next_job_id, effects"
            " from pgbatch.end_step(%s, %s, %s, 'COMPLETED', ack => false)",
            [s["step_execution_id"], item.job_id, item.claim_token],
        ).fetchone()
        assert row is not None
        status, next_id, effects = row
        live = job_row(conn, item.job_id)
        assert live is not None
        assert live["state"] == "claimed", "not acked yet"
        ids = scalar(
            conn, "select pgbatch.ack(%s, %s, %s)", [item.job_id, item.claim_token, Jsonb(effects)]
        )
    assert status == "STARTING"
    assert ids == [next_id]
    assert execution(conn, exec_id)["queue_job_id"] == next_id
    assert_invariants(conn)


def test_skipping_the_last_step_completes_the_execution(conn: Conn) -> None:
    only: dict[str, Any] = {"name": "only", "kind": "tasklet"}
    register(conn, steps=[only, {"name": "after", "kind": "tasklet"}])
    old = two_step_failure_named(conn, "only", "after")
    register(conn, steps=[{"name": "after", "kind": "tasklet"}, only])
    new = restart(conn, old)
    item = claim_item(conn)
    start(conn, item)
    assert start_step(conn, item, "after")["action"] == "run"
    s = steps(conn, new)[0]
    assert end_step(conn, item, s["id"])["job_status"] == "STARTING"
    item = claim_item(conn)
    start(conn, item)
    assert start_step(conn, item, "only")["action"] == "completed"
    assert execution(conn, new)["status"] == "COMPLETED"
    conn.execute("select pgbatch.ack(%s, %s)", [item.job_id, item.claim_token])
    assert_invariants(conn)


def two_step_failure_named(conn: Conn, first: str, second: str) -> int:
    """``first`` COMPLETED, ``second`` FAILED."""
    exec_id, item, s = started(conn)
    end_step(conn, item, s["step_execution_id"])
    item = claim_item(conn)
    start(conn, item)
    s = start_step(conn, item, second)
    end_step(conn, item, s["step_execution_id"], "FAILED")
    assert [r["step_name"] for r in steps(conn, exec_id)] == [first, second]
    return exec_id
