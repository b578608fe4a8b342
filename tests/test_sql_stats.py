"""queue_stats agrees with a Python model of the queue after long random operation
sequences (Hypothesis), and concurrent settlement never fails on locks."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.conftest import TestDatabase
from tests.helpers import all_stats, claim, db_now, run_threads, scalar, set_clock

Conn = psycopg.Connection[Any]

QUEUES = ["a", "b", "c", "Queue D", "ünï-e"]
LEASE = timedelta(seconds=30)
TOTAL_STEPS = 2000
STEPS_PER_EXAMPLE = 500


@dataclass
class MJob:
    """The model of one job."""

    id: UUID
    queue: str
    priority: int
    run_at: datetime
    seq: int
    max_attempts: int
    dedup_key: str | None = None
    state: str = "pending"  # pending | claimed | done | dead | cancelled | swept
    attempt: int = 0
    token: UUID | None = None
    lease_expires: datetime | None = None
    cancel_requested: bool = False
    finished_at: datetime | None = None


def sqlstate_of(conn: Conn, query: str, params: list[Any]) -> str | None:
    """Run ``query``; return the SQLSTATE it failed with, or None."""
    try:
        conn.execute(query, params)
    except psycopg.Error as exc:
        return exc.sqlstate
    return None


def make_machine(conn: Conn, steps: list[int]) -> type[RuleBasedStateMachine]:
    """A state machine class bound to ``conn`` (Hypothesis builds one per example)."""

    class QueueModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            conn.execute("truncate pgbatch.job, pgbatch.job_archive, pgbatch.queue_count,"
                         " pgbatch.queue, pgbatch.kv")
            set_clock(conn, None)
            self.now = db_now(conn)
            set_clock(conn, self.now)
            self.jobs: dict[UUID, MJob] = {}
            self.seq = 0
            self.paused: set[str] = set()

        # ------------------------------------------------------------ helpers

        def in_state(self, *states: str) -> list[MJob]:
            return [j for j in self.jobs.values() if j.state in states]

        def next_seq(self) -> int:
            self.seq += 1
            return self.seq

        def finish(self, job: MJob, state: str) -> None:
            job.state, job.token, job.lease_expires = state, None, None
            job.finished_at = self.now

        def step(self) -> None:
            steps[0] += 1

        # ------------------------------------------------------------ rules

        def live_holder(self, queue: str, dedup_key: str | None) -> MJob | None:
            if dedup_key is None:
                return None
            for j in self.in_state("pending", "claimed"):
                if j.queue == queue and j.dedup_key == dedup_key:
                    return j
            return None

        @rule(queue=st.sampled_from(QUEUES), delay=st.sampled_from([0, 0, 0, 5, 40]),
              priority=st.integers(0, 2), max_attempts=st.integers(1, 3),
              dedup_key=st.sampled_from([None, None, None, "k1", "k2"]))
        def enqueue(self, queue: str, delay: int, priority: int, max_attempts: int,
                    dedup_key: str | None) -> None:
            self.step()
            run_at = self.now + timedelta(seconds=delay)
            job_id = scalar(conn, "select pgbatch.enqueue(%s, '{}', %s, %s, %s, %s)",
                            [queue, run_at, priority, dedup_key, max_attempts])
            holder = self.live_holder(queue, dedup_key)
            if holder is not None:
                assert job_id == holder.id
                return
            assert job_id not in self.jobs
            self.jobs[job_id] = MJob(job_id, queue, priority, run_at, self.next_seq(),
                                     max_attempts, dedup_key)

        @rule(reqs=st.lists(st.tuples(st.sampled_from(QUEUES), st.sampled_from([0, 0, 20]),
                                      st.integers(0, 2)), min_size=1, max_size=6))
        def enqueue_many(self, reqs: list[tuple[str, int, int]]) -> None:
            self.step()
            body = [{"queue": q, "priority": p, "max_attempts": 2,
                     "run_at": (self.now + timedelta(seconds=d)).isoformat()}
                    for q, d, p in reqs]
            ids = scalar(conn, "select pgbatch.enqueue_many(%s)", [json.dumps(body)])
            assert len(ids) == len(reqs)
            for job_id, (q, d, p) in zip(ids, reqs, strict=True):
                self.jobs[job_id] = MJob(job_id, q, p, self.now + timedelta(seconds=d),
                                         self.next_seq(), 2)

        @rule(queue=st.sampled_from(QUEUES), n=st.integers(1, 4))
        def claim(self, queue: str, n: int) -> None:
            self.step()
            due = [j for j in self.in_state("pending")
                   if j.queue == queue and j.run_at <= self.now]
            due.sort(key=lambda j: (-j.priority, j.run_at, j.seq))
            expected = [] if queue in self.paused else due[:n]
            got = claim(conn, queue, n, LEASE)
            assert [r["id"] for r in got] == [j.id for j in expected]
            for job, row in zip(expected, got, strict=True):
                job.state, job.token = "claimed", row["claim_token"]
                job.attempt += 1
                job.lease_expires = self.now + LEASE
                assert row["attempt"] == job.attempt

        @precondition(lambda self: self.in_state("claimed"))
        @rule(data=st.data())
        def ack(self, data: st.DataObject) -> None:
            self.step()
            job = data.draw(st.sampled_from(self.in_state("claimed")))
            assert scalar(conn, "select pgbatch.ack(%s, %s)", [job.id, job.token]) == []
            self.finish(job, "done")

        @precondition(lambda self: self.in_state("claimed"))
        @rule(data=st.data())
        def ack_many(self, data: st.DataObject) -> None:
            self.step()
            jobs = data.draw(st.lists(st.sampled_from(self.in_state("claimed")), min_size=1,
                                      max_size=4, unique_by=lambda j: j.id))
            stale = data.draw(st.booleans())
            entries = [{"job_id": str(j.id), "claim_token": str(j.token)} for j in jobs]
            if stale:
                entries.append({"job_id": str(jobs[0].id), "claim_token": str(uuid4())})
            rows = conn.execute("select job_id, status from pgbatch.ack_many(%s)",
                                [json.dumps(entries)]).fetchall()
            assert [s for _, s in rows] == ["acked"] * len(jobs) + (["claim_lost"] if stale
                                                                     else [])
            for job in jobs:
                self.finish(job, "done")

        @precondition(lambda self: self.in_state("claimed"))
        @rule(data=st.data(), delay=st.sampled_from([0, 10]))
        def nack(self, data: st.DataObject, delay: int) -> None:
            self.step()
            job = data.draw(st.sampled_from(self.in_state("claimed")))
            retry_at = self.now + timedelta(seconds=delay)
            state = scalar(conn, "select pgbatch.nack(%s, %s, '{\"e\": 1}', %s)",
                           [job.id, job.token, retry_at])
            if job.cancel_requested:
                expected = "cancelled"
            elif job.attempt >= job.max_attempts:
                expected = "dead"
            else:
                expected = "pending"
            assert state == expected
            if expected == "pending":
                job.state, job.token, job.lease_expires = "pending", None, None
                job.run_at = retry_at
            else:
                self.finish(job, expected)

        @precondition(lambda self: self.in_state("claimed"))
        @rule(data=st.data())
        def release(self, data: st.DataObject) -> None:
            self.step()
            job = data.draw(st.sampled_from(self.in_state("claimed")))
            conn.execute("select pgbatch.release(%s, %s)", [job.id, job.token])
            job.attempt -= 1
            if job.cancel_requested:
                self.finish(job, "cancelled")
            else:
                job.state, job.token, job.lease_expires = "pending", None, None

        @precondition(lambda self: self.in_state("claimed"))
        @rule(data=st.data())
        def dead_letter(self, data: st.DataObject) -> None:
            self.step()
            job = data.draw(st.sampled_from(self.in_state("claimed")))
            conn.execute("select pgbatch.dead_letter(%s, %s, 'x')", [job.id, job.token])
            self.finish(job, "dead")

        @precondition(lambda self: self.in_state("claimed"))
        @rule(data=st.data())
        def renew(self, data: st.DataObject) -> None:
            self.step()
            job = data.draw(st.sampled_from(self.in_state("claimed")))
            code = sqlstate_of(conn, "select pgbatch.renew_lease(%s, %s, %s)",
                               [job.id, job.token, LEASE])
            if job.cancel_requested:
                assert code == "PB009"
            else:
                assert code is None
                job.lease_expires = self.now + LEASE

        @precondition(lambda self: self.jobs)
        @rule(data=st.data(), op=st.sampled_from(["ack", "nack", "dead_letter",
                                                  "renew_lease"]))
        def stale_token(self, data: st.DataObject, op: str) -> None:
            self.step()
            job = data.draw(st.sampled_from(list(self.jobs.values())))
            code = sqlstate_of(conn, f"select pgbatch.{op}(%s, %s)", [job.id, uuid4()])
            assert code == ("PB003" if job.state == "swept" else "PB001")

        @precondition(lambda self: self.jobs)
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            self.step()
            job = data.draw(st.sampled_from(list(self.jobs.values())))
            try:
                result = scalar(conn, "select pgbatch.cancel_job(%s)", [job.id])
            except psycopg.Error as exc:
                result = exc.sqlstate
            expected = {"pending": "cancelled", "claimed": "cancel_requested",
                        "cancelled": "cancelled", "done": "PB004", "dead": "PB004",
                        "swept": "PB003"}[job.state]
            assert result == expected
            if job.state == "pending":
                self.finish(job, "cancelled")
            elif job.state == "claimed":
                job.cancel_requested = True

        @precondition(lambda self: self.jobs)
        @rule(data=st.data())
        def requeue_dead(self, data: st.DataObject) -> None:
            self.step()
            dead = self.in_state("dead")
            pick_dead: bool = data.draw(st.booleans())
            pool = dead if dead and pick_dead else list(self.jobs.values())
            job = data.draw(st.sampled_from(pool))
            code = sqlstate_of(conn, "select pgbatch.requeue_dead_job(%s)", [job.id])
            if job.state == "dead" and self.live_holder(job.queue, job.dedup_key):
                assert code == "PB010"
            elif job.state == "dead":
                assert code is None
                job.state, job.attempt, job.run_at = "pending", 0, self.now
                job.seq, job.cancel_requested, job.finished_at = self.next_seq(), False, None
            else:
                assert code == ("PB003" if job.state == "swept" else "PB004")

        @rule(seconds=st.sampled_from([1, 10, 31, 120]))
        def advance_clock(self, seconds: int) -> None:
            self.step()
            self.now += timedelta(seconds=seconds)
            set_clock(conn, self.now)

        @rule()
        def reap(self) -> None:
            self.step()
            expired = [j for j in self.in_state("claimed")
                       if j.lease_expires is not None and j.lease_expires < self.now]
            assert scalar(conn, "select pgbatch.reap_expired()") == len(expired)
            for job in expired:
                if job.cancel_requested:
                    self.finish(job, "cancelled")
                elif job.attempt >= job.max_attempts:
                    self.finish(job, "dead")
                else:
                    job.state, job.token, job.lease_expires = "pending", None, None
                    job.run_at = self.now

        @rule(done_after=st.sampled_from([0, 10, 60]), dead_after=st.sampled_from([0, 30, 300]))
        def sweep(self, done_after: int, dead_after: int) -> None:
            self.step()
            gone = [j for j in self.in_state("done", "cancelled", "dead")
                    if j.finished_at is not None and j.finished_at < self.now - timedelta(
                        seconds=dead_after if j.state == "dead" else done_after)]
            n = scalar(conn, "select pgbatch.sweep_retention(%s, %s)",
                       [timedelta(seconds=done_after), timedelta(seconds=dead_after)])
            assert n == len(gone)
            for job in gone:
                job.state = "swept"

        @rule()
        def compact(self) -> None:
            self.step()
            conn.execute("select pgbatch.compact_counters()")

        @rule(queue=st.sampled_from(QUEUES), pause=st.booleans())
        def pause_or_resume(self, queue: str, pause: bool) -> None:
            self.step()
            if pause:
                conn.execute("select pgbatch.pause_queue(%s)", [queue])
                self.paused.add(queue)
            else:
                conn.execute("select pgbatch.resume_queue(%s)", [queue])
                self.paused.discard(queue)

        # ------------------------------------------------------------ the check

        @invariant()
        def stats_match_the_model(self) -> None:
            expected: dict[str, dict[str, Any]] = {}
            for q in QUEUES:
                jobs = [j for j in self.jobs.values() if j.queue == q]
                expected[q] = {
                    "pending": sum(j.state == "pending" and j.run_at <= self.now for j in jobs),
                    "scheduled": sum(j.state == "pending" and j.run_at > self.now for j in jobs),
                    "claimed": sum(j.state == "claimed" for j in jobs),
                    "done": sum(j.state == "done" for j in jobs),
                    "dead": sum(j.state == "dead" for j in jobs),
                    "cancelled": sum(j.state == "cancelled" for j in jobs),
                    "paused": q in self.paused,
                }
            actual = {q: {"pending": 0, "scheduled": 0, "claimed": 0, "done": 0, "dead": 0,
                          "cancelled": 0, "paused": False} for q in QUEUES}
            for row in all_stats(conn):
                assert row["queue"] in actual, f"unknown queue {row['queue']!r}"
                actual[row["queue"]] = {k: row[k] for k in expected[row["queue"]]}
            assert actual == expected

    return QueueModel


@pytest.mark.in_tx
def test_queue_stats_match_a_model_over_2000_random_operations(conn: Conn) -> None:
    steps = [0]
    machine = make_machine(conn, steps)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=TOTAL_STEPS // STEPS_PER_EXAMPLE + 3,
        stateful_step_count=STEPS_PER_EXAMPLE,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ))
    assert steps[0] >= TOTAL_STEPS, f"only {steps[0]} operations ran"


N_HOT = 3000
N_SETTLERS = 8


def test_8_connections_settling_one_queue_see_no_lock_failures(db: TestDatabase) -> None:
    setup = db.connect()
    setup.execute("select pgbatch.enqueue_many(%s)",
                  [json.dumps([{"queue": "hot", "max_attempts": 2}] * N_HOT)])
    settlers = [db.connect() for _ in range(N_SETTLERS)]
    helpers = [db.connect() for _ in range(3)]
    errors: list[tuple[str | None, str]] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(N_SETTLERS + len(helpers))
    stop = threading.Event()
    deadline = time.monotonic() + 90

    def settled() -> int:
        with lock:
            return outcomes["done"] + outcomes["dead"]

    def record(kind: str, n: int = 1) -> None:
        with lock:
            outcomes[kind] += n

    def settle(i: int) -> None:
        conn = settlers[i]
        rng = random.Random(i)
        barrier.wait(timeout=30)
        while settled() < N_HOT:
            assert time.monotonic() < deadline, "settling did not finish in time"
            try:
                batch = claim(conn, "hot", rng.randint(1, 20))
                if rng.random() < 0.3:
                    entries = json.dumps([{"job_id": str(j["id"]),
                                           "claim_token": str(j["claim_token"])}
                                          for j in batch])
                    rows = conn.execute("select status from pgbatch.ack_many(%s)",
                                        [entries]).fetchall()
                    assert [r[0] for r in rows] == ["acked"] * len(batch)
                    record("done", len(batch))
                    continue
                for j in batch:
                    op = rng.choice(["ack", "ack", "nack", "dead_letter"])
                    if op == "ack":
                        conn.execute("select pgbatch.ack(%s, %s)", [j["id"], j["claim_token"]])
                        record("done")
                    elif op == "dead_letter":
                        conn.execute("select pgbatch.dead_letter(%s, %s)",
                                     [j["id"], j["claim_token"]])
                        record("dead")
                    else:
                        state = scalar(conn, "select pgbatch.nack(%s, %s, null, pgbatch.now())",
                                       [j["id"], j["claim_token"]])
                        record(state)  # pending (retried later) or dead
            except psycopg.Error as exc:
                with lock:
                    errors.append((exc.sqlstate, str(exc)))

    def background(i: int) -> None:
        conn = helpers[i]
        barrier.wait(timeout=30)
        while not stop.is_set():
            try:
                if i < 2:
                    conn.execute("select pgbatch.compact_counters()")
                else:
                    conn.execute("select * from pgbatch.queue_stats('hot')")
            except psycopg.Error as exc:
                with lock:
                    errors.append((exc.sqlstate, str(exc)))

    bg = [threading.Thread(target=background, args=(i,), name=f"pgb-bg-{i}")
          for i in range(len(helpers))]
    for t in bg:
        t.start()
    try:
        run_threads([partial(settle, i) for i in range(N_SETTLERS)], timeout=120)
    finally:
        stop.set()
        for t in bg:
            t.join(30)

    assert errors == [], f"{len(errors)} errors, e.g. {errors[:3]}"
    assert outcomes["done"] + outcomes["dead"] == N_HOT
    setup.execute("select pgbatch.compact_counters()")
    [row] = [r for r in all_stats(setup) if r["queue"] == "hot"]
    assert (row["pending"], row["scheduled"], row["claimed"]) == (0, 0, 0)
    assert (row["done"], row["dead"]) == (outcomes["done"], outcomes["dead"])
    assert scalar(setup, "select count(*) from pgbatch.queue_count where queue = 'hot'") == 1


@pytest.mark.in_tx
def test_queue_stats_reports_age_of_oldest_claimable_job_and_all_queues(conn: Conn) -> None:
    t0 = db_now(conn)
    set_clock(conn, t0)
    scalar(conn, "select pgbatch.enqueue('old', '{}', %s)", [t0 - timedelta(minutes=10)])
    scalar(conn, "select pgbatch.enqueue('old', '{}', %s)", [t0 - timedelta(minutes=2)])
    scalar(conn, "select pgbatch.enqueue('old', '{}', %s)", [t0 + timedelta(minutes=5)])
    scalar(conn, "select pgbatch.enqueue('new')")
    rows = {r["queue"]: r for r in all_stats(conn)}
    assert set(rows) == {"old", "new"}
    assert rows["old"]["oldest_pending_age"] == timedelta(minutes=10)
    assert (rows["old"]["pending"], rows["old"]["scheduled"]) == (2, 1)
    assert rows["new"]["oldest_pending_age"] == timedelta(0)
    claim(conn, "old", 2)
    [only] = conn.execute("select oldest_pending_age from pgbatch.queue_stats('old')").fetchall()
    assert only == (None,)
    assert conn.execute("select * from pgbatch.queue_stats('nope')").fetchall() == []
