"""A model-based test of the batch state machine (BATCH.md §3): Hypothesis drives
launch, restart, stop, pause, resume, abandon, recover, approve and reject of
the job's approval gate, concurrent pairs of those operator calls on two
connections, and a fake worker (claim, step start, reaching the gate, chunk
commit, step end, ``request_pause``, crash = expired lease + the reaper)
against a reference model; after every rule the database's execution
statuses and approval rows equal the model's and the invariant checker
passes."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tests.batch_helpers import WorkItem, assert_invariants, register
from tests.conftest import TestDatabase

Conn = psycopg.Connection[Any]
STEPS = ("check", "a", "load")  # the gate first: a few rules reach it
GATE = "check"
RUNNING = ("STARTED", "STOPPING", "PAUSING")
MAX_RECOVERIES = 2
Result = tuple[bool, str] | str  # (applied, status), or the SQLSTATE of a refusal


@dataclasses.dataclass
class MExec:
    """The model of one execution."""

    id: int
    instance: int
    status: str = "STARTING"
    step: int = 0                     # index of the current step
    item: WorkItem | None = None      # the fake worker's claim
    step_started: bool = False        # the current step runs in this claim
    pause_pending: bool = False       # pause_requested_at is set
    resume_count: int = 0
    recovery_count: int = 0
    approval: str | None = None       # the gate's approval row: PENDING, APPROVED, ...


def operator_result(x: MExec, op: str, now_done: set[str]) -> tuple[Result, MExec]:
    """The model of an operator call on ``x``: its result and the execution after it."""
    y = dataclasses.replace(x)
    s = x.status
    if op == "stop":
        if s in ("STARTED", "PAUSING"):
            y.status = "STOPPING"
        elif s in ("STARTING", "PAUSED"):
            y.status, y.item = "STOPPED", None
        elif s == "AWAITING_APPROVAL":  # T7: the pending approval expires
            y.status, y.item, y.approval = "STOPPED", None, "EXPIRED"
        else:
            return (False, s), y
        return (True, y.status), y
    if op == "pause":
        if s == "STARTED":
            y.status, y.pause_pending = "PAUSING", True
        elif s == "STARTING":
            y.status, y.pause_pending, y.item = "PAUSED", True, None
        else:
            return (False, s), y
        return (True, y.status), y
    if op == "resume":
        if s != "PAUSED":
            return (False, s), y
        y.status, y.pause_pending, y.resume_count = "STARTING", False, x.resume_count + 1
        y.step_started = False
        return (True, "STARTING"), y
    if op == "abandon":
        if s in RUNNING:
            return "PB044", y  # the fake worker's lease is live
        if s in ("STOPPED", "FAILED", "PAUSED", "AWAITING_APPROVAL"):
            if x.approval == "PENDING":
                y.approval = "EXPIRED"
            y.status, y.item = "ABANDONED", None
            return (True, "ABANDONED"), y
        return (False, s), y
    if op == "recover":
        return (False, s), y  # no UNKNOWN here, and running ones hold a live lease
    if op in ("approve", "reject"):  # T14 / T15: the approval row and the execution, one CAS
        if x.approval is None:
            return "PB056", y  # the execution has not reached the gate
        if x.approval != "PENDING" or s != "AWAITING_APPROVAL":
            return (False, x.approval), y
        if op == "approve":
            y.status, y.approval, y.step, y.step_started = "STARTING", "APPROVED", x.step + 1, False
            return (True, "APPROVED"), y
        y.status, y.approval, y.item = "FAILED", "REJECTED", None
        return (True, "REJECTED"), y
    raise AssertionError(op)


OPERATOR_CALLS = ("stop", "pause", "resume", "abandon", "recover", "approve", "reject")
_SQL = {"stop": "stop_execution", "pause": "pause_execution", "resume": "resume_execution",
        "abandon": "abandon_execution", "recover": "recover_execution",
        "approve": "approve_gate", "reject": "reject_gate"}


def call_operator(conn: Conn, op: str, execution_id: int) -> Result:
    gate = f", '{GATE}'" if op in ("approve", "reject") else ""
    try:
        row = conn.execute(f"select * from pgbatch.{_SQL[op]}(%s{gate})",
                           [execution_id]).fetchone()
    except psycopg.Error as exc:
        return str(exc.sqlstate)
    assert row is not None
    return bool(row[0]), str(row[1])


def make_machine(conn: Conn, others: tuple[Conn, Conn],
                 counter: list[int]) -> type[RuleBasedStateMachine]:
    """A state machine bound to ``conn`` (and ``others`` for concurrent pairs, one
    connection per call: ``conn`` is only used by the rules' own thread)."""

    class BatchModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            conn.execute("truncate pgbatch.job_instance, pgbatch.job_execution,"
                         " pgbatch.execution_event, pgbatch.job, pgbatch.job_archive,"
                         " pgbatch.queue_count restart identity cascade")
            self.execs: dict[int, MExec] = {}
            self.instances: dict[int, list[int]] = {}
            self.done: dict[int, set[str]] = {}   # steps COMPLETED per instance
            self.n = 0

        # -- helpers ---------------------------------------------------------------------
        def pick(self, data: st.DataObject, *statuses: str) -> MExec | None:
            found = [x for x in self.execs.values() if not statuses or x.status in statuses]
            return data.draw(st.sampled_from(sorted(found, key=lambda x: x.id))) if found \
                else None

        def call(self, query: str, args: list[Any]) -> dict[str, Any]:
            with conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute(query, args).fetchone()
            assert row is not None
            return row

        def fake(self, x: MExec) -> list[Any]:
            assert x.item is not None
            return [x.item.job_id, x.item.claim_token]

        def finish(self, x: MExec, status: str) -> None:
            x.status, x.item, x.step_started = status, None, False

        def end_of_claim(self, x: MExec) -> None:
            x.item, x.step_started = None, False

        def settle(self, x: MExec, after: MExec) -> None:
            """Take ``after`` as the model of ``x``; an approved gate is a completed step."""
            if after.approval == "APPROVED" and x.approval != "APPROVED":
                self.done[x.instance].add(GATE)
            if after.approval in ("APPROVED", "REJECTED") and x.approval == "PENDING":
                counter[2] += 1
            self.execs[x.id] = after

        # -- operator rules ----------------------------------------------------------------
        @rule()
        def launch(self) -> None:
            if len(self.execs) >= 4:
                return
            self.n += 1
            exec_id = int(conn.execute("select pgbatch.launch_job('m', %s)",
                                       [Jsonb({"n": self.n})]).fetchone()[0])  # type: ignore[index]
            instance = int(conn.execute("select instance_id from pgbatch.job_execution"
                                        " where id = %s", [exec_id]).fetchone()[0])  # type: ignore[index]
            self.execs[exec_id] = MExec(exec_id, instance)
            self.instances[instance] = [exec_id]
            self.done[instance] = set()
            counter[0] += 1

        @rule(data=st.data())
        def restart(self, data: st.DataObject) -> None:
            x = self.pick(data)
            if x is None:
                return
            last = self.execs[self.instances[x.instance][-1]]
            new = 0
            try:
                new = int(conn.execute("select pgbatch.restart_execution(%s)",
                                       [x.id]).fetchone()[0])  # type: ignore[index]
            except psycopg.Error as exc:
                refused = exc.sqlstate
            else:
                refused = None
            if refused is not None:
                expected = {"COMPLETED": "PB043", "ABANDONED": "PB045"}.get(last.status, "PB044")
                assert refused == expected, (last.status, refused)
                return
            assert last.status in ("FAILED", "STOPPED"), last
            self.execs[new] = MExec(new, x.instance)
            self.instances[x.instance].append(new)
            counter[0] += 1

        @rule(data=st.data(), op=st.sampled_from(OPERATOR_CALLS))
        def operator(self, data: st.DataObject, op: str) -> None:
            x = self.pick(data)
            if x is None:
                return
            expected, after = operator_result(x, op, self.done[x.instance])
            assert call_operator(conn, op, x.id) == expected, (op, x)
            self.settle(x, after)
            counter[0] += 1

        @rule(data=st.data(), first=st.sampled_from(OPERATOR_CALLS),
              second=st.sampled_from(OPERATOR_CALLS))
        def concurrent_pair(self, data: st.DataObject, first: str, second: str) -> None:
            """Two operator calls at once on two connections: the outcome is one of the two
            serial orders."""
            x = self.pick(data, "STARTING", "STARTED", "PAUSING", "PAUSED", "STOPPING",
                          "AWAITING_APPROVAL")
            if x is None:
                return
            barrier = threading.Barrier(2)
            got: dict[str, Result] = {}

            def run(c: Conn, op: str, key: str) -> None:
                barrier.wait()
                got[key] = call_operator(c, op, x.id)

            threads = [threading.Thread(target=run, args=(c, op, key))
                       for c, op, key in ((others[0], first, "first"),
                                          (others[1], second, "second"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert set(got) == {"first", "second"}, got
            r1, m1 = operator_result(x, first, set())
            r2, m2 = operator_result(m1, second, set())
            q2, n2 = operator_result(x, second, set())
            q1, n1 = operator_result(n2, first, set())
            status = str(conn.execute("select status from pgbatch.job_execution where id = %s",
                                      [x.id]).fetchone()[0])  # type: ignore[index]
            orders = []
            if (got["first"], got["second"]) == (r1, r2) and m2.status == status:
                orders.append(m2)
            if (got["first"], got["second"]) == (q1, q2) and n1.status == status:
                orders.append(n1)
            assert orders, (first, second, x, got, status)
            self.settle(x, orders[0])
            counter[0] += 1

        # -- the fake worker ---------------------------------------------------------------
        @rule()
        def claim(self) -> None:
            rows = conn.execute("select id, claim_token, payload from pgbatch.claim('batch', 10)"
                                ).fetchall()
            for job_id, token, payload in rows:
                exec_id = int(payload["execution_id"])
                item = WorkItem(job_id, token, exec_id, str(payload["step"]))
                x = self.execs[exec_id]
                assert x.status == "STARTING", x
                row = self.call("select * from pgbatch.start_execution(%s, %s, %s)",
                                [exec_id, job_id, token])
                assert row["status"] == "STARTED"
                x.status, x.item, x.step_started = "STARTED", item, False
            counter[0] += 1

        @rule(data=st.data())
        def start_step(self, data: st.DataObject) -> None:
            x = self.pick(data, *RUNNING)
            if x is None or x.step_started:
                return
            while True:
                s = self.call("select * from pgbatch.start_step(%s, %s, %s, %s)",
                              [x.id, STEPS[x.step], *self.fake(x)])
                if x.status == "STOPPING":
                    assert s["action"] == "stopped"
                    conn.execute("select pgbatch.ack(%s, %s)", self.fake(x))  # as the executor
                    self.finish(x, "STOPPED")
                    return
                if STEPS[x.step] in self.done[x.instance] and s["action"] in ("skip", "completed"):
                    if s["action"] == "completed":
                        conn.execute("select pgbatch.ack(%s, %s)", self.fake(x))
                        self.finish(x, "COMPLETED")
                        return
                    x.step += 1
                    continue
                assert s["action"] == "run", (s, x)
                break
            control = self.call("select * from pgbatch.execution_control(%s, %s, %s)",
                                [x.id, *self.fake(x)])
            assert control["pause_requested"] == x.pause_pending
            x.step_started = True
            if x.pause_pending:  # an operator's pause, seen at the step start
                self.park(x, "operator")
            elif STEPS[x.step] == GATE:  # T13: the worker parks it at the gate
                row = self.call("select * from pgbatch.await_gate(%s, %s, %s, %s)",
                                [x.id, GATE, *self.fake(x)])
                assert row["status"] == "AWAITING_APPROVAL", row
                self.finish(x, "AWAITING_APPROVAL")
                x.approval = "PENDING"
                counter[1] += 1

        def park(self, x: MExec, source: str) -> None:
            row = self.call("select * from pgbatch.park_execution(%s, %s, %s, reason => 'm',"
                            " source => %s)", [x.id, *self.fake(x), source])
            expected = "STOPPED" if x.status == "STOPPING" else "PAUSED"
            assert row["status"] == expected
            self.finish(x, expected)

        @rule(data=st.data())
        def commit_chunk(self, data: st.DataObject) -> None:
            x = self.pick(data, *RUNNING)
            if x is None or not x.step_started:
                return
            seq = int(conn.execute("select c.chunk_seq from pgbatch.step_execution_context c"
                                   " join pgbatch.step_execution s on s.id = c.step_execution_id"
                                   " where s.job_execution_id = %s and s.step_name = %s",
                                   [x.id, STEPS[x.step]]).fetchone()[0])  # type: ignore[index]
            step_id = int(conn.execute("select id from pgbatch.step_execution where"
                                       " job_execution_id = %s and step_name = %s",
                                       [x.id, STEPS[x.step]]).fetchone()[0])  # type: ignore[index]
            row = self.call("select * from pgbatch.commit_chunk(%s, %s, %s, %s, %s,"
                            " read_count => 1, write_count => 1)",
                            [step_id, *self.fake(x), seq, Jsonb({"seq": seq + 1})])
            assert row["applied"]
            assert row["stop_requested"] == (x.status == "STOPPING")
            assert row["pause_requested"] == x.pause_pending
            if row["stop_requested"]:
                self.end_step_as(x, step_id, "STOPPED")
            elif row["pause_requested"]:
                self.park(x, "operator")
            counter[0] += 1

        def end_step_as(self, x: MExec, step_id: int, status: str) -> None:
            row = self.call("select * from pgbatch.end_step(%s, %s, %s, %s)",
                            [step_id, *self.fake(x), status])
            if status == "STOPPED":
                assert row["job_status"] == "STOPPED"
                self.finish(x, "STOPPED")
                return
            self.done[x.instance].add(STEPS[x.step])
            if x.step == len(STEPS) - 1:
                expected = "COMPLETED"
            elif x.status == "STOPPING":
                expected = "STOPPED"
            else:
                expected = "STARTING"
            assert row["job_status"] == expected, (row, x)
            self.finish(x, expected)
            if expected == "STARTING":
                x.step += 1

        @rule(data=st.data())
        def end_step(self, data: st.DataObject) -> None:
            x = self.pick(data, *RUNNING)
            if x is None or not x.step_started:
                return
            step_id = int(conn.execute("select id from pgbatch.step_execution where"
                                       " job_execution_id = %s and step_name = %s",
                                       [x.id, STEPS[x.step]]).fetchone()[0])  # type: ignore[index]
            self.end_step_as(x, step_id, "COMPLETED")
            counter[0] += 1

        @rule(data=st.data())
        def request_pause(self, data: st.DataObject) -> None:
            x = self.pick(data, *RUNNING)
            if x is None or not x.step_started:
                return
            self.park(x, "logic")
            counter[0] += 1

        @rule(data=st.data())
        def crash_worker(self, data: st.DataObject) -> None:
            """The worker dies: its lease expires and the reaper recovers the execution."""
            x = self.pick(data, *RUNNING)
            if x is None:
                return
            assert x.item is not None
            conn.execute("update pgbatch.job set lease_expires_at = now() - interval '1 minute'"
                         " where id = %s", [x.item.job_id])
            assert int(conn.execute("select pgbatch.recover_executions()"
                                    ).fetchone()[0]) == 1  # type: ignore[index]
            if x.status == "STOPPING":
                self.finish(x, "STOPPED")
            elif x.status == "PAUSING":
                self.finish(x, "PAUSED")
            elif x.recovery_count + 1 > MAX_RECOVERIES:
                self.finish(x, "FAILED")
            else:
                x.recovery_count += 1
                self.finish(x, "STARTING")
            counter[0] += 1

        # -- after every rule ----------------------------------------------------------------
        @invariant()
        def matches_the_model(self) -> None:
            rows = conn.execute("select id, status, resume_count from pgbatch.job_execution"
                                " order by id").fetchall()
            assert {r[0]: (r[1], r[2]) for r in rows} == {
                x.id: (x.status, x.resume_count) for x in self.execs.values()}
            approvals = conn.execute("select job_execution_id, status from pgbatch.approval"
                                     " where gate_name = %s", [GATE]).fetchall()
            assert dict(approvals) == {x.id: x.approval for x in self.execs.values()
                                       if x.approval is not None}
            assert_invariants(conn)

    return BatchModel


def test_batch_state_machine_against_a_model(db: TestDatabase) -> None:
    conn, one, two = db.connect(), db.connect(), db.connect()
    for c in (conn, one, two):
        c.autocommit = True
    register(conn, "m", [{"name": GATE, "kind": "gate"},
                         {"name": "a", "kind": "tasklet"},
                         {"name": "load", "kind": "chunk", "reader": "r.R", "writer": "w.W",
                          "chunk_size": 10}], max_recoveries=MAX_RECOVERIES)
    counter = [0, 0, 0]  # operations, gates reached, gate decisions applied
    run_state_machine_as_test(make_machine(conn, (one, two), counter), settings=settings(
        max_examples=20, stateful_step_count=50, deadline=None, database=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    assert counter[0] >= 200, f"only {counter[0]} operations ran"
    assert counter[1] >= 1, "no execution reached the gate"
    assert counter[2] >= 1, "no gate decision was applied"
